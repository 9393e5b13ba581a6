"""The champion in BentoML's store: tags, lineage labels, reuse, and the store location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.serving.bento import (
    BentoBuildError,
    bentoml_api,
    champion_ref,
    ensure_champion_bento,
    model_tag,
)
from mlops_assets.specs import UseCaseSpec


def test_model_and_bento_carry_the_mlflow_lineage(trained_home: Any, spec: UseCaseSpec) -> None:
    mlflow = MlflowTracking()
    ref = champion_ref(spec, mlflow)
    assert ref is not None
    build = ensure_champion_bento(spec, mlflow)
    assert not build.built, "the refresh built it already: this call must reuse it"
    bentoml = bentoml_api()
    model = bentoml.models.get(build.model_tag)
    bento = bentoml.bentos.get(build.bento_tag)
    lineage = {
        "use_case": spec.name,
        "mlflow_model_name": ref.model_name,
        "mlflow_model_version": ref.version,
        "mlflow_run_id": ref.run_id,
    }
    assert lineage.items() <= dict(model.info.labels).items()
    assert lineage.items() <= dict(bento.info.labels).items()
    assert model.info.metadata["data_partitions"] == ",".join(sorted(trained_home.days))
    assert model.info.metadata["dagster_run_id"]
    assert [str(m.tag) for m in bento.info.all_models] == [model_tag(spec, ref)]
    assert dict(bento.info.args) == {"use_case": spec.name, "model_tag": build.model_tag}
    assert Path(bento.path).is_relative_to(trained_home.home / "bentoml")


def test_no_champion_is_a_clear_error(mlops_home: Path, spec: UseCaseSpec) -> None:
    with pytest.raises(BentoBuildError, match="carries the `champion` alias"):
        ensure_champion_bento(spec, MlflowTracking())


def test_the_store_follows_mlops_home(mlops_home: Path) -> None:
    """A long-lived process that switches MLOPS_HOME writes to the new home's store."""
    bentoml = bentoml_api()
    saved = bentoml.picklable_model.save_model("probe", {"answer": 42})
    stored = bentoml.models.get("probe:latest")
    assert stored.tag == saved.tag
    assert Path(stored.path).is_relative_to(mlops_home / "bentoml" / "models")


def test_one_process_builds_several_bentos(trained_home: Any, spec: UseCaseSpec) -> None:
    """Building re-imports the service module: its metrics must not be registered twice."""
    from mlops_assets.serving.bento import ModelRef, bento_tag, build_bento

    ref = champion_ref(spec, MlflowTracking())
    assert ref is not None
    bentoml = bentoml_api()
    model = bentoml.models.get(model_tag(spec, ref))
    other = ModelRef(ref.model_name, f"{ref.version}0", ref.run_id)
    bento, built = build_bento(spec, other, model)
    bentoml.bentos.delete(bento.tag)
    assert built and str(bento.tag) == bento_tag(spec, other)


def test_segmented_bento_tag_and_build_argument() -> None:
    """One bento per combination of segment champions; the tag stays a valid BentoML version."""
    from mlops_assets.serving.bento import ModelRef, segment_models_arg, segmented_bento_tag
    from mlops_assets.serving.routing import parse_segment_models
    from mlops_assets.specs import use_case_specs

    mushroom = use_case_specs()["mushroom"]
    refs = {
        "cap_gill": ModelRef("mushroom__cap_gill", "3", "1a2b3c4d5e"),
        "stem_season": ModelRef("mushroom__stem_season", "12", "99887766aa"),
    }
    assert segmented_bento_tag(mushroom, refs) == "mushroom_service:v3-1a2b3c4d.v12-99887766"
    long = {name: ModelRef(ref.model_name, "1" * 30, ref.run_id) for name, ref in refs.items()}
    version = segmented_bento_tag(mushroom, long).split(":")[1]
    assert version.startswith("s-") and len(version) <= 63
    tags = {"cap_gill": "mushroom__cap_gill:v3-1a2b3c4d"}
    assert parse_segment_models(mushroom, segment_models_arg(tags)) == {
        "cap_gill": "mushroom__cap_gill:v3-1a2b3c4d",
        "stem_season": "mushroom__stem_season:latest",
    }
