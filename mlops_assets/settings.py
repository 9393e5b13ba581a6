"""Where state lives, derived from environment variables when asked, never at import time.

Every location defaults to a folder under ``MLOPS_HOME`` (``./.mlops``) so that the embedded
default needs no server; each one is overridden by its own variable for the deployed stack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def mlops_home() -> Path:
    """Root folder of all embedded state (``MLOPS_HOME``, default ``./.mlops``)."""
    return Path(os.environ.get("MLOPS_HOME", ".mlops")).expanduser().resolve()


def storage_uri() -> str:
    """Where asset tables are stored: a folder or ``s3://bucket/prefix``."""
    return os.environ.get("MLOPS_STORAGE_URI") or str(mlops_home() / "storage")


def prediction_log_database() -> str | None:
    """SQLAlchemy URL of a database holding the prediction log instead of the storage.

    ``MLOPS_PREDICTION_LOG_DATABASE`` (e.g. ``postgresql+psycopg2://user:pass@host/mlops``);
    unset, the log is Parquet under the storage location.
    """
    return os.environ.get("MLOPS_PREDICTION_LOG_DATABASE") or None


def landing_uri() -> str:
    """Where raw batches land: ``<landing>/<use_case>/<YYYY-MM-DD>/<file>``."""
    return os.environ.get("MLOPS_LANDING_URI") or str(mlops_home() / "landing")


def mlflow_tracking_uri() -> str:
    """MLflow tracking server or database (default: SQLite under ``MLOPS_HOME``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlops_home() / 'mlflow.db'}"


def mlflow_artifact_uri() -> str:
    """Artifact root for experiments created against a local tracking database."""
    return os.environ.get("MLOPS_MLFLOW_ARTIFACTS_URI") or (mlops_home() / "mlartifacts").as_uri()


def optuna_storage_uri() -> str:
    """Optuna's study database; never MLflow's (both keep an ``alembic_version`` table)."""
    return os.environ.get("MLOPS_OPTUNA_STORAGE") or f"sqlite:///{mlops_home() / 'optuna.db'}"


def optuna_workers() -> int:
    """Worker processes sharing an Optuna study (``MLOPS_OPTUNA_WORKERS``, default 1).

    More than one needs a server database (PostgreSQL); with SQLite tuning runs one worker.
    """
    value = os.environ.get("MLOPS_OPTUNA_WORKERS") or "1"
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"MLOPS_OPTUNA_WORKERS must be a whole number, got {value!r}") from None
    if workers < 1:
        raise ValueError(f"MLOPS_OPTUNA_WORKERS must be at least 1, got {workers}")
    return workers


def is_postgres(url: str | None) -> bool:
    """Whether a SQLAlchemy URL points at PostgreSQL."""
    return bool(url) and str(url).startswith(("postgresql://", "postgresql+", "postgres://"))


def lock_url() -> str | None:
    """PostgreSQL database holding the retrain locks (advisory locks), or ``None``.

    ``MLOPS_LOCK_URL`` if set; else Optuna's database when it is PostgreSQL (every process of a
    deployment reaches it already); else ``None``: a file lock under :func:`lock_dir`, which
    only excludes processes that share that folder.
    """
    explicit = os.environ.get("MLOPS_LOCK_URL")
    if explicit:
        return explicit
    optuna = optuna_storage_uri()
    return optuna if is_postgres(optuna) else None


def lock_dir() -> Path:
    """Folder of the file locks used without a PostgreSQL lock database."""
    return mlops_home() / "locks"


def bentoml_home() -> Path:
    """The BentoML store holding imported models and built bentos."""
    return Path(os.environ.get("BENTOML_HOME") or mlops_home() / "bentoml").resolve()


def dagster_home() -> Path:
    """The Dagster instance folder (``DAGSTER_HOME``, default ``<MLOPS_HOME>/dagster``)."""
    return Path(os.environ.get("DAGSTER_HOME") or mlops_home() / "dagster").resolve()


def is_s3(uri: str) -> bool:
    """Whether a storage URI points at S3-compatible object storage."""
    return uri.startswith("s3://")


def ensure_dagster_home() -> Path:
    """Point ``DAGSTER_HOME`` at the instance folder, configured by the repository's dagster.yaml.

    The instance folder holds a link to the root ``dagster.yaml`` (a copy where links are not
    possible), so editing the root file configures the embedded instance.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    source = REPO_ROOT / "dagster.yaml"
    if source.exists() and not target.exists():
        try:
            target.symlink_to(source)
        except OSError:
            target.write_text(source.read_text())
    return home


RETRAIN_EXECUTORS = ("in_process", "multiprocess", "k8s")


def retrain_executor() -> Any:
    """Executor of the retrain jobs, from ``MLOPS_RETRAIN_EXECUTOR``.

    ``in_process`` (default: one process, no per-step start-up cost), ``multiprocess`` (a
    process per step) or ``k8s`` (``dagster_k8s.k8s_job_executor``: a pod per step, configured
    by ``deploy/k8s/run_config.yaml``; needs the dagster-k8s package). Read when definitions
    load, never at import.
    """
    import dagster as dg

    name = (os.environ.get("MLOPS_RETRAIN_EXECUTOR") or "in_process").strip()
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise ValueError(
                "MLOPS_RETRAIN_EXECUTOR=k8s needs the dagster-k8s package (pip install "
                "dagster-k8s, same release as dagster)"
            ) from None
        return k8s_job_executor
    raise ValueError(
        f"MLOPS_RETRAIN_EXECUTOR must be one of {', '.join(RETRAIN_EXECUTORS)}, got {name!r}"
    )
