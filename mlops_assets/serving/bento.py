"""The champion in BentoML's store: one imported model and one bento per MLflow model version.

Tags are derived from the MLflow version and run (``bigmart_sales:v3-1a2b3c4d`` for the model,
``bigmart_sales_service:v3-1a2b3c4d`` for the bento), so a version is imported and built once and
a rollback finds its bento still in the store. A bento keeps the service code it was built with;
its ``service_digest`` label tells when ``bento/`` has changed since (delete it to rebuild).

Model and bento carry the MLflow model name, version and run id as labels; the model's metadata
adds the run's data partitions and the Dagster run that trained it, so a served answer can be
traced to the data behind it.

bentoml and mlflow are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_assets import settings
from mlops_assets.registry.mlflow_resource import CHAMPION, MlflowTracking
from mlops_assets.specs.model import UseCaseSpec

BENTO_SOURCE_ENV = "MLOPS_BENTO_SOURCE"
RUN_TAGS_KEPT = ("data_version", "data_partitions", "dagster.run_id", "optuna.study")


class BentoBuildError(RuntimeError):
    """The champion could not be imported or built; the message says which step and why."""


@dataclass(frozen=True)
class ModelRef:
    """One registered MLflow model version."""

    model_name: str
    version: str
    run_id: str

    @property
    def tag_version(self) -> str:
        """The BentoML version string of this MLflow version (``v3-1a2b3c4d``)."""
        return f"v{self.version}-{self.run_id[:8]}"

    def labels(self, use_case: str) -> dict[str, str]:
        """Lineage labels put on the BentoML model and on the bento."""
        return {
            "use_case": use_case,
            "mlflow_model_name": self.model_name,
            "mlflow_model_version": self.version,
            "mlflow_run_id": self.run_id,
        }


@dataclass(frozen=True)
class BentoBuild:
    """What :func:`ensure_champion_bento` found or built."""

    bento_tag: str
    model_tag: str
    model: ModelRef
    bento_bytes: int
    model_bytes: int
    seconds: float
    built: bool
    stale_source: bool = False
    segment_models: dict[str, ModelRef] = field(default_factory=dict)  # segmented use cases


def bento_source_dir() -> Path:
    """Service source and build file: ``bento/`` in the repository, or ``MLOPS_BENTO_SOURCE``."""
    return Path(os.environ.get(BENTO_SOURCE_ENV) or settings.REPO_ROOT / "bento").resolve()


def source_digest(source: Path | None = None) -> str:
    """Digest of the service source and build file: tells a bento built from older code."""
    import hashlib

    folder = source or bento_source_dir()
    digest = hashlib.sha256()
    for name in ("service.py", "bentofile.yaml"):
        path = folder / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:12]


def bento_build_file(spec: UseCaseSpec) -> tuple[Path, Path]:
    """The bento source folder and its ``bentofile.yaml``; a clear error if it is missing."""
    source = bento_source_dir()
    bentofile = source / "bentofile.yaml"
    if not bentofile.is_file():
        raise BentoBuildError(f"{spec.name}: no bento build file at {bentofile}")
    return source, bentofile


def bento_name(spec: UseCaseSpec) -> str:
    """Name of a use case's bentos."""
    return f"{spec.name}_service"


def model_tag(spec: UseCaseSpec, ref: ModelRef) -> str:
    """BentoML model tag of an MLflow version (named like the registered model)."""
    return f"{spec.registered_model_name()}:{ref.tag_version}"


def bento_tag(spec: UseCaseSpec, ref: ModelRef) -> str:
    """Bento tag of an MLflow version."""
    return f"{bento_name(spec)}:{ref.tag_version}"


_store_home: Path | None = None


def bentoml_api() -> Any:
    """The ``bentoml`` module with its stores under :func:`settings.bentoml_home`.

    BentoML resolves its home once per process. Pointing its store providers at the home in
    force on every call keeps a long-lived process (a Dagster worker, a test session switching
    ``MLOPS_HOME``) on the right store without touching ``os.environ``.
    """
    global _store_home
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    import bentoml

    home = settings.bentoml_home()
    if home != _store_home:
        _point_stores_at(home)
        _store_home = home
    return bentoml


def _point_stores_at(home: Path) -> None:
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    folders = {name: home / name for name in ("bentos", "models", "envs", "tmp")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    container = BentoMLContainer
    container.bentoml_home.set(str(home))
    container.bento_store_dir.set(str(folders["bentos"]))
    container.model_store_dir.set(str(folders["models"]))
    container.env_store_dir.set(str(folders["envs"]))
    container.tmp_bento_store_dir.set(str(folders["tmp"]))
    container.bento_store.set(BentoStore(str(folders["bentos"])))
    container.model_store.set(ModelStore(str(folders["models"])))
    container.tmp_bento_store.set(BentoStore(str(folders["tmp"])))


def champion_ref(spec: UseCaseSpec, mlflow: MlflowTracking) -> ModelRef | None:
    """The version the ``champion`` alias points at, or ``None``."""
    name = spec.registered_model_name()
    version = mlflow.alias_version(name, CHAMPION)
    if version is None:
        return None
    return ModelRef(name, str(version.version), str(version.run_id or "norun"))


def find_bento(spec: UseCaseSpec, ref: ModelRef) -> Any | None:
    """The stored bento of a model version, or ``None``."""
    return _stored_bento(bento_tag(spec, ref))


def _stored_bento(tag: str) -> Any | None:
    bentoml = bentoml_api()
    from bentoml.exceptions import NotFound

    try:
        return bentoml.bentos.get(tag)
    except NotFound:
        return None


def current_bento_tag(spec: UseCaseSpec, mlflow: MlflowTracking) -> str | None:
    """Tag of the champion's bento when it has been built, else ``None``."""
    if spec.segments:
        refs = segment_champion_refs(spec, mlflow)
        if any(ref is None for ref in refs.values()):
            return None
        bento = _stored_bento(segmented_bento_tag(spec, refs))  # type: ignore[arg-type]
        return str(bento.tag) if bento is not None else None
    ref = champion_ref(spec, mlflow)
    if ref is None:
        return None
    bento = find_bento(spec, ref)
    return str(bento.tag) if bento is not None else None


# ---------------------------------------------------------------- segmented use cases


def segment_champion_refs(spec: UseCaseSpec, mlflow: MlflowTracking) -> dict[str, ModelRef | None]:
    """Each segment's champion version (``None`` where a segment has none yet)."""
    return {str(view.segment): champion_ref(view, mlflow) for view in spec.segment_specs()}


def segmented_bento_tag(spec: UseCaseSpec, refs: dict[str, ModelRef]) -> str:
    """Bento tag of one combination of segment champions (``mushroom_service:v3-1a2b.v2-3c4d``).

    BentoML versions are at most 63 characters: a longer combination is replaced by its digest.
    """
    import hashlib

    version = ".".join(refs[name].tag_version for name in spec.segment_names)
    if len(version) > 63:
        version = "s-" + hashlib.sha256(version.encode()).hexdigest()[:16]
    return f"{bento_name(spec)}:{version}"


def segment_models_arg(tags: dict[str, str]) -> str:
    """The ``segment_models`` build argument: ``segment=model_tag`` pairs, comma-separated."""
    return ",".join(f"{segment}={tag}" for segment, tag in tags.items())


def build_segmented_bento(
    spec: UseCaseSpec, refs: dict[str, ModelRef], models: dict[str, Any]
) -> tuple[Any, bool]:
    """One bento carrying every segment's champion; built once per combination of versions."""
    bentoml = bentoml_api()
    tag = segmented_bento_tag(spec, refs)
    existing = _stored_bento(tag)
    if existing is not None:
        return existing, False
    source, bentofile = bento_build_file(spec)
    labels = {"use_case": spec.name, "service_digest": source_digest(source)}
    for name, ref in refs.items():
        labels[f"{name}_model_tag"] = str(models[name].tag)
        labels[f"{name}_mlflow_model_name"] = ref.model_name
        labels[f"{name}_mlflow_model_version"] = ref.version
        labels[f"{name}_mlflow_run_id"] = ref.run_id
    bento = bentoml.bentos.build_bentofile(
        str(bentofile),
        build_ctx=str(source),
        name=bento_name(spec),
        version=tag.split(":", 1)[1],
        labels=labels,
        args={
            "use_case": spec.name,
            "segment_models": segment_models_arg({n: str(m.tag) for n, m in models.items()}),
        },
        reload=True,
    )
    return bento, True


def ensure_segmented_bento(spec: UseCaseSpec, mlflow: MlflowTracking) -> BentoBuild:
    """Every segment's champion imported, and the bento that routes between them."""
    refs = segment_champion_refs(spec, mlflow)
    missing = [name for name, ref in refs.items() if ref is None]
    if missing:
        names = ", ".join(spec.registered_model_name(name) for name in missing)
        raise BentoBuildError(
            f"{spec.name}: no version of {names} carries the `{CHAMPION}` alias; the service "
            "needs a champion for every segment"
        )
    present: dict[str, ModelRef] = {name: ref for name, ref in refs.items() if ref is not None}
    started = time.perf_counter()
    models: dict[str, Any] = {}
    imported = False
    for view in spec.segment_specs():
        model, new = import_model(view, mlflow, present[str(view.segment)])
        models[str(view.segment)] = model
        imported = imported or new
    bento, built = build_segmented_bento(spec, present, models)
    stale = dict(bento.info.labels).get("service_digest") != source_digest()
    first = spec.segment_names[0]
    return BentoBuild(
        bento_tag=str(bento.tag),
        model_tag=",".join(str(m.tag) for m in models.values()),
        model=present[first],
        bento_bytes=folder_size(Path(bento.path)),
        model_bytes=sum(folder_size(Path(m.path)) for m in models.values()),
        seconds=time.perf_counter() - started,
        built=imported or built,
        stale_source=stale,
        segment_models=present,
    )


def import_model(spec: UseCaseSpec, mlflow: MlflowTracking, ref: ModelRef) -> tuple[Any, bool]:
    """The version's pipeline in the BentoML store (native scikit-learn flavour); True if new.

    The native flavour loads with joblib alone: the service starts without importing mlflow.
    """
    bentoml = bentoml_api()
    from bentoml.exceptions import NotFound

    tag = model_tag(spec, ref)
    try:
        return bentoml.models.get(tag), False
    except NotFound:
        pass
    pipeline = mlflow.load_pipeline(ref.model_name, ref.version)
    run_tags = _run_tags(mlflow, ref.run_id)
    metadata = {
        "mlflow_tracking_uri": mlflow.uri(),
        **{key.replace(".", "_"): run_tags[key] for key in RUN_TAGS_KEPT if key in run_tags},
    }
    labels = ref.labels(spec.name)
    if spec.segment:
        labels["segment"] = spec.segment
    model = bentoml.sklearn.save_model(
        tag,
        pipeline,
        labels=labels,
        metadata=metadata,
        signatures={"predict": {"batchable": False}},
    )
    return model, True


def _run_tags(mlflow: MlflowTracking, run_id: str) -> dict[str, str]:
    try:
        return dict(mlflow.client().get_run(run_id).data.tags)
    except Exception:  # a run deleted from tracking must not block serving its registered model
        return {}


def build_bento(spec: UseCaseSpec, ref: ModelRef, model: Any) -> tuple[Any, bool]:
    """The version's bento, built from :func:`bento_source_dir` unless stored; True if new."""
    bentoml = bentoml_api()
    existing = find_bento(spec, ref)
    if existing is not None:
        return existing, False
    source, bentofile = bento_build_file(spec)
    bento = bentoml.bentos.build_bentofile(
        str(bentofile),
        build_ctx=str(source),
        name=bento_name(spec),
        version=ref.tag_version,
        labels={
            **ref.labels(spec.name),
            "model_tag": str(model.tag),
            "service_digest": source_digest(source),
        },
        args={"use_case": spec.name, "model_tag": str(model.tag)},
        reload=True,
    )
    return bento, True


def ensure_champion_bento(spec: UseCaseSpec, mlflow: MlflowTracking) -> BentoBuild:
    """The champion imported and built (once per version); reused when already in the store.

    A segmented use case's bento carries every segment's champion (once per combination).
    """
    if spec.segments:
        return ensure_segmented_bento(spec, mlflow)
    ref = champion_ref(spec, mlflow)
    if ref is None:
        raise BentoBuildError(
            f"{spec.name}: no version of {spec.registered_model_name()} carries the "
            f"`{CHAMPION}` alias; nothing to serve"
        )
    started = time.perf_counter()
    model, imported = import_model(spec, mlflow, ref)
    bento, built = build_bento(spec, ref, model)
    stale = dict(bento.info.labels).get("service_digest") != source_digest()
    return BentoBuild(
        bento_tag=str(bento.tag),
        model_tag=str(model.tag),
        model=ref,
        bento_bytes=folder_size(Path(bento.path)),
        model_bytes=folder_size(Path(model.path)),
        seconds=time.perf_counter() - started,
        built=imported or built,
        stale_source=stale,
    )


def folder_size(path: Path) -> int:
    """Bytes of every file below a folder."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
