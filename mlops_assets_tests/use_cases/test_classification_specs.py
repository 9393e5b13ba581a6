"""The classification use cases' specs and generators: real columns, domains, quirks, signal.

Each generator must produce what the real file holds (columns in order, value codes, missing
rates, dirty spellings) so that everything downstream is exercised as real data would exercise
it; the checks here pin the quirks the specs were written for.
"""

from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pytest
import yaml

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.quality import clean_checks, raw_checks
from mlops_assets.features.splits import is_test_row
from mlops_assets.features.validation import validate_frame
from mlops_assets.generators import DriftConfig, Generator, available_generators, get_generator
from mlops_assets.names import DEFS_FILE
from mlops_assets.specs import SpecError, use_case_specs
from mlops_assets.specs.catalog import BUNDLED_DIR, parse_spec

DAY = dt.date(2024, 2, 1)
SKLEARN_FAMILIES = {"logistic_regression", "hist_gradient_boosting", "random_forest"}

REAL_COLUMNS = {
    "obesity": [
        "Gender",
        "Age",
        "Height",
        "Weight",
        "family_history_with_overweight",
        "FAVC",
        "FCVC",
        "NCP",
        "CAEC",
        "SMOKE",
        "CH2O",
        "SCC",
        "FAF",
        "TUE",
        "CALC",
        "MTRANS",
        "NObeyesdad",
    ],
    "loan_approval": [
        "loan_id",
        "no_of_dependents",
        "education",
        "self_employed",
        "income_annum",
        "loan_amount",
        "loan_term",
        "cibil_score",
        "residential_assets_value",
        "commercial_assets_value",
        "luxury_assets_value",
        "bank_asset_value",
        "loan_status",
    ],
    "mushroom": [
        "class",
        "cap-diameter",
        "cap-shape",
        "cap-surface",
        "cap-color",
        "does-bruise-or-bleed",
        "gill-attachment",
        "gill-spacing",
        "gill-color",
        "stem-height",
        "stem-width",
        "stem-root",
        "stem-surface",
        "stem-color",
        "veil-type",
        "veil-color",
        "has-ring",
        "ring-type",
        "spore-print-color",
        "habitat",
        "season",
    ],
}
USE_CASES = sorted(REAL_COLUMNS)
METRICS = {
    "obesity": ("multiclass", "macro_f1", {"accuracy", "log_loss"}),
    "loan_approval": ("binary", "roc_auc", {"accuracy"}),
    "mushroom": ("binary", "log_loss", {"accuracy", "f1", "roc_auc"}),
}
SHIFT = {"obesity": "Weight", "loan_approval": "cibil_score", "mushroom": "cap-diameter"}


@pytest.fixture(scope="module")
def specs():
    return use_case_specs()


@pytest.fixture(scope="module")
def batches() -> dict[str, pd.DataFrame]:
    return {uc: get_generator(uc).generate(3000, DAY, seed=11) for uc in USE_CASES}


# ---------------------------------------------------------------- specs


@pytest.mark.parametrize("uc", USE_CASES)
def test_spec_loads_with_its_task_metrics_and_real_budget(specs, uc) -> None:
    spec = specs[uc]
    task, primary, reported = METRICS[uc]
    assert (spec.task, spec.primary_metric) == (task, primary)
    assert reported <= set(spec.reported_metrics)
    assert spec.generator == uc and uc in available_generators()
    families = {m.family for m in spec.models}
    assert "catboost" in families and len(families & SKLEARN_FAMILIES) >= 2
    # a real run's budget, bounded in time (tests and the demo pass a trial count instead)
    assert spec.tuning.n_trials >= 20 and 0 < spec.tuning.timeout_s <= 900
    assert spec.tuning.cv_folds == 3
    assert spec.partitions.start_date == dt.date(2024, 1, 1)
    assert spec.min_rows_per_batch >= 1
    assert spec.segment_names == (["cap_gill", "stem_season"] if uc == "mushroom" else [])
    real = [c for c in REAL_COLUMNS[uc] if c not in spec.id_names and c != spec.target.name]
    assert spec.feature_names == real


def test_split_identities(specs) -> None:
    # No id column in the obesity and mushroom files: all features identify a row, so exact
    # duplicates share a side. Loan applications have their id.
    assert specs["obesity"].split.by is None
    assert specs["mushroom"].split.by is None
    assert specs["loan_approval"].split.by == ["loan_id"]
    assert specs["loan_approval"].target.positive_class == "Approved"
    assert specs["mushroom"].target.positive_class == "p"
    assert len(specs["obesity"].target.classes) == 7


def _raw(uc: str) -> dict:
    return yaml.safe_load((BUNDLED_DIR / uc / DEFS_FILE).read_text())["attributes"]


@pytest.mark.parametrize(
    ("uc", "change", "expected"),
    [
        ("obesity", {"primary_metric": "rmse"}, "does not apply to a multiclass task"),
        ("obesity", {"target": {"name": "NObeyesdad", "classes": ["a", "b"]}}, "at least 3"),
        ("mushroom", {"models": [{"family": "ridge"}]}, "`ridge` is not available"),
        ("mushroom", {"primary_metric": "macro_f"}, "unknown metric"),
        (
            "loan_approval",
            {"target": {"name": "loan_status", "classes": ["Rejected", "Approved"]}},
            "positive_class must be one of",
        ),
        ("loan_approval", {"split": {"method": "hash", "by": ["Loan_ID"]}}, "split.by"),
    ],
)
def test_invalid_changes_name_the_field(uc, change, expected) -> None:
    data = copy.deepcopy(_raw(uc))
    data.update(change)
    with pytest.raises(SpecError, match=expected):
        parse_spec(data, f"{uc}.yaml")


def test_yes_no_categories_stay_text(specs) -> None:
    # YAML 1.1 reads a bare yes/no as a boolean: the specs quote them.
    assert specs["obesity"].column("FAVC").categories == ["yes", "no"]
    assert specs["loan_approval"].column("self_employed").categories == ["Yes", "No"]


# ---------------------------------------------------------------- generators: shared contract


@pytest.mark.parametrize("uc", USE_CASES)
def test_generator_columns_and_reproducibility(batches, uc) -> None:
    generator = get_generator(uc)
    assert isinstance(generator, Generator)
    frame = batches[uc]
    assert list(frame.columns) == REAL_COLUMNS[uc]
    assert len(frame) == 3000
    pd.testing.assert_frame_equal(frame, generator.generate(3000, DAY, seed=11))
    assert not frame.equals(generator.generate(3000, DAY + dt.timedelta(days=1), seed=11))
    assert not frame.equals(generator.generate(3000, DAY, seed=12))
    empty = generator.generate(0, DAY, seed=1)
    assert list(empty.columns) == REAL_COLUMNS[uc] and empty.empty


@pytest.mark.parametrize("uc", USE_CASES)
@pytest.mark.parametrize("offset", [0, 30])
def test_cleaned_batches_pass_validation_and_quality_checks(specs, uc, offset) -> None:
    spec = specs[uc]
    batch = get_generator(uc).generate(300, DAY + dt.timedelta(days=offset), seed=offset + 1)
    assert all(o.passed for o in raw_checks(batch, spec)), raw_checks(batch, spec)
    clean, report = clean_frame(batch, spec)
    assert report.rows_out == len(batch)
    assert not report.invalid_values and not report.missing_columns
    assert not report.unexpected_columns
    failed = [o for o in clean_checks(clean, report, spec) if not o.passed]
    assert not failed, [(o.name, o.summary) for o in failed]
    assert validate_frame(clean, spec) == []
    labels = clean[spec.target.name]
    assert labels.notna().all() and set(labels) <= set(spec.target.classes)


@pytest.mark.parametrize("uc", USE_CASES)
def test_drift_moves_a_feature_and_the_labels(specs, batches, uc) -> None:
    generator, frame, spec = get_generator(uc), batches[uc], specs[uc]
    column = SHIFT[uc]
    shifted = generator.generate(3000, DAY, seed=11, drift=DriftConfig({column: 1.0}))
    assert shifted[column].mean() > frame[column].mean() + 0.5 * frame[column].std()
    scaled = generator.generate(3000, DAY, seed=11, drift=DriftConfig(target_scale=1.5))
    features = [c for c in REAL_COLUMNS[uc] if c != spec.target.name]
    pd.testing.assert_frame_equal(scaled[features], frame[features])
    # A larger scale means heavier levels, more approvals, more poisonous labels.
    order = {label.strip(): i for i, label in enumerate(spec.target.classes)}
    before = frame[spec.target.name].str.strip().map(order)
    after = scaled[spec.target.name].str.strip().map(order)
    assert (after != before).mean() > 0.01
    assert (after >= before).all()
    for drifted in (shifted, scaled):
        clean, report = clean_frame(drifted, spec)
        assert validate_frame(clean, spec) == [] and not report.invalid_values
    pd.testing.assert_frame_equal(generator.generate(3000, DAY, 11, DriftConfig()), frame)
    with pytest.raises(KeyError, match="cannot shift"):
        generator.generate(10, DAY, seed=1, drift=DriftConfig({"no_such_column": 1.0}))


# ---------------------------------------------------------------- generators: real quirks


def test_obesity_labels_follow_bmi_bands(batches) -> None:
    from mlops_assets.generators.obesity import level_of_bmi

    frame = batches["obesity"]
    bmi = (frame["Weight"] / frame["Height"] ** 2).to_numpy()
    agreement = (level_of_bmi(bmi) == frame["NObeyesdad"].to_numpy()).mean()
    assert 0.8 <= agreement < 1.0  # mostly the band, with noise near the edges
    shares = frame["NObeyesdad"].value_counts(normalize=True)
    assert len(shares) == 7 and shares.min() > 0.09  # about balanced, as SMOTE left it
    men = frame.groupby("NObeyesdad")["Gender"].agg(lambda s: (s == "Male").mean())
    assert men["Obesity_Type_II"] > 0.9 and men["Obesity_Type_III"] < 0.1


def test_obesity_has_survey_integers_smote_decimals_and_duplicates(batches) -> None:
    frame = batches["obesity"]
    whole = (frame["FCVC"] == frame["FCVC"].round()).mean()
    assert 0.2 < whole < 0.75  # survey answers whole, SMOTE rows in between
    assert frame["FCVC"].between(1, 3).all() and frame["TUE"].between(0, 2).all()
    assert 0.003 <= frame.duplicated().mean() <= 0.03
    assert frame.notna().all().all()  # the real file has no missing values
    assert set(frame["CAEC"]) <= {"no", "Sometimes", "Frequently", "Always"}
    assert set(frame["MTRANS"]) == {
        "Public_Transportation",
        "Walking",
        "Automobile",
        "Motorbike",
        "Bike",
    }


def test_loan_text_values_carry_the_leading_space(batches, specs) -> None:
    frame = batches["loan_approval"]
    assert set(frame["education"]) == {" Graduate", " Not Graduate"}
    assert set(frame["self_employed"]) == {" Yes", " No"}
    assert set(frame["loan_status"]) == {" Approved", " Rejected"}
    clean, _ = clean_frame(frame, specs["loan_approval"])
    assert set(clean["education"]) == {"Graduate", "Not Graduate"}
    assert set(clean["loan_status"]) == {"Approved", "Rejected"}


def test_loan_amounts_grid_placeholder_and_approval_rule(batches, specs) -> None:
    frame = batches["loan_approval"]
    assert frame["loan_id"].is_unique
    next_day = get_generator("loan_approval").generate(3000, DAY + dt.timedelta(days=1), 11)
    assert not set(frame["loan_id"]) & set(next_day["loan_id"])
    amounts = frame[["income_annum", "loan_amount", "bank_asset_value"]]
    assert (amounts % 100_000 == 0).all().all()
    assert frame["cibil_score"].between(300, 900).all()
    assert set(frame["loan_term"]) <= set(range(2, 21, 2))
    unknown = frame["residential_assets_value"] < 0
    assert set(frame.loc[unknown, "residential_assets_value"]) == {-100_000}
    assert 0.002 <= unknown.mean() <= 0.015
    clean, _ = clean_frame(frame, specs["loan_approval"])
    assert clean["residential_assets_value"].isna().sum() == unknown.sum()
    approved = frame["loan_status"].str.strip() == "Approved"
    assert 0.55 <= approved.mean() <= 0.7  # 62% in the real file
    high = frame["cibil_score"] >= 550
    assert approved[high].mean() > 0.9 and approved[~high].mean() < 0.25


def test_mushroom_codes_missing_columns_and_none_codes(batches, specs) -> None:
    frame = batches["mushroom"]
    missing = frame.isna().mean()
    real = {
        "veil-type": 0.95,
        "spore-print-color": 0.90,
        "veil-color": 0.88,
        "stem-root": 0.84,
        "stem-surface": 0.62,
        "gill-spacing": 0.41,
        "cap-surface": 0.23,
        "gill-attachment": 0.16,
    }
    for column, rate in real.items():
        assert missing[column] == pytest.approx(rate, abs=0.08), column
    assert missing[["class", "cap-diameter", "cap-shape", "habitat", "season"]].sum() == 0
    assert missing.max() < specs["mushroom"].max_null_fraction
    stemless = frame["stem-color"] == "f"
    assert stemless.any()
    assert (frame.loc[stemless, ["stem-height", "stem-width"]] == 0).all().all()
    assert (frame.loc[stemless, "stem-root"] == "f").all()
    assert set(frame["season"]) == {"s", "u", "a", "w"}
    assert set(frame["does-bruise-or-bleed"]) == {"t", "f"}
    assert 0.5 <= (frame["class"] == "p").mean() <= 0.6


def test_mushroom_duplicates_share_a_side(specs) -> None:
    spec = specs["mushroom"]
    generator = get_generator("mushroom")
    first = generator.generate(4000, DAY, seed=3)
    assert first.duplicated().sum() >= 3  # the real file has 146 duplicate rows
    # The same specimens landed again on a later day, plus a new day's rows.
    again = pd.concat(
        [first.sample(300, random_state=1), generator.generate(500, DAY, seed=4)],
        ignore_index=True,
    )
    both = pd.concat(
        [first.assign(_landed_date="2024-02-01"), again.assign(_landed_date="2024-02-02")],
        ignore_index=True,
    )
    clean, _ = clean_frame(both, spec)
    test = is_test_row(clean, spec)
    identity = pd.util.hash_pandas_object(clean[spec.feature_names].astype(str), index=False)
    sides = test.groupby(identity).nunique()
    repeated = identity.value_counts()
    assert (repeated > 1).sum() >= 300
    assert (sides == 1).all()
    assert 0.1 < test.mean() < 0.3


@pytest.mark.parametrize("uc", USE_CASES)
def test_labels_are_learnable(specs, uc) -> None:
    # One thread: OpenMP learners crawl when other processes share the two cores.
    from sklearn.ensemble import RandomForestClassifier

    spec = specs[uc]
    generator = get_generator(uc)
    train, _ = clean_frame(generator.generate(2000, DAY, seed=21), spec)
    test, _ = clean_frame(generator.generate(1000, DAY + dt.timedelta(days=1), seed=21), spec)

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[spec.feature_names].copy()
        for column in spec.features:
            if column.type == "categorical":
                codes = pd.Categorical(out[column.name], categories=column.categories).codes
                out[column.name] = codes
        return out.astype("float64").fillna(-1)

    model = RandomForestClassifier(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=0)
    model.fit(encode(train), train[spec.target.name])
    accuracy = (model.predict(encode(test)) == test[spec.target.name]).mean()
    majority = test[spec.target.name].value_counts(normalize=True).max()
    assert accuracy > majority + 0.25, (accuracy, majority)
