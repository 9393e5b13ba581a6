"""The use-case spec: one declarative, validated description from which an asset graph is built.

A spec says what the data is (columns, types, domains, row-level cleaning rules), what the model
must do (task, target, metrics), how data is split and models searched, and when a champion may be
replaced or retrained. Adding a use case means adding a spec; no asset code changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

Task = Literal["regression", "binary", "multiclass", "forecast"]
ColumnType = Literal["numeric", "integer", "categorical", "date"]

METRIC_TASKS: dict[str, set[str]] = {
    "rmse": {"regression", "forecast"},
    "mae": {"regression", "forecast"},
    "wmape": {"regression", "forecast"},
    "tweedie_deviance": {"regression", "forecast"},
    "rmsse": {"forecast"},
    "r2": {"regression", "forecast"},
    "accuracy": {"binary", "multiclass"},
    "f1": {"binary"},
    "macro_f1": {"binary", "multiclass"},
    "roc_auc": {"binary", "multiclass"},
    "log_loss": {"binary", "multiclass"},
    "brier": {"binary", "multiclass"},
    "ece": {"binary", "multiclass"},
}

REGRESSION_FAMILIES = {"catboost", "ridge", "hist_gradient_boosting", "random_forest"}
CLASSIFICATION_FAMILIES = {
    "catboost",
    "logistic_regression",
    "hist_gradient_boosting",
    "random_forest",
}


def snake_case(value: str) -> str:
    """``value`` if it is a snake_case name (``__`` is reserved: it joins use case and segment)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value) or "__" in value:
        raise ValueError("must be snake_case (a-z, 0-9, single underscores)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- row-level cleaning rules


class StripRule(_Strict):
    """Trim white space around text values."""

    rule: Literal["strip"] = "strip"


class MapValuesRule(_Strict):
    """Replace spellings by their canonical value (``LF`` -> ``Low Fat``); matching ignores case."""

    rule: Literal["map_values"] = "map_values"
    mapping: dict[str, str]


class NullIfRule(_Strict):
    """Treat sentinel values as missing (a zero visibility, an empty string, ``?``)."""

    rule: Literal["null_if"] = "null_if"
    values: list[float | str]


class ClipRule(_Strict):
    """Clip numbers into a range (for values a source is known to overshoot)."""

    rule: Literal["clip"] = "clip"
    min: float | None = None
    max: float | None = None


CleaningRule = Annotated[
    StripRule | MapValuesRule | NullIfRule | ClipRule, Field(discriminator="rule")
]


# ---------------------------------------------------------------- columns


class ColumnSpec(_Strict):
    """One input column: its type, domain and the row-level rules that clean it."""

    name: str
    type: ColumnType
    description: str = ""
    categories: list[str] | None = Field(
        default=None, description="Allowed values of a categorical column."
    )
    closed: bool = Field(
        default=True, description="Whether values outside `categories` are invalid."
    )
    min: float | None = None
    max: float | None = None
    nullable: bool = True
    optional: bool = Field(
        default=False,
        description="A batch may lack this column (it is then missing in every row); an "
        "optional column cannot be required (`nullable: false`).",
    )
    max_null_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="This column's missing share above which a batch gets a warning (default "
        "the spec's max_null_fraction).",
    )
    max_invalid_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="This column's share of unreadable or out-of-domain values that rejects a "
        "batch (default the spec's max_invalid_fraction).",
    )
    cleaning: list[CleaningRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _domain_fits_type(self) -> ColumnSpec:
        if self.type == "categorical":
            if self.closed and not self.categories:
                raise ValueError("a closed categorical column needs `categories`")
            if self.min is not None or self.max is not None:
                raise ValueError("`min`/`max` apply to numeric columns only")
        elif self.categories is not None:
            raise ValueError(f"`categories` apply to categorical columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        if self.optional and not self.nullable:
            raise ValueError("an optional column cannot be `nullable: false`")
        return self

    def null_limit(self, default: float) -> float:
        """The missing share above which a batch gets a warning for this column."""
        return self.max_null_fraction if self.max_null_fraction is not None else default

    def invalid_limit(self, default: float) -> float:
        """The unreadable or out-of-domain share that rejects a batch for this column."""
        return self.max_invalid_fraction if self.max_invalid_fraction is not None else default


class TargetSpec(_Strict):
    """The column a model predicts; classes for classification tasks."""

    name: str
    classes: list[str] | None = None
    positive_class: str | None = None
    min: float | None = None
    max: float | None = None
    cleaning: list[CleaningRule] = Field(default_factory=list)


class GroupImputerSpec(_Strict):
    """Fill a column from other rows of the same group, fitted inside the model pipeline.

    Fitting it on training rows only keeps test rows from leaking into the model, and lets a
    single served record be imputed from what training saw.
    """

    column: str
    group_by: str
    strategy: Literal["mean", "median", "mode"] = "mean"


# ---------------------------------------------------------------- data layout and split


class PartitionSpec(_Strict):
    """How batches map onto daily partitions."""

    start_date: dt.date
    by: Literal["landing_date", "event_date"] = "landing_date"
    date_column: str | None = Field(
        default=None, description="Event date column (required when `by` is `event_date`)."
    )

    @model_validator(mode="after")
    def _event_date_needs_column(self) -> PartitionSpec:
        if self.by == "event_date" and not self.date_column:
            raise ValueError("`date_column` is required when partitioning by event date")
        return self


class HashSplit(_Strict):
    """Deterministic split by a hash of the row's identity: a row never changes side."""

    method: Literal["hash"] = "hash"
    by: list[str] | None = Field(
        default=None,
        description="Identity columns; omitted: all features, so duplicates share a side.",
    )
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    salt: str = ""


class TimeSplit(_Strict):
    """The last `test_days` days are the test set (forecasting)."""

    method: Literal["time"] = "time"
    test_days: int = Field(default=28, gt=0)


SplitSpec = Annotated[HashSplit | TimeSplit, Field(discriminator="method")]


class ForecastSpec(_Strict):
    """How a forecast use case's rows become daily series and the features derived from them.

    A series is identified by `series`; days it has no row are filled with `fill_value` (a
    missing row means no sales). Lags and rolling means are computed per series from past days
    only, so training and serving derive them the same way from stored history.
    """

    series: list[str] = Field(description="Columns identifying one series (e.g. `id`).")
    calendar_columns: list[str] = Field(
        default_factory=list,
        description="Columns constant per date (events, SNAP, week): filled rows take them "
        "from the other series' rows of the same date.",
    )
    fill_value: float = Field(default=0.0, description="Target of a day a series has no row.")
    lags: list[int] = Field(default_factory=lambda: [7, 28], description="Target lags, in days.")
    rolling_windows: list[int] = Field(
        default_factory=lambda: [7, 28], description="Windows of rolling target means, in days."
    )
    rolling_shift: int = Field(
        default=7, gt=0, description="Days between a rolling window's end and the predicted day."
    )
    seasonal_period: int = Field(
        default=7, gt=0, description="Lag of the seasonal-naive forecast RMSSE is scaled by."
    )
    series_sample: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of the series a retrain trains and tests on, every day of each (lags "
        "need contiguous days); a stable hash of the series id picks the same ones every time. "
        "None: every series. Serving and monitoring cover every series.",
    )

    @field_validator("lags", "rolling_windows")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v <= 0 for v in value):
            raise ValueError("lags and windows must be positive")
        return value


# ---------------------------------------------------------------- derived features

Operand = str | float
"""A column's name, or a number."""


class PrefixFeature(_Strict):
    """The first characters of a text column (``Item_Identifier``'s ``FD``/``DR``/``NC``)."""

    kind: Literal["prefix"] = "prefix"
    name: str
    column: str
    length: int = Field(gt=0)


class DifferenceFeature(_Strict):
    """``left - right``, each a numeric column or a number (a store's age: 2013 - its year)."""

    kind: Literal["difference"] = "difference"
    name: str
    left: Operand
    right: Operand


class RatioFeature(_Strict):
    """``numerator / denominator ** power`` (a body-mass index: weight / height ** 2)."""

    kind: Literal["ratio"] = "ratio"
    name: str
    numerator: Operand
    denominator: Operand
    power: float = 1.0


class ProductFeature(_Strict):
    """``left * right``, each a numeric column or a number."""

    kind: Literal["product"] = "product"
    name: str
    left: Operand
    right: Operand


class DatePartFeature(_Strict):
    """A part of a date column: its day of week, day of month, month, year or day of year."""

    kind: Literal["date_part"] = "date_part"
    name: str
    column: str
    part: Literal["day_of_week", "day_of_month", "month", "year", "day_of_year"]


class GroupStatFeature(_Strict):
    """A statistic of a numeric column per group, fitted on training rows inside the pipeline.

    Like a group imputer, it is learnt from training rows only (test rows never leak into it)
    and travels with the model, so a single served record gets its group's value; a group
    unseen in training gets the overall statistic.
    """

    kind: Literal["group_stat"] = "group_stat"
    name: str
    column: str
    group_by: str
    stat: Literal["mean", "median", "std", "count"] = "mean"


def derived_references(feature: object) -> set[str]:
    """The columns a derived feature reads."""
    fields = ("column", "left", "right", "numerator", "denominator", "group_by")
    return {v for v in (getattr(feature, f, None) for f in fields) if isinstance(v, str)}


DerivedFeature = Annotated[
    PrefixFeature
    | DifferenceFeature
    | RatioFeature
    | ProductFeature
    | DatePartFeature
    | GroupStatFeature,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- inputs as vendors ship them


class WideLayout(_Strict):
    """A wide file (one row per series, one column per day) read as long rows.

    Kaggle's M5 sales: ``id, item_id, ..., d_1, d_2, ...`` becomes one row per series and
    ``d`` with the ``sales`` of that day.
    """

    id_columns: list[str] = Field(min_length=1, description="Columns kept on every long row.")
    columns: str = Field(description="Name pattern of the value columns (``d_*``).")
    names_to: str = Field(description="Column of the long rows holding a value column's name.")
    values_to: str = Field(description="Column of the long rows holding its value.")


class ReferenceJoin(_Strict):
    """How a reference file (a calendar, a price list) joins onto the data rows."""

    keys: list[str] = Field(min_length=1, description="Key columns, in both files.")
    starts_series_by: list[str] = Field(
        default_factory=list,
        description="Columns of a series whose rows start at its first row with a match (an "
        "item is sold from its first price on); empty: every row is kept.",
    )


class InputFile(_Strict):
    """One kind of landed file, recognised by its name."""

    name: str = Field(description="What the file is (``sales``, ``calendar``).")
    pattern: str = Field(description="File name pattern, case-insensitive (``calendar*.csv``).")
    wide: WideLayout | None = None
    reference: ReferenceJoin | None = None

    @model_validator(mode="after")
    def _one_role(self) -> InputFile:
        if self.wide is not None and self.reference is not None:
            raise ValueError(f"inputs.{self.name}: a file is either wide data or a reference")
        return self


class InputsSpec(_Strict):
    """The files a use case accepts as vendors ship them.

    A landed file is the first entry whose pattern its name matches; a file matching none is
    data in the spec's own long layout. Reference files are never data themselves: the newest
    one landed is joined onto every data file's rows (long or wide), in declared order.
    """

    files: list[InputFile] = Field(min_length=1)

    @property
    def references(self) -> list[InputFile]:
        """The reference files, in join order."""
        return [f for f in self.files if f.reference is not None]


# ---------------------------------------------------------------- models and tuning


class ParamSpec(_Strict):
    """One dimension of a search space."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds_or_choices(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs `choices`")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs `low` and `high`")
            if self.low > self.high:
                raise ValueError(f"`low` ({self.low}) is greater than `high` ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scaled parameter needs `low` > 0")
        return self


class ModelFamilySpec(_Strict):
    """A candidate model family and the part of the search space that belongs to it."""

    family: str
    search_space: dict[str, ParamSpec] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)


class TuningSpec(_Strict):
    """Optuna's default budget (Dagster run config overrides it per run)."""

    n_trials: int = Field(default=30, gt=0)
    timeout_s: float | None = Field(default=600, gt=0)
    cv_folds: int = Field(default=3, ge=2)
    pruner_startup_trials: int = Field(default=4, ge=0)
    early_stopping_rounds: int = Field(default=40, gt=0)
    seed: int = 42


class PromotionSpec(_Strict):
    """How much better a challenger must be: than the champion, and than a trivial baseline."""

    margin: float = Field(
        default=0.01, ge=0, lt=1, description="Relative improvement of the primary metric."
    )
    baseline_confidence: float = Field(
        default=0.99,
        ge=0.5,
        lt=1,
        description="Every challenger must beat the trivial baseline (training mean or median, "
        "class prior, seasonal naive) on the test rows by the margin and beyond noise: the "
        "lower bound of this central bootstrap interval of its improvement must be above 0.",
    )


class RetrainingSpec(_Strict):
    """When continuous training retrains: any one condition is enough."""

    new_partitions: int = Field(default=7, gt=0, description="K new partitions since training.")
    max_metric_degradation: float = Field(
        default=0.1, gt=0, description="X: primary metric worse than the champion's by this share."
    )
    min_metric_change: float = Field(
        default=0.0,
        ge=0,
        description="Absolute worsening of the primary metric that X also needs: a relative "
        "change of a near-zero reference (the log loss of a near-perfect classifier) is noise.",
    )
    max_psi: float = Field(default=0.2, gt=0, description="Y: a feature's PSI above this.")
    weekly_schedule: str = Field(default="0 3 * * 1", description="Cron of the weekly retrain.")
    cooldown_days: int = Field(
        default=3,
        ge=0,
        description="Days after the last training window during which drift and degradation do "
        "not trigger again (the new model needs days to be judged).",
    )


class RetentionSpec(_Strict):
    """How long state is kept: what ``mlops gc`` removes (the ledger keeps the record of it)."""

    prediction_log_days: int = Field(
        default=90,
        gt=0,
        description="UTC days of the prediction log kept, today included; older days are "
        "deleted, and each closed day's objects compacted into one table.",
    )
    recent_versions: int = Field(
        default=3,
        ge=0,
        description="Newest registered versions per model slot whose imported BentoML models "
        "and bentos are kept besides the champion's and the challenger's.",
    )
    recent_studies: int = Field(
        default=2,
        ge=0,
        description="Newest Optuna studies (one per training data version) kept per model slot, "
        "with their MLflow trial runs, besides those of kept versions.",
    )


class SegmentSpec(_Strict):
    """A sub-model trained on a subset of the features and routed to by the fields a request has.

    A segmented use case has one registered model, champion and promotion gate per segment
    (``<use_case>__<segment>``) and one service that routes each record to the first segment
    whose features (and the use case's id columns) the record carries.
    """

    name: str
    features: list[str] = Field(min_length=1)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        return snake_case(value)


# ---------------------------------------------------------------- the spec


class UseCaseSpec(_Strict):
    """Everything the platform needs to know about one use case."""

    name: str
    description: str = ""
    task: Task
    target: TargetSpec
    id_columns: list[ColumnSpec] = Field(default_factory=list)
    features: list[ColumnSpec]
    group_imputers: list[GroupImputerSpec] = Field(default_factory=list)
    derived: list[DerivedFeature] = Field(
        default_factory=list,
        description="Features computed from the columns: row-level derivations, and group "
        "statistics fitted on training rows inside the pipeline.",
    )
    primary_metric: str
    reported_metrics: list[str] = Field(default_factory=list)
    partitions: PartitionSpec
    split: SplitSpec = Field(default_factory=HashSplit)
    training_window_days: int | None = Field(
        default=None, gt=0, description="Days of clean data used for training; None = all."
    )
    models: list[ModelFamilySpec]
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    retraining: RetrainingSpec = Field(default_factory=RetrainingSpec)
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    segments: list[SegmentSpec] = Field(default_factory=list)
    inputs: InputsSpec | None = Field(
        default=None,
        description="Vendor files: name patterns, a wide-to-long reshape, reference joins.",
    )
    forecast: ForecastSpec | None = Field(default=None, description="Series layout (forecast).")
    generator: str | None = Field(default=None, description="Name of the synthetic data generator.")
    min_rows_per_batch: int = Field(default=1, ge=0)
    max_null_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A nullable column's missing share above which a batch gets a warning (a "
        "real file cut into days leaves whole days without a column's values: not a reason to "
        "reject the day).",
    )
    max_invalid_fraction: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of unreadable or out-of-domain values in a column that rejects a batch.",
    )

    _segment: str | None = PrivateAttr(default=None)
    """Set on the view of one segment (:meth:`segment_spec`), never in a spec file."""

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        return snake_case(value)

    @field_validator("features")
    @classmethod
    def _at_least_one_feature(cls, value: list[ColumnSpec]) -> list[ColumnSpec]:
        if not value:
            raise ValueError("a use case needs at least one feature")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> UseCaseSpec:
        names = [c.name for c in self.id_columns + self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"columns declared twice: {duplicates}")
        if self.target.name in names:
            raise ValueError(f"target `{self.target.name}` is also declared as a column")
        self._check_target()
        self._check_metrics()
        self._check_models()
        self._check_references(set(names))
        self._check_forecast(set(names))
        self._check_derived()
        self._check_inputs()
        return self

    def _check_inputs(self) -> None:
        if self.inputs is None:
            return
        names = [f.name for f in self.inputs.files]
        if len(set(names)) != len(names):
            raise ValueError(f"inputs: file names declared twice: {names}")
        columns = {c.name for c in self.input_columns} | {self.target.name}
        produced = {f.wide.names_to for f in self.inputs.files if f.wide is not None}
        for file in self.inputs.files:
            if file.wide is not None:
                for ref in (*file.wide.id_columns, file.wide.values_to):
                    if ref not in columns:
                        raise ValueError(f"inputs.{file.name}.wide: unknown column `{ref}`")
            if file.reference is not None:
                for ref in (*file.reference.keys, *file.reference.starts_series_by):
                    if ref not in columns | produced:
                        raise ValueError(f"inputs.{file.name}.reference: unknown column `{ref}`")

    def _check_derived(self) -> None:
        kinds = {c.name: c.type for c in self.input_columns}
        taken = set(kinds) | {self.target.name}
        for feature in self.derived:
            where = f"derived.{feature.name}"
            if feature.name in taken:
                raise ValueError(f"{where}: the name is already a column or derived feature")
            referenced = [
                value
                for value in (
                    getattr(feature, field, None)
                    for field in ("column", "left", "right", "numerator", "denominator")
                )
                if isinstance(value, str)
            ]
            for ref in referenced:
                if ref not in kinds:
                    raise ValueError(f"{where}: unknown column `{ref}`")
            if isinstance(feature, PrefixFeature) and kinds[feature.column] != "categorical":
                raise ValueError(f"{where}: a prefix needs a categorical (text) column")
            if isinstance(feature, DatePartFeature) and kinds[feature.column] != "date":
                raise ValueError(f"{where}: a date part needs a date column")
            numeric_refs = (
                [] if isinstance(feature, PrefixFeature | DatePartFeature) else referenced
            )
            if isinstance(feature, GroupStatFeature):
                if feature.group_by not in kinds:
                    raise ValueError(f"{where}: unknown column `{feature.group_by}`")
                numeric_refs = [feature.column] if feature.stat != "count" else []
            for ref in numeric_refs:
                if kinds[ref] not in {"numeric", "integer"}:
                    raise ValueError(f"{where}: `{ref}` is not a numeric column")
            taken.add(feature.name)

    def _check_forecast(self, columns: set[str]) -> None:
        if (self.task == "forecast") != (self.forecast is not None):
            raise ValueError("`forecast` is required for, and only for, a forecast task")
        if self.forecast is None:
            return
        if not isinstance(self.split, TimeSplit) or self.partitions.by != "event_date":
            raise ValueError("a forecast task needs `split.method: time` and event-date partitions")
        for ref in [*self.forecast.series, *self.forecast.calendar_columns]:
            if ref not in columns:
                raise ValueError(f"forecast: unknown column `{ref}`")

    def _check_target(self) -> None:
        if self.task in {"binary", "multiclass"}:
            classes = self.target.classes or []
            wanted = 2 if self.task == "binary" else 3
            if len(classes) < wanted or (self.task == "binary" and len(classes) != 2):
                raise ValueError(
                    f"target.classes: a {self.task} task needs "
                    f"{'exactly 2' if self.task == 'binary' else 'at least 3'} classes"
                )
            if self.task == "binary" and self.target.positive_class not in classes:
                raise ValueError("target.positive_class must be one of target.classes")
        elif self.target.classes:
            raise ValueError(f"target.classes: a {self.task} task has no classes")

    def _check_metrics(self) -> None:
        for field, metric in [("primary_metric", self.primary_metric)] + [
            ("reported_metrics", m) for m in self.reported_metrics
        ]:
            if metric not in METRIC_TASKS:
                raise ValueError(
                    f"{field}: unknown metric `{metric}` (known: {sorted(METRIC_TASKS)})"
                )
            if self.task not in METRIC_TASKS[metric]:
                raise ValueError(f"{field}: metric `{metric}` does not apply to a {self.task} task")

    def _check_models(self) -> None:
        if not self.models:
            raise ValueError("models: at least one model family is needed")
        allowed = (
            REGRESSION_FAMILIES
            if self.task in {"regression", "forecast"}
            else CLASSIFICATION_FAMILIES
        )
        for model in self.models:
            if model.family not in allowed:
                raise ValueError(
                    f"models: family `{model.family}` is not available for a {self.task} task "
                    f"(available: {sorted(allowed)})"
                )

    def _check_references(self, columns: set[str]) -> None:
        for imputer in self.group_imputers:
            for ref in (imputer.column, imputer.group_by):
                if ref not in columns:
                    raise ValueError(f"group_imputers: unknown column `{ref}`")
        if isinstance(self.split, HashSplit):
            for ref in self.split.by or []:
                if ref not in columns:
                    raise ValueError(f"split.by: unknown column `{ref}`")
        self._check_segments()
        if self.partitions.date_column and self.partitions.date_column not in columns:
            raise ValueError(
                f"partitions.date_column: unknown column `{self.partitions.date_column}`"
            )

    def _check_segments(self) -> None:
        feature_names = {c.name for c in self.features}
        names = [s.name for s in self.segments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"segments: names declared twice: {duplicates}")
        if self.segments and self.partitions.by == "event_date":
            # Event-date monitoring judges one champion per range run; per-segment champions
            # there are not built yet.
            raise ValueError("segments: not supported with event-date partitions")
        feature_sets: dict[frozenset[str], str] = {}
        for segment in self.segments:
            unknown = sorted(set(segment.features) - feature_names)
            if unknown:
                raise ValueError(f"segments.{segment.name}: unknown features {unknown}")
            repeated = sorted({f for f in segment.features if segment.features.count(f) > 1})
            if repeated:
                raise ValueError(f"segments.{segment.name}: features listed twice: {repeated}")
            key = frozenset(segment.features)
            if key in feature_sets:
                raise ValueError(
                    f"segments.{segment.name}: same features as `{feature_sets[key]}` "
                    "(it could never be routed to)"
                )
            feature_sets[key] = segment.name
            for imputer in self.group_imputers:
                uses = {imputer.column, imputer.group_by} & feature_names
                if imputer.column in segment.features and not uses <= set(segment.features):
                    raise ValueError(
                        f"segments.{segment.name}: group imputer of `{imputer.column}` needs "
                        f"`{imputer.group_by}`, which the segment does not have"
                    )

    # -------------------------------------------------------------- segments

    @property
    def segment(self) -> str | None:
        """The segment this spec is the view of (``None`` for a whole use case)."""
        return self._segment

    @property
    def segment_names(self) -> list[str]:
        """Names of the use case's segments, in spec order (routing order)."""
        return [s.name for s in self.segments]

    def segment_spec(self, name: str) -> UseCaseSpec:
        """The use case as one segment's model sees it: the segment's features only.

        Training, the promotion gate, the registry, scoring and management code take this view
        like any unsegmented spec: its :meth:`registered_model_name` is ``<use_case>__<segment>``
        and its asset keys carry the segment, while its name (asset group, storage prefixes,
        retrain lock) stays the use case's.
        """
        found = next((s for s in self.segments if s.name == name), None)
        if found is None:
            known = ", ".join(self.segment_names) or "none"
            raise KeyError(f"{self.name}: no segment `{name}` (segments: {known})")
        readable = set(found.features) | set(self.id_names)
        derived = [d for d in self.derived if derived_references(d) <= readable]
        keep = set(found.features) | {d.name for d in derived}
        view = self.model_copy(
            update={
                "features": [c for c in self.features if c.name in keep],
                "group_imputers": [g for g in self.group_imputers if g.column in keep],
                "derived": derived,
                "segments": [],
            }
        )
        view._segment = name
        return view

    def segment_specs(self) -> list[UseCaseSpec]:
        """One view per segment, or the spec itself when it has no segments."""
        return [self.segment_spec(n) for n in self.segment_names] or [self]

    # -------------------------------------------------------------- derived views

    def digest(self) -> str:
        """A short digest of the spec: quality verdicts record the spec they were made under."""
        payload = self.model_dump_json(exclude={"description"}).encode()
        return hashlib.sha1(payload).hexdigest()[:12]

    @property
    def input_columns(self) -> list[ColumnSpec]:
        """Columns a record may carry: ids first, then features."""
        return [*self.id_columns, *self.features]

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's features."""
        return [c.name for c in self.features]

    @property
    def id_names(self) -> list[str]:
        """Names of the id columns."""
        return [c.name for c in self.id_columns]

    @property
    def is_classification(self) -> bool:
        """Whether the task predicts classes."""
        return self.task in {"binary", "multiclass"}

    def column(self, name: str) -> ColumnSpec:
        """The spec of one input column."""
        for col in self.input_columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name}: no column `{name}`")

    def registered_model_name(self, segment: str | None = None) -> str:
        """MLflow registered model name: the use case, or ``<use_case>__<segment>``.

        A segment's view names its own segment's model when no segment is given.
        """
        segment = segment or self._segment
        return f"{self.name}__{segment}" if segment else self.name
