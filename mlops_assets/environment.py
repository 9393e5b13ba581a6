"""The environment, resolved once: every location and flag the platform reads, in one object.

:meth:`Environment.from_env` is the only place that reads the process environment. It runs once
per entry point: when Dagster loads the code location (``definitions.py``), when an ``mlops``
command starts, and when a bento worker starts. The Dagster resources are built from it by
:func:`mlops_assets.components.resources.resources_for` (with the values visible in the UI;
secrets stay ``dg.EnvVar`` references), and the plain clients the CLI and the bento use are built
by its methods (:meth:`lake`, :meth:`landing_zone`, :meth:`tracking`, :meth:`locks`). Library code
below this module never reads the environment: it is given stores, clients and values.

Every location defaults to a folder under ``MLOPS_HOME`` (``./.mlops``), so the embedded default
needs no server; each is overridden by its own variable for the deployed stack.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.ingest.landing import LandingZone
from mlops_assets.registry.lock import RetrainLocks
from mlops_assets.registry.tracking import Tracking
from mlops_assets.storage.objectstore import ObjectStore, open_store

REPO_ROOT = Path(__file__).resolve().parent.parent
RETRAIN_EXECUTORS = ("in_process", "multiprocess", "k8s")
S3_VARIABLES = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
}
DEFAULT_MAX_RECORDS = 10_000
MIN_API_KEY_CHARS = 16


QUIET_DEFAULTS = {
    # MLflow's "Downloading artifacts" progress bar, drawn on every model load from the
    # registry (a CLI command, a monitoring run, the champion follower).
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # The level MLflow gives its logger when imported (over any set before): not INFO, which
    # prints "Creating initial MLflow database tables" and the like in every terminal.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}
"""Library settings that keep terminals readable; a value the environment sets wins."""
KNOWN_NOTICES = {
    # Logged on every scikit-learn model logged: ours are logged as cloudpickle on purpose
    # (custom transformers in the pipeline) and only ever loaded from our own registry.
    "mlflow.sklearn": "Saving scikit-learn models in the pickle or cloudpickle format",
}


class _KnownNotice(logging.Filter):
    """Drops one known log message of a library logger (by the start of its text)."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def quiet_libraries(environ: MutableMapping[str, str] | None = None) -> None:
    """Keep MLflow's notices out of terminals: the one place that quiets libraries.

    Sets :data:`QUIET_DEFAULTS` where the environment leaves them unset or empty (so setting
    ``MLFLOW_LOGGING_LEVEL=INFO`` brings MLflow's lines back), and drops the known notices of
    :data:`KNOWN_NOTICES`. Called where a process starts using the platform: the code
    location's definitions (webserver, daemon, runs) and the ``mlops`` command. Idempotent.
    """
    env = os.environ if environ is None else environ
    for name, value in QUIET_DEFAULTS.items():
        if not env.get(name, "").strip():  # MLflow refuses an empty value
            env[name] = value
    level = env["MLFLOW_LOGGING_LEVEL"].strip().upper()
    logging.getLogger("mlflow").setLevel(level)  # if MLflow was imported already
    for name, start in KNOWN_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownNotice) for f in logger.filters):
            logger.addFilter(_KnownNotice(start))


class SettingError(ValueError):
    """A variable has a value the platform cannot use; the message names it."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {value!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise SettingError(f"{name} must be a number, got {value!r}") from None


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "on", "yes"}:
        return True
    if value in {"0", "false", "off", "no"}:
        return False
    raise SettingError(f"{name} must be on/off, got {value!r}")


def _names(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in environ.get(name, "").split(",") if part.strip())


def is_postgres(url: str | None) -> bool:
    """Whether a SQLAlchemy URL points at PostgreSQL."""
    return bool(url) and str(url).startswith(("postgresql://", "postgresql+", "postgres://"))


def is_s3(uri: str) -> bool:
    """Whether a storage URI points at S3-compatible object storage."""
    return uri.startswith("s3://")


@dataclass(frozen=True)
class ServingOptions:
    """How a service answers: request limits, batching and the prediction log.

    Attributes:
        max_records: Records accepted in one request (``MLOPS_SERVING_MAX_RECORDS``); larger
            requests are answered 422 without being read further.
        max_batch_records: Records the micro-batcher merges into one model call
            (``MLOPS_SERVING_MAX_BATCH_RECORDS``); a bigger request is scored alone.
        batch_wait_ms: Time a batch waits for company after its first request
            (``MLOPS_SERVING_BATCH_WAIT_MS``). 2 ms roughly doubled batch sizes at concurrency
            32 for 2 ms of latency; 0 batches only what queued while the previous batch ran.
        workers: Service worker processes (``MLOPS_SERVING_WORKERS``).
        threads: Native threads (OpenMP, BLAS) for small batches (``MLOPS_SERVING_THREADS``).
            One by default: small batches gain nothing from more, and on a busy machine OpenMP
            threads spinning at barriers stalled predictions by 100 ms (measured).
        parallel_records: Batches of at least this many records use the libraries' default
            thread count instead (``MLOPS_SERVING_PARALLEL_RECORDS``): bulk scoring is faster.
        prediction_log: Whether answers are logged (``MLOPS_PREDICTION_LOG``, on by default).
        log_flush_s: Seconds between prediction log files (``MLOPS_PREDICTION_LOG_FLUSH_S``).
        log_max_rows: Buffered rows that force a flush (``MLOPS_PREDICTION_LOG_MAX_ROWS``).
        follow_champion: Whether the service follows the registry's ``champion`` alias
            (``MLOPS_FOLLOW_CHAMPION``): off, a bento serves the version it was built with; on
            (what ``mlops serve`` sets), a promotion or rollback is served without a restart.
        champion_poll_s: Seconds between looks at the alias (``MLOPS_CHAMPION_POLL_S``).
        segments: The segments a segmented use case's service answers for
            (``MLOPS_SERVE_SEGMENTS``, comma-separated; what ``mlops serve --segment`` sets).
            Empty: every segment.
        use_case: The use case when serving ``bento/`` directly rather than a built bento
            (``MLOPS_USE_CASE``; a built bento carries it as a build argument).
        model_tag: Likewise, the BentoML model served (``MLOPS_MODEL_TAG``).
        max_body_bytes: Largest request body read (``MLOPS_SERVING_MAX_BODY_BYTES``); a bigger
            one is answered 413 before it is read. ``None`` (the default): room for
            ``max_records`` records of the use case and 4 MiB more
            (:func:`mlops_assets.serving.http.body_limit`).
        body_timeout_s: Seconds a client has to send a whole request body
            (``MLOPS_SERVING_BODY_TIMEOUT_S``); a slower one is answered 408 and disconnected.
        api_keys: Keys a client must present on the scoring routes (``MLOPS_SERVING_API_KEYS``,
            comma-separated), as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``;
            empty: the routes are open. Health routes are always open.
    """

    max_records: int = DEFAULT_MAX_RECORDS
    max_batch_records: int = 2048
    batch_wait_ms: float = 2.0
    workers: int = 1
    threads: int = 1
    parallel_records: int = 1000
    prediction_log: bool = True
    log_flush_s: float = 5.0
    log_max_rows: int = 100_000
    follow_champion: bool = False
    champion_poll_s: float = 10.0
    segments: tuple[str, ...] = ()
    use_case: str = "bigmart_sales"
    model_tag: str | None = None
    max_body_bytes: int | None = None
    body_timeout_s: float = 30.0
    api_keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingOptions:
        """Options from ``MLOPS_SERVING_*``, ``MLOPS_PREDICTION_LOG*`` and the follow flags."""
        env = os.environ if environ is None else environ
        options = cls(
            max_records=_int(env, "MLOPS_SERVING_MAX_RECORDS", cls.max_records),
            max_batch_records=_int(env, "MLOPS_SERVING_MAX_BATCH_RECORDS", cls.max_batch_records),
            batch_wait_ms=_float(env, "MLOPS_SERVING_BATCH_WAIT_MS", cls.batch_wait_ms),
            workers=_int(env, "MLOPS_SERVING_WORKERS", cls.workers),
            threads=_int(env, "MLOPS_SERVING_THREADS", cls.threads),
            parallel_records=_int(env, "MLOPS_SERVING_PARALLEL_RECORDS", cls.parallel_records),
            prediction_log=_flag(env, "MLOPS_PREDICTION_LOG", cls.prediction_log),
            log_flush_s=_float(env, "MLOPS_PREDICTION_LOG_FLUSH_S", cls.log_flush_s),
            log_max_rows=_int(env, "MLOPS_PREDICTION_LOG_MAX_ROWS", cls.log_max_rows),
            follow_champion=_flag(env, "MLOPS_FOLLOW_CHAMPION", cls.follow_champion),
            champion_poll_s=_float(env, "MLOPS_CHAMPION_POLL_S", cls.champion_poll_s),
            segments=_names(env, "MLOPS_SERVE_SEGMENTS"),
            use_case=env.get("MLOPS_USE_CASE") or cls.use_case,
            model_tag=env.get("MLOPS_MODEL_TAG") or None,
            max_body_bytes=_int(env, "MLOPS_SERVING_MAX_BODY_BYTES", 0) or None,
            body_timeout_s=_float(env, "MLOPS_SERVING_BODY_TIMEOUT_S", cls.body_timeout_s),
            api_keys=_names(env, "MLOPS_SERVING_API_KEYS"),
        )
        counts = (options.max_records, options.max_batch_records, options.workers, options.threads)
        if min(counts) < 1:
            raise SettingError("serving limits and worker count must be positive")
        if options.champion_poll_s <= 0:
            raise SettingError("MLOPS_CHAMPION_POLL_S must be positive")
        if options.body_timeout_s <= 0 or (options.max_body_bytes or 0) < 0:
            raise SettingError(
                "MLOPS_SERVING_BODY_TIMEOUT_S and MLOPS_SERVING_MAX_BODY_BYTES must be positive"
            )
        short = [key for key in options.api_keys if len(key) < MIN_API_KEY_CHARS]
        if short:
            raise SettingError(
                f"MLOPS_SERVING_API_KEYS: every key needs at least {MIN_API_KEY_CHARS} "
                f"characters ({len(short)} shorter)"
            )
        return options


@dataclass(frozen=True)
class Environment:
    """Where state lives and how the platform runs, as the environment says.

    Attributes:
        home: Root folder of all embedded state (``MLOPS_HOME``, default ``./.mlops``).
        storage_uri: Asset tables: a folder or ``s3://bucket/prefix`` (``MLOPS_STORAGE_URI``).
        landing_uri: Where batches land (``MLOPS_LANDING_URI``).
        tracking_uri: MLflow tracking server or database (``MLFLOW_TRACKING_URI``; default
            SQLite under the home).
        artifact_uri: Artifact root for experiments created against a local tracking database
            (``MLOPS_MLFLOW_ARTIFACTS_URI``).
        optuna_url: Optuna's study database, never MLflow's (``MLOPS_OPTUNA_STORAGE``).
        optuna_workers: Worker processes sharing a study (``MLOPS_OPTUNA_WORKERS``).
        prediction_log_database: A database holding the prediction log instead of the storage
            (``MLOPS_PREDICTION_LOG_DATABASE``).
        lock_url: PostgreSQL database of the retrain locks (``MLOPS_LOCK_URL``; default
            Optuna's database when it is PostgreSQL, else file locks under the home).
        bentoml_home: The BentoML store (``BENTOML_HOME``).
        dagster_home: The Dagster instance folder (``DAGSTER_HOME``).
        model_cache: Local copies of registered pipelines (``MLOPS_MODEL_CACHE``).
        specs_dirs: Folders of outside use cases, ``<use_case>/defs.yaml`` each
            (``MLOPS_SPECS_DIRS``, ``:``-separated).
        bento_source: The bento's service source and build file (``MLOPS_BENTO_SOURCE``).
        retrain_executor: ``in_process``, ``multiprocess`` or ``k8s`` (``MLOPS_RETRAIN_EXECUTOR``).
        prediction_log_spool: A local folder where a service worker appends each answered batch
            before its answers leave (``MLOPS_PREDICTION_LOG_SPOOL``, default
            ``<MLOPS_HOME>/spool``), so a killed worker's answers still reach the log.
        s3: S3 settings from the standard ``AWS_*`` variables that are set.
        from_variables: For settings that may hold a secret (database URLs, S3 keys), the
            variable they came from, so Dagster resources refer to it instead of the value.
        serving: How a service answers (``MLOPS_SERVING_*``).
        alert_webhook: Where alerts are posted (``MLOPS_ALERT_WEBHOOK``; unset: no alerts).
            It often holds a token, so the Dagster resource refers to the variable.
    """

    home: Path
    storage_uri: str
    landing_uri: str
    tracking_uri: str
    artifact_uri: str
    optuna_url: str
    optuna_workers: int
    prediction_log_database: str | None
    lock_url: str | None
    bentoml_home: Path
    dagster_home: Path
    model_cache: Path
    specs_dirs: tuple[Path, ...]
    bento_source: Path
    retrain_executor: str
    prediction_log_spool: Path
    s3: dict[str, str] = field(default_factory=dict)
    from_variables: dict[str, str] = field(default_factory=dict)
    serving: ServingOptions = field(default_factory=ServingOptions)
    alert_webhook: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Resolve every setting from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("MLOPS_HOME") or ".mlops").expanduser().resolve()
        optuna = env.get("MLOPS_OPTUNA_STORAGE") or f"sqlite:///{home / 'optuna.db'}"
        lock = env.get("MLOPS_LOCK_URL") or (optuna if is_postgres(optuna) else None)
        workers = _int(env, "MLOPS_OPTUNA_WORKERS", 1)
        if workers < 1:
            raise SettingError(f"MLOPS_OPTUNA_WORKERS must be at least 1, got {workers}")
        executor = (env.get("MLOPS_RETRAIN_EXECUTOR") or "in_process").strip()
        if executor not in RETRAIN_EXECUTORS:
            raise SettingError(
                f"MLOPS_RETRAIN_EXECUTOR must be one of {', '.join(RETRAIN_EXECUTORS)}, "
                f"got {executor!r}"
            )
        storage = env.get("MLOPS_STORAGE_URI") or str(home / "storage")
        landing = env.get("MLOPS_LANDING_URI") or str(home / "landing")
        secrets = {
            "optuna_url": "MLOPS_OPTUNA_STORAGE",
            "prediction_log_database": "MLOPS_PREDICTION_LOG_DATABASE",
            "lock_url": "MLOPS_LOCK_URL" if env.get("MLOPS_LOCK_URL") else "MLOPS_OPTUNA_STORAGE",
            "alert_webhook": "MLOPS_ALERT_WEBHOOK",
            **S3_VARIABLES,
        }
        return cls(
            home=home,
            storage_uri=storage if is_s3(storage) else str(Path(storage).expanduser().resolve()),
            landing_uri=landing if is_s3(landing) else str(Path(landing).expanduser().resolve()),
            tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
            artifact_uri=env.get("MLOPS_MLFLOW_ARTIFACTS_URI") or (home / "mlartifacts").as_uri(),
            optuna_url=optuna,
            optuna_workers=workers,
            prediction_log_database=env.get("MLOPS_PREDICTION_LOG_DATABASE") or None,
            lock_url=lock,
            bentoml_home=Path(env.get("BENTOML_HOME") or home / "bentoml").resolve(),
            dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster").resolve(),
            model_cache=Path(env.get("MLOPS_MODEL_CACHE") or home / "cache" / "models"),
            specs_dirs=tuple(
                Path(p) for p in env.get("MLOPS_SPECS_DIRS", "").split(os.pathsep) if p
            ),
            bento_source=Path(env.get("MLOPS_BENTO_SOURCE") or REPO_ROOT / "bento").resolve(),
            retrain_executor=executor,
            prediction_log_spool=Path(
                env.get("MLOPS_PREDICTION_LOG_SPOOL") or home / "spool"
            ).resolve(),
            s3={name: env[var] for name, var in S3_VARIABLES.items() if env.get(var)},
            from_variables={name: var for name, var in secrets.items() if env.get(var)},
            serving=ServingOptions.from_env(env),
            alert_webhook=(env.get("MLOPS_ALERT_WEBHOOK") or "").strip() or None,
        )

    # ------------------------------------------------------------ derived locations

    @property
    def lock_dir(self) -> Path:
        """Folder of the file locks used without a PostgreSQL lock database."""
        return self.home / "locks"

    @property
    def dagster_yaml(self) -> Path:
        """The repository's instance configuration the embedded instance links to."""
        return REPO_ROOT / "instance" / "dagster.yaml"

    def s3_options(self) -> dict[str, str]:
        """Endpoint, credentials and region for S3 stores (only those set)."""
        return dict(self.s3)

    # ------------------------------------------------------------ plain clients

    def lake(self) -> ObjectStore:
        """The asset storage (tables, verdicts, ledgers, the prediction log)."""
        return open_store(self.storage_uri, **self._s3_for(self.storage_uri))

    def landing_zone(self) -> LandingZone:
        """The landing zone."""
        return LandingZone(open_store(self.landing_uri, **self._s3_for(self.landing_uri)))

    def tracking(self) -> Tracking:
        """MLflow tracking and registry, with the local model cache."""
        return Tracking(self.tracking_uri, self.artifact_uri, self.model_cache)

    def locks(self, run_id: str | None = None) -> RetrainLocks:
        """The retrain locks: PostgreSQL advisory locks, or file locks under the home."""
        return RetrainLocks(self.lock_url, self.lock_dir, run_id)

    def _s3_for(self, uri: str) -> dict[str, str]:
        return self.s3_options() if is_s3(uri) else {}

    def ensure_dagster_home(self) -> Path:
        """Create the instance folder, configured by the repository's ``instance/dagster.yaml``.

        The folder holds a link to that file (a copy where links are not possible), so editing
        it configures the embedded instance. A link left dangling by an older layout (the file
        was at the repository's root) is replaced. Sets ``DAGSTER_HOME`` for this process:
        Dagster's own code reads it there.
        """
        home = self.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
        target = home / "dagster.yaml"
        source = self.dagster_yaml
        if target.is_symlink() and not target.exists():
            target.unlink()
        if source.exists() and not target.exists():
            try:
                target.symlink_to(source)
            except OSError:
                target.write_text(source.read_text())
        return home

    def serve_variables(self) -> dict[str, str]:
        """What a served bento must see to find the same stores: absolute locations.

        BentoML runs the service from inside the bento's folder, where a relative
        ``MLOPS_HOME`` would point somewhere else.
        """
        return {
            "MLOPS_HOME": str(self.home),
            "BENTOML_HOME": str(self.bentoml_home),
            "MLOPS_STORAGE_URI": self.storage_uri,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "BENTOML_DO_NOT_TRACK": "true",
        }
