"""The champions in BentoML's store: one imported model per MLflow version, one bento per set.

A use case has one or more model slots; its bento carries every slot's champion. Tags are
derived from the MLflow versions and runs: a model is ``bigmart_sales:v3-1a2b3c4d``, the bento
``bigmart_sales_service:v3-1a2b3c4d`` (a segmented use case's joins its slots' versions,
``mushroom_service:v3-1a2b3c4d.v2-3c4d5e6f``), so a set of versions is imported and built once and
a rollback finds its bento still in the store. A bento keeps the service code it was built with;
its ``service_digest`` label tells when ``bento/`` has changed since (delete it to rebuild).

Model and bento carry each slot's MLflow model name, version and run id as labels (prefixed by
the segment for a segmented use case); the model's metadata adds the run's data partitions and
the Dagster run that trained it, so a served answer can be traced to the data behind it.

bentoml is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets import names
from mlops_assets.registry.status import ModelRef, champion_ref
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec

RUN_TAGS_KEPT = (
    names.DATA_VERSION_TAG,
    names.DATA_PARTITIONS_TAG,
    names.DAGSTER_RUN_TAG,
    names.STUDY_TAG,
)
BENTO_VERSION_LIMIT = 63


class BentoBuildError(RuntimeError):
    """The champions could not be imported or built; the message says which step and why."""


class NoChampionError(BentoBuildError):
    """A model slot has no champion (yet, or the gate found none better than the baseline)."""


@dataclass(frozen=True)
class BentoBuild:
    """What :func:`ensure_champion_bento` found or built."""

    bento_tag: str
    models: dict[str | None, ModelRef]  # each slot's champion, by segment (None: unsegmented)
    model_tags: dict[str | None, str]  # each slot's BentoML model tag
    bento_bytes: int
    model_bytes: int
    seconds: float
    built: bool
    stale_source: bool = False

    @property
    def model_tag(self) -> str:
        """The BentoML model tags, comma-separated."""
        return ",".join(self.model_tags.values())


def label_prefix(segment: str | None) -> str:
    """Prefix of a slot's labels on a bento (``cap_gill_`` for a segment, none otherwise)."""
    return f"{segment}_" if segment else ""


def lineage_labels(use_case: str, ref: ModelRef) -> dict[str, str]:
    """Lineage labels put on a BentoML model."""
    return {
        "use_case": use_case,
        "mlflow_model_name": ref.model_name,
        "mlflow_model_version": ref.version,
        "mlflow_run_id": ref.run_id,
    }


def source_digest(source: Path) -> str:
    """Digest of the service source and build file: tells a bento built from older code."""
    digest = hashlib.sha256()
    for name in ("service.py", "bentofile.yaml"):
        path = source / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:12]


def bento_build_file(spec: UseCaseSpec, source: Path) -> Path:
    """The ``bentofile.yaml`` of the bento source folder; a clear error if it is missing."""
    bentofile = source / "bentofile.yaml"
    if not bentofile.is_file():
        raise BentoBuildError(f"{spec.name}: no bento build file at {bentofile}")
    return bentofile


def bento_tag(spec: UseCaseSpec, refs: dict[str | None, ModelRef]) -> str:
    """Bento tag of one set of slot champions.

    BentoML versions are at most 63 characters: a longer set is replaced by its digest.
    """
    version = ".".join(refs[view.segment].tag_version for view in spec.segment_specs())
    if len(version) > BENTO_VERSION_LIMIT:
        version = "s-" + hashlib.sha256(version.encode()).hexdigest()[:16]
    return f"{names.bento_name(spec.name)}:{version}"


_store_home: Path | None = None


def bentoml_api(home: Path) -> Any:
    """The ``bentoml`` module with its stores under ``home``.

    BentoML resolves its home once per process. Pointing its store providers at the home in
    force on every call keeps a long-lived process (a Dagster worker, a test session switching
    ``MLOPS_HOME``) on the right store without touching ``os.environ``.
    """
    global _store_home
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    import bentoml

    home = Path(home).resolve()
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


class BentoStore:
    """A use case's bentos and imported models in the BentoML store at ``home``.

    Args:
        home: The BentoML home (``BENTOML_HOME``).
        source: The bento's service source and build file (``bento/``).
        tracking: Where the champions are registered.
    """

    def __init__(self, home: Path, source: Path, tracking: Tracking) -> None:
        self.home = Path(home)
        self.source = Path(source)
        self.tracking = tracking

    def api(self) -> Any:
        """The ``bentoml`` module pointed at this store."""
        return bentoml_api(self.home)

    def champions(self, spec: UseCaseSpec) -> dict[str | None, ModelRef | None]:
        """Each slot's champion version (``None`` where a slot has none yet)."""
        return {view.segment: champion_ref(view, self.tracking) for view in spec.segment_specs()}

    def stored_bento(self, tag: str) -> Any | None:
        """The stored bento of a tag, or ``None``."""
        bentoml = self.api()
        from bentoml.exceptions import NotFound

        try:
            return bentoml.bentos.get(tag)
        except NotFound:
            return None

    def current_bento_tag(self, spec: UseCaseSpec) -> str | None:
        """Tag of the champions' bento when it has been built, else ``None``."""
        refs = self.champions(spec)
        if any(ref is None for ref in refs.values()):
            return None
        bento = self.stored_bento(bento_tag(spec, refs))  # type: ignore[arg-type]
        return str(bento.tag) if bento is not None else None

    def import_model(self, view: UseCaseSpec, ref: ModelRef) -> tuple[Any, bool]:
        """A slot's version in the BentoML store (native scikit-learn flavour); True if new.

        The native flavour loads with joblib alone: the service starts without importing mlflow.
        """
        bentoml = self.api()
        from bentoml.exceptions import NotFound

        tag = ref.bento_model_tag
        try:
            return bentoml.models.get(tag), False
        except NotFound:
            pass
        pipeline = self.tracking.load_pipeline(ref.model_name, ref.version)
        run_tags = self.tracking.run_tags(ref.run_id)
        metadata = {
            "mlflow_tracking_uri": self.tracking.uri(),
            **{key.replace(".", "_"): run_tags[key] for key in RUN_TAGS_KEPT if key in run_tags},
        }
        labels = lineage_labels(view.name, ref)
        if view.segment:
            labels["segment"] = view.segment
        model = bentoml.sklearn.save_model(
            tag,
            pipeline,
            labels=labels,
            metadata=metadata,
            signatures={"predict": {"batchable": False}},
        )
        return model, True

    def build(
        self, spec: UseCaseSpec, refs: dict[str | None, ModelRef], models: dict[str | None, Any]
    ) -> tuple[Any, bool]:
        """The bento carrying every slot's champion, built unless stored; True if new."""
        tag = bento_tag(spec, refs)
        existing = self.stored_bento(tag)
        if existing is not None:
            return existing, False
        bentofile = bento_build_file(spec, self.source)
        labels = {"use_case": spec.name, "service_digest": source_digest(self.source)}
        for segment, ref in refs.items():
            prefix = label_prefix(segment)
            labels[f"{prefix}model_tag"] = str(models[segment].tag)
            labels[f"{prefix}mlflow_model_name"] = ref.model_name
            labels[f"{prefix}mlflow_model_version"] = ref.version
            labels[f"{prefix}mlflow_run_id"] = ref.run_id
        bento = self.api().bentos.build_bentofile(
            str(bentofile),
            build_ctx=str(self.source),
            name=names.bento_name(spec.name),
            version=tag.split(":", 1)[1],
            labels=labels,
            args={
                "use_case": spec.name,
                "model_tags": [str(models[view.segment].tag) for view in spec.segment_specs()],
            },
            reload=True,
        )
        return bento, True

    def ensure_champion_bento(self, spec: UseCaseSpec) -> BentoBuild:
        """Every slot's champion imported, and the bento serving them (once per set)."""
        found = self.champions(spec)
        missing = [view for view in spec.segment_specs() if found[view.segment] is None]
        if missing:
            models = ", ".join(view.registered_model_name() for view in missing)
            raise NoChampionError(
                f"{spec.name}: no version of {models} carries the `{names.CHAMPION}` alias; "
                "nothing to serve"
                + (" (the service needs a champion for every segment)" if spec.segments else "")
            )
        refs: dict[str | None, ModelRef] = {k: v for k, v in found.items() if v is not None}
        started = time.perf_counter()
        models: dict[str | None, Any] = {}
        imported = False
        for view in spec.segment_specs():
            model, new = self.import_model(view, refs[view.segment])
            models[view.segment] = model
            imported = imported or new
        bento, built = self.build(spec, refs, models)
        stale = dict(bento.info.labels).get("service_digest") != source_digest(self.source)
        return BentoBuild(
            bento_tag=str(bento.tag),
            models=refs,
            model_tags={segment: str(model.tag) for segment, model in models.items()},
            bento_bytes=folder_size(Path(bento.path)),
            model_bytes=sum(folder_size(Path(m.path)) for m in models.values()),
            seconds=time.perf_counter() - started,
            built=imported or built,
            stale_source=stale,
        )

    def delete_version(self, view: UseCaseSpec, ref: ModelRef) -> list[str]:
        """Remove a slot version's BentoML model and every bento carrying it; their tags."""
        bentoml = self.api()
        from bentoml.exceptions import NotFound

        removed = []
        label = f"{label_prefix(view.segment)}model_tag"
        try:
            bentos = bentoml.bentos.list(names.bento_name(view.name))
        except NotFound:  # no bento of the use case was ever built
            bentos = []
        for bento in bentos:
            if dict(bento.info.labels).get(label) == ref.bento_model_tag:
                bentoml.bentos.delete(bento.tag)
                removed.append(str(bento.tag))
        try:
            bentoml.models.delete(ref.bento_model_tag)
            removed.append(ref.bento_model_tag)
        except NotFound:
            pass
        return removed

    def unkept(
        self, spec: UseCaseSpec, kept: dict[str | None, set[str]]
    ) -> dict[str | None, tuple[list[str], list[str]]]:
        """Per slot, tags of the bentos and imported models carrying a version not in ``kept``.

        ``kept``: each slot's MLflow versions to keep, by segment. A bento goes when any of
        its slots' versions goes (it could not be served without that model), so it may be
        listed under several slots; a bento without the labels to tell is kept.
        """
        bentoml = self.api()
        from bentoml.exceptions import NotFound

        try:
            bentos = bentoml.bentos.list(names.bento_name(spec.name))
        except NotFound:
            bentos = []
        found: dict[str | None, tuple[list[str], list[str]]] = {}
        for view in spec.segment_specs():
            label = f"{label_prefix(view.segment)}mlflow_model_version"
            doomed_bentos = [
                str(bento.tag)
                for bento in bentos
                if dict(bento.info.labels).get(label) not in {None, *kept[view.segment]}
            ]
            try:
                models = bentoml.models.list(view.registered_model_name())
            except NotFound:
                models = []
            doomed_models = [
                str(model.tag)
                for model in models
                if dict(model.info.labels).get("mlflow_model_version")
                not in {None, *kept[view.segment]}
            ]
            found[view.segment] = (sorted(doomed_bentos), sorted(doomed_models))
        return found

    def remove(self, bento_tags: list[str], model_tags: list[str]) -> None:
        """Delete bentos, then the models they carried (a model in a bento cannot go first)."""
        bentoml = self.api()
        for tag in dict.fromkeys(bento_tags):
            bentoml.bentos.delete(tag)
        for tag in dict.fromkeys(model_tags):
            bentoml.models.delete(tag)


def folder_size(path: Path) -> int:
    """Bytes of every file below a folder."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
