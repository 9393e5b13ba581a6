"""Every name another module reads: asset keys, jobs, sensors, schedules, tags, folders, models.

Names are data: the Dagster definitions build their keys and names from here, and the modules
that drive Dagster from outside (the CLI, the demo) and the pure libraries that read what a run
wrote (a run tag, a metadata key, a storage folder) import the same functions and constants.
Nothing here imports Dagster: an asset key is given as its path (a list of strings), which the
definitions wrap in ``dg.AssetKey``.

A use case has one or more model slots: an unsegmented use case is one slot (``segment`` is
``None``), a segmented one a slot per segment. Per-slot names take the segment.
"""

from __future__ import annotations

LOCATION = "mlops_assets"
"""The code location's name in every workspace (instigator state is keyed by it)."""
COMPONENT_TYPE = "mlops_assets.components.UseCase"
"""The component type of a use case's ``defs.yaml``."""
DEFS_FILE = "defs.yaml"

# ---------------------------------------------------------------- assets

RAW_DATA = "raw_data"
CLEAN_DATA = "clean_data"
TRAIN_SET = "train_set"
TEST_SET = "test_set"
TUNED_MODEL = "tuned_model"
CHAMPION_MODEL = "champion_model"
PROMOTION_LEDGER = "promotion_ledger"
CHAMPION_BENTO = "champion_bento"
MODEL_PERFORMANCE = "model_performance"
DATA_DRIFT = "data_drift"

SLOT_ASSETS = (TUNED_MODEL, CHAMPION_MODEL)
"""Assets a use case has once per model slot (``<uc>/<segment>/<asset>`` for a segment)."""


def asset_path(use_case: str, asset: str, segment: str | None = None) -> list[str]:
    """The key path of an asset: ``[uc, asset]``, or ``[uc, segment, asset]`` for a slot's."""
    return [use_case, *([segment] if segment else []), asset]


def model_name(use_case: str, segment: str | None = None) -> str:
    """The registered MLflow model of a slot: the use case, or ``<use_case>__<segment>``."""
    return f"{use_case}__{segment}" if segment else use_case


# ---------------------------------------------------------------- jobs, sensors, schedules, ops


def ingest_job(use_case: str) -> str:
    """Daily job: landed days' raw and clean data, their checks and their monitoring."""
    return f"{use_case}__ingest"


def retrain_job(use_case: str) -> str:
    """Retraining job: splits, tuning, the promotion gate, the ledger and the bento."""
    return f"{use_case}__retrain"


def simulate_job(use_case: str) -> str:
    """Demo job landing a generated day."""
    return f"{use_case}__simulate_new_day"


def landing_sensor(use_case: str) -> str:
    """The sensor turning newly landed files into ingest runs."""
    return f"{use_case}__landing_sensor"


def retrain_sensor(use_case: str) -> str:
    """The retraining policy's sensor."""
    return f"{use_case}__retrain_sensor"


def weekly_schedule(use_case: str) -> str:
    """The weekly retrain schedule."""
    return f"{use_case}__weekly_retrain"


def simulate_schedule(use_case: str) -> str:
    """The daily schedule of the simulate job (off by default)."""
    return f"{use_case}__simulate_daily"


def splits_op(use_case: str) -> str:
    """The op computing ``train_set`` and ``test_set`` together."""
    return f"{use_case}__splits"


def monitoring_op(use_case: str) -> str:
    """The op computing ``model_performance`` and ``data_drift`` together."""
    return f"{use_case}__monitoring"


def simulate_op(use_case: str) -> str:
    """The op of the simulate job."""
    return f"{use_case}__land_generated_day"


def retrain_pool(use_case: str) -> str:
    """The concurrency pool of a use case's retrain steps: one retraining run at a time."""
    return f"{use_case}__retrain"


RUN_FAILURE_SENSOR = "run_failure_alerts"
"""The code location's sensor posting an alert for every failed run (with a webhook set)."""


def job_use_case(job_name: str) -> str | None:
    """The use case a job belongs to (``<use_case>__<job>``), or ``None`` for another job."""
    use_case, separator, _ = job_name.partition("__")
    return use_case if separator and use_case else None


def retraining_instigators(use_case: str) -> list[tuple[str, str]]:
    """``(kind, name)`` of the automation that retrains a use case by itself."""
    return [("sensor", retrain_sensor(use_case)), ("schedule", weekly_schedule(use_case))]


# ---------------------------------------------------------------- run tags

TRIGGER_TAG = "mlops/trigger"
TRIGGER_REASON_TAG = "mlops/trigger_reason"
POLICY_K_TAG = "mlops/policy_K"
POLICY_X_TAG = "mlops/policy_X"
POLICY_Y_TAG = "mlops/policy_Y"
SEGMENT_TAG = "mlops/segment"
SEGMENTS_TAG = "mlops/segments"
PAUSED_SEGMENTS_TAG = "mlops/paused_segments"
LAUNCHED_BY_TAG = "mlops/launched_by"
SOURCE_FINGERPRINT_TAG = "mlops/source_fingerprint"
AS_OF_TAG = "mlops/as_of"
"""When a run's decisions take effect (ISO 8601): a simulated or backfilled day's own time."""
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
HEARTBEAT_HOST_TAG = "mlops/heartbeat_host"
HEARTBEAT_PID_TAG = "mlops/heartbeat_pid"
HEARTBEAT_STARTED_TAG = "mlops/heartbeat_process_started"
HEARTBEAT_AT_TAG = "mlops/heartbeat_at"
"""The process running a run and its last sign of life (see ``components/runs.py``)."""
REAPED_TAG = "mlops/reaped"
"""Set on a run that was marked failed because its process was gone (why, in words)."""
RETRY_OF_TAG = "mlops/retry_of"
"""A retrain the sensor requested again because the run it had requested died (its id)."""

# ---------------------------------------------------------------- metadata keys read elsewhere

LAST_DAY = "last_day"
"""``train_set``: the last day of the training window (the retraining policy counts from it)."""
ROWS_OUT = "rows_out"
CHAMPION_VERSION = "champion_version"
PROMOTED = "promoted"
SOURCE_FINGERPRINT = "source_fingerprint"

# ---------------------------------------------------------------- MLflow

CHAMPION = "champion"
CHALLENGER = "challenger"
DATA_PARTITIONS_TAG = "data_partitions"
DATA_VERSION_TAG = "data_version"
DAGSTER_RUN_TAG = "dagster.run_id"
STUDY_TAG = "optuna.study"
TRIAL_PROCESS_ATTR = "process"
"""Optuna trial user attribute: the process running the trial (host, pid, start time)."""
TEST_METRIC_PREFIX = "test_"
"""Model version tags ``test_<metric>``: the version's latest scores on the test set."""

# ---------------------------------------------------------------- storage folders


def quality_prefix(use_case: str) -> str:
    """Per-day quality verdicts."""
    return f"{use_case}/quality/"


def ledger_prefix(use_case: str) -> str:
    """Promotion ledger entries (one object each)."""
    return f"{use_case}/ledger/"


def ingestion_prefix(use_case: str) -> str:
    """The ingestion ledger: one entry per landed file version that ``raw_data`` read."""
    return f"{use_case}/ingestion_ledger/"


def prediction_log_prefix(use_case: str) -> str:
    """The service's prediction log."""
    return f"{use_case}/prediction_log/"


def prediction_log_table(model: str) -> str:
    """The prediction log's table in a database (one per registered model)."""
    return f"prediction_log__{model}"


def reports_prefix(use_case: str) -> str:
    """HTML reports (data drift)."""
    return f"{use_case}/reports/"


def monitoring_prefix(use_case: str) -> str:
    """Per-day monitoring summaries the retraining policy reads."""
    return f"{use_case}/monitoring/"


def profiles_prefix(use_case: str) -> str:
    """Reference profiles of model versions' training rows (``<model>/v<version>.json``)."""
    return f"{use_case}/profiles/"


def automation_prefix(use_case: str) -> str:
    """Automation state written from outside Dagster (paused segments)."""
    return f"{use_case}/automation/"


# ---------------------------------------------------------------- BentoML


def bento_name(use_case: str) -> str:
    """Name of a use case's bentos."""
    return f"{use_case}_service"


def tag_version(version: str, run_id: str) -> str:
    """The BentoML version string of an MLflow model version (``v3-1a2b3c4d``)."""
    return f"v{version}-{run_id[:8]}"


def bento_model_tag(model: str, version: str, run_id: str) -> str:
    """BentoML model tag of an MLflow model version (named like the registered model)."""
    return f"{model}:{tag_version(version, run_id)}"
