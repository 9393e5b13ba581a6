"""Spec validation: a bad spec fails at load with the field named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlops_assets import names
from mlops_assets.specs import SpecError, use_case_specs
from mlops_assets.specs.catalog import BUNDLED_DIR, load_instance, parse_spec


def bundled(use_case: str) -> dict:
    """The spec (the ``attributes``) of a bundled use case's ``defs.yaml``."""
    return yaml.safe_load((BUNDLED_DIR / use_case / names.DEFS_FILE).read_text())["attributes"]


def write_instance(folder: Path, use_case: str, spec: dict) -> Path:
    """An outside use case's ``<use_case>/defs.yaml`` with ``spec`` as its attributes."""
    path = folder / use_case / names.DEFS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"type": names.COMPONENT_TYPE, "attributes": spec}))
    return path


def bigmart() -> dict:
    return bundled("bigmart_sales")


def test_bundled_specs_load() -> None:
    specs = use_case_specs()
    spec = specs["bigmart_sales"]
    assert spec.task == "regression"
    assert spec.primary_metric == "rmse"
    assert spec.id_names == ["Item_Identifier", "Outlet_Identifier"]
    assert "Item_Fat_Content" in spec.feature_names
    assert spec.registered_model_name() == "bigmart_sales"
    assert spec.registered_model_name("cap") == "bigmart_sales__cap"


def _set(data: dict, path: str, value: object) -> dict:
    data = copy.deepcopy(data)
    target = data
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("name", "Big Mart", "field `name`"),
        ("task", "clustering", "field `task`"),
        ("primary_metric", "accuracy", "does not apply to a regression task"),
        ("primary_metric", "nonsense", "unknown metric"),
        ("features.1.categories", None, "closed categorical column needs `categories`"),
        ("features.0.min", 100, "`min` (100.0) is greater than `max`"),
        ("features.0.type", "floaty", "field `features.0.type`"),
        ("models.0.family", "xgboost", "family `xgboost` is not available"),
        ("models.0.search_space.depth.low", 9, "`low` (9.0) is greater than `high`"),
        ("split.test_fraction", 1.5, "field `split.hash.test_fraction`"),
        ("split.by", ["Nope"], "split.by: unknown column `Nope`"),
        ("group_imputers.0.group_by", "Nope", "group_imputers: unknown column `Nope`"),
        ("promotion.margin", -0.1, "field `promotion.margin`"),
        ("features.0.cleaning", [{"rule": "explode"}], "features.0.cleaning.0"),
        ("partitions.by", "event_date", "`date_column` is required"),
        ("target.classes", ["a", "b"], "a regression task has no classes"),
    ],
)
def test_invalid_spec_names_the_field(path: str, value: object, expected: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(_set(bigmart(), path, value), "bigmart_sales.yaml")
    assert expected in str(error.value)
    assert "bigmart_sales.yaml" in str(error.value)


def test_unknown_key_is_rejected() -> None:
    data = bigmart()
    data["tunning"] = {}
    with pytest.raises(SpecError, match="field `tunning`"):
        parse_spec(data)


def test_classification_needs_classes() -> None:
    data = bigmart()
    data.update(task="binary", primary_metric="roc_auc", reported_metrics=["accuracy"])
    data["models"] = [{"family": "logistic_regression"}]
    with pytest.raises(SpecError, match="target.classes"):
        parse_spec(data)
    data["target"] = {"name": "Item_Outlet_Sales", "classes": ["e", "p"], "positive_class": "p"}
    assert parse_spec(data).is_classification


def test_segments_must_name_features() -> None:
    data = bigmart()
    data["segments"] = [{"name": "items", "features": ["Item_MRP", "Cap_Shape"]}]
    with pytest.raises(SpecError, match=r"segments.items: unknown features \['Cap_Shape'\]"):
        parse_spec(data)


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (
            [{"name": "a", "features": ["Item_MRP"]}, {"name": "a", "features": ["Item_Type"]}],
            r"segments: names declared twice: \['a'\]",
        ),
        (
            [{"name": "a", "features": ["Item_MRP"]}, {"name": "b", "features": ["Item_MRP"]}],
            "segments.b: same features as `a`",
        ),
        ([{"name": "a", "features": ["Item_MRP", "Item_MRP"]}], "features listed twice"),
        ([{"name": "a", "features": []}], "segments.0.features"),
        ([{"name": "Big Items", "features": ["Item_MRP"]}], "segments.0.name"),
    ],
)
def test_invalid_segments(segments: list, expected: str) -> None:
    data = bigmart()
    data["segments"] = segments
    with pytest.raises(SpecError, match=expected):
        parse_spec(data)


def test_segment_keeps_what_its_imputers_need() -> None:
    data = bigmart()
    data["group_imputers"] = [{"column": "Item_Weight", "group_by": "Item_Type"}]
    data["segments"] = [{"name": "a", "features": ["Item_Weight", "Item_MRP"]}]
    with pytest.raises(SpecError, match="group imputer of `Item_Weight` needs `Item_Type`"):
        parse_spec(data)


def test_segment_view_is_the_segment_model() -> None:
    """A segment's view keeps the use case's name and ids, its own features and model name."""
    mushroom = use_case_specs()["mushroom"]
    assert mushroom.segment_names == ["cap_gill", "stem_season"]
    assert mushroom.segment is None
    view = mushroom.segment_spec("stem_season")
    assert (view.name, view.segment) == ("mushroom", "stem_season")
    assert view.registered_model_name() == "mushroom__stem_season"
    assert view.feature_names[0] == "stem-height" and "cap-shape" not in view.feature_names
    assert view.segments == [] and view.segment_specs() == [view]
    assert mushroom.registered_model_name() == "mushroom"
    with pytest.raises(KeyError, match="segments: cap_gill, stem_season"):
        mushroom.segment_spec("gills")
    bigmart_spec = use_case_specs()["bigmart_sales"]
    assert bigmart_spec.segment_specs() == [bigmart_spec]
    data = bigmart()
    data["group_imputers"] = [{"column": "Item_Weight", "group_by": "Item_Identifier"}]
    data["segments"] = [{"name": "price", "features": ["Item_MRP"]}]
    assert parse_spec(data).segment_spec("price").group_imputers == []


def test_invalid_spec_file_fails_definitions_load(tmp_path: Path, monkeypatch) -> None:
    bad = _set(bigmart(), "name", "second_use_case")
    bad = _set(bad, "primary_metric", "log_loss")
    write_instance(tmp_path, "broken", bad)
    monkeypatch.setenv("MLOPS_SPECS_DIRS", str(tmp_path))
    from mlops_assets.definitions import defs

    with pytest.raises(SpecError) as error:
        defs()
    assert "broken/defs.yaml" in str(error.value)
    assert "primary_metric: metric `log_loss` does not apply to a regression task" in str(
        error.value
    )


def test_duplicate_spec_names_are_an_error(tmp_path: Path) -> None:
    write_instance(tmp_path, "copy", bigmart())
    with pytest.raises(SpecError, match="name `bigmart_sales` is used by .* too"):
        use_case_specs([tmp_path])


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list" / names.DEFS_FILE
    path.parent.mkdir()
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_instance(path)


def test_forecast_spec_shape_is_expressible() -> None:
    """The spec model describes the later use cases too (here: M5-style forecasting)."""
    data = {
        "name": "m5_sales",
        "task": "forecast",
        "target": {"name": "sales", "min": 0},
        "id_columns": [{"name": "id", "type": "categorical", "closed": False}],
        "features": [
            {"name": "date", "type": "date"},
            {"name": "sell_price", "type": "numeric", "min": 0},
        ],
        "primary_metric": "rmsse",
        "reported_metrics": ["mae", "rmse", "wmape", "tweedie_deviance"],
        "partitions": {"start_date": "2011-01-29", "by": "event_date", "date_column": "date"},
        "split": {"method": "time", "test_days": 28},
        "forecast": {"series": ["id"]},
        "models": [{"family": "catboost"}, {"family": "ridge"}],
    }
    spec = parse_spec(data)
    assert spec.split.method == "time"
    assert spec.forecast is not None and spec.forecast.lags == [7, 28]
    with pytest.raises(SpecError, match="`forecast` is required"):
        parse_spec({k: v for k, v in data.items() if k != "forecast"})
    with pytest.raises(SpecError, match="unknown column `store`"):
        parse_spec({**data, "forecast": {"series": ["id", "store"]}})


def test_segments_are_refused_with_event_date_partitions() -> None:
    data = bundled("m5_sales")
    data["segments"] = [{"name": "prices", "features": ["sell_price", "store_id"]}]
    with pytest.raises(SpecError, match="segments: not supported with event-date partitions"):
        parse_spec(data)
