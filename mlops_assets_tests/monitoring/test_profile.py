"""Reference profiles: PSI against a stored profile is PSI against the rows it was built from.

Drift compares a day's batch with the serving champion's profile rather than with raw training
rows; one PSI binning (``drift.decile_edges``/``binned_shares``) serves both, which these tests
pin down to 1e-9.
"""

import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring.drift import categorical_psi, drift_report_html, numeric_psi
from mlops_assets.monitoring.profile import (
    OTHER,
    build_profile,
    compare,
    profile_categorical_psi,
    profile_drifts,
)
from mlops_assets.specs.catalog import parse_spec


def spec_of(features: list[dict], task: str = "regression") -> object:
    target = {"name": "y"}
    if task == "binary":
        target |= {"classes": ["no", "yes"], "positive_class": "yes"}
    return parse_spec(
        {
            "name": "uc",
            "task": task,
            "target": target,
            "features": features,
            "primary_metric": "rmse" if task == "regression" else "log_loss",
            "partitions": {"start_date": "2024-01-01"},
            "models": [{"family": "ridge" if task == "regression" else "logistic_regression"}],
        }
    )


SPEC = spec_of(
    [
        {"name": "price", "type": "numeric"},
        {"name": "stores", "type": "integer"},
        {"name": "colour", "type": "categorical", "closed": False},
        {"name": "opened", "type": "date"},
    ]
)


def frame(n: int, seed: int, shift: float = 0.0, colours: str = "rgbyk") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = pd.Series(rng.lognormal(3 + shift, 0.5, n))
    price[rng.random(n) < 0.1] = np.nan
    colour = pd.Series(rng.choice(list(colours), n, p=None), dtype=object)
    colour[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "price": price,
            "stores": rng.integers(1, 6, n),  # few distinct values: merged decile edges
            "colour": colour,
            "opened": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
            "y": rng.normal(100, 15, n),
        }
    )


@pytest.mark.parametrize(("seed", "shift", "colours"), [(1, 0.0, "rgbyk"), (2, 0.4, "rgbw")])
def test_psi_from_a_profile_equals_psi_from_the_raw_rows(seed, shift, colours) -> None:
    reference = frame(3000, 0)
    current = frame(800, seed, shift, colours)
    profile = json.loads(json.dumps(build_profile(SPEC, reference)))  # as stored and read back
    shifts = {s.column: s for s in compare(profile, current, SPEC)}
    for column in ("price", "stores"):
        expected = numeric_psi(reference[column], current[column])
        assert shifts[column].psi == pytest.approx(expected, abs=1e-9)
    expected = categorical_psi(reference["colour"], current["colour"])
    assert shifts["colour"].psi == pytest.approx(expected, abs=1e-9)
    assert shifts["opened"].psi is None
    drifts = profile_drifts(profile, current, SPEC)
    assert [d.column for d in drifts] == ["price", "stores", "colour"]
    assert "<td>price</td>" in drift_report_html("uc", drifts, threshold=0.2)


def test_the_profile_reads_like_the_training_rows() -> None:
    reference = frame(5000, 0)
    profile = build_profile(SPEC, reference)
    price = profile["features"]["price"]
    assert profile["rows"] == 5000 and profile["version"] == 1
    assert len(price["edges"]) == 9 and len(price["shares"]) == 10
    assert sum(price["shares"]) + price["null_rate"] == pytest.approx(1.0)
    assert price["null_rate"] == pytest.approx(reference["price"].isna().mean())
    assert price["min"] == reference["price"].min() and price["max"] == reference["price"].max()
    colour = profile["features"]["colour"]
    assert set(colour["shares"]) == set("rgbyk") and colour["other_share"] == 0
    assert profile["features"]["opened"]["min"].startswith("2020-01-01")
    assert profile["target"]["mean"] == pytest.approx(reference["y"].mean())


def test_compare_reports_null_shift_unseen_values_and_out_of_range() -> None:
    reference = frame(2000, 0)
    current = frame(500, 3, colours="rgw")
    current.loc[:99, "price"] = np.nan
    current.loc[100:109, "price"] = 1e6
    current.loc[110:114, "price"] = -1.0
    current.loc[:49, "opened"] = pd.Timestamp("2030-01-01")
    shifts = {s.column: s for s in compare(build_profile(SPEC, reference), current, SPEC)}
    price = shifts["price"]
    assert price.null_rate_shift == pytest.approx(
        current["price"].isna().mean() - reference["price"].isna().mean()
    )
    assert price.above_max_share == pytest.approx(10 / 500)
    assert price.below_min_share == pytest.approx(5 / 500)
    assert price.as_dict()["out_of_range_share"] == pytest.approx(15 / 500)
    colour = shifts["colour"]
    assert colour.unseen_categories == ["w"]
    assert colour.unseen_share == pytest.approx((current["colour"] == "w").mean())
    assert shifts["opened"].above_max_share == pytest.approx(50 / 500)


def test_a_profile_of_100k_rows_is_small_and_caps_categories() -> None:
    n = 100_000
    rng = np.random.default_rng(0)
    features = [{"name": f"x{i}", "type": "numeric"} for i in range(15)] + [
        {"name": f"c{i}", "type": "categorical", "closed": False} for i in range(5)
    ]
    spec = spec_of(features, task="binary")
    data = {f"x{i}": rng.normal(size=n) for i in range(15)}
    data |= {f"c{i}": rng.integers(0, 5000, n).astype(str) for i in range(5)}  # many values
    data["y"] = rng.choice(["no", "yes"], n)
    profile = build_profile(spec, pd.DataFrame(data))
    size = len(json.dumps(profile, allow_nan=False))
    assert size < 100_000 / 4  # well under 100 KB
    c0 = profile["features"]["c0"]
    assert len(c0["shares"]) == 50 and c0["other_share"] > 0.9 and c0["distinct"] == 5000
    assert profile["target"]["shares"]["yes"] == pytest.approx(np.mean(data["y"] == "yes"))


def test_values_a_capped_profile_does_not_list_count_as_its_other_share() -> None:
    reference = pd.Series([str(i % 200) for i in range(4000)])
    profile = build_profile(
        spec_of([{"name": "c", "type": "categorical", "closed": False}]),
        pd.DataFrame({"c": reference, "y": 0.0}),
    )["features"]["c"]
    assert profile["other_share"] == pytest.approx(150 / 200)
    same = profile_categorical_psi(profile, reference.sample(frac=1, random_state=0))
    assert same == pytest.approx(0.0, abs=1e-12)  # unlisted values fill the other share
    new = profile_categorical_psi(profile, pd.Series(["new"] * 1000))
    assert new > 1 and OTHER == "__other__"


def test_a_feature_missing_from_the_rows_is_all_null() -> None:
    profile = build_profile(SPEC, frame(100, 0).drop(columns=["price"]))
    assert profile["features"]["price"]["null_rate"] == 1.0
    assert profile["features"]["price"]["min"] is None
    shifts = {s.column: s for s in compare(profile, frame(100, 1), SPEC)}
    assert shifts["price"].psi == 0.0 and shifts["price"].null_rate_shift < -0.8
