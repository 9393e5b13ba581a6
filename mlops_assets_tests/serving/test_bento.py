"""The champion in BentoML's store: tags, lineage labels, reuse, and the store location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_assets.bentos.build import BentoBuildError, BentoStore, bento_tag
from mlops_assets.environment import Environment
from mlops_assets.ops.serve import bento_store
from mlops_assets.registry.status import ModelRef, champion_ref
from mlops_assets.specs import UseCaseSpec


def store_and_tracking() -> tuple[BentoStore, Any]:
    """The BentoML store and the tracking client of the environment in force."""
    env = Environment.from_env()
    return bento_store(env), env.tracking()


def test_model_and_bento_carry_the_mlflow_lineage(trained_home: Any, spec: UseCaseSpec) -> None:
    store, tracking = store_and_tracking()
    ref = champion_ref(spec, tracking)
    assert ref is not None
    build = store.ensure_champion_bento(spec)
    assert not build.built, "the refresh built it already: this call must reuse it"
    bentoml = store.api()
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
    assert dict(bento.info.labels)["model_tag"] == build.model_tag  # one slot: no prefix
    # Intended change: the data_partitions tag is the first and last day of the training data.
    days = sorted(trained_home.days)
    assert model.info.metadata["data_partitions"] == f"{days[0]},{days[-1]}"
    assert model.info.metadata["dagster_run_id"]
    assert [str(m.tag) for m in bento.info.all_models] == [ref.bento_model_tag]
    # Intended change: the build argument is one model tag per slot (``model_tags``).
    assert dict(bento.info.args) == {"use_case": spec.name, "model_tags": [build.model_tag]}
    assert Path(bento.path).is_relative_to(trained_home.home / "bentoml")


def test_no_champion_is_a_clear_error(mlops_home: Path, spec: UseCaseSpec) -> None:
    store, _ = store_and_tracking()
    with pytest.raises(BentoBuildError, match="carries the `champion` alias"):
        store.ensure_champion_bento(spec)


def test_the_store_follows_mlops_home(mlops_home: Path) -> None:
    """A long-lived process that switches MLOPS_HOME writes to the new home's store."""
    store, _ = store_and_tracking()
    bentoml = store.api()
    saved = bentoml.picklable_model.save_model("probe", {"answer": 42})
    stored = bentoml.models.get("probe:latest")
    assert stored.tag == saved.tag
    assert Path(stored.path).is_relative_to(mlops_home / "bentoml" / "models")


def test_one_process_builds_several_bentos(trained_home: Any, spec: UseCaseSpec) -> None:
    """Building re-imports the service module: its metrics must not be registered twice."""
    store, tracking = store_and_tracking()
    ref = champion_ref(spec, tracking)
    assert ref is not None
    bentoml = store.api()
    model = bentoml.models.get(ref.bento_model_tag)
    other = ModelRef(ref.model_name, f"{ref.version}0", ref.run_id)
    bento, built = store.build(spec, {None: other}, {None: model})
    bentoml.bentos.delete(bento.tag)
    assert built and str(bento.tag) == bento_tag(spec, {None: other})


def test_segmented_bento_tag_and_build_argument() -> None:
    """One bento per combination of segment champions; the tag stays a valid BentoML version.

    The build argument names one model per slot in spec order; serving ``bento/`` directly
    (no argument) takes each slot's latest imported model.
    """
    from mlops_assets.serving.routing import served_segments
    from mlops_assets.serving.worker import slot_model_tags
    from mlops_assets.specs import use_case_specs

    mushroom = use_case_specs()["mushroom"]
    refs: dict[str | None, ModelRef] = {
        "cap_gill": ModelRef("mushroom__cap_gill", "3", "1a2b3c4d5e"),
        "stem_season": ModelRef("mushroom__stem_season", "12", "99887766aa"),
    }
    assert bento_tag(mushroom, refs) == "mushroom_service:v3-1a2b3c4d.v12-99887766"
    long = {name: ModelRef(ref.model_name, "1" * 30, ref.run_id) for name, ref in refs.items()}
    version = bento_tag(mushroom, long).split(":")[1]
    assert version.startswith("s-") and len(version) <= 63
    tags = [ref.bento_model_tag for ref in refs.values()]
    assert slot_model_tags(mushroom, mushroom, tags) == {
        "cap_gill": "mushroom__cap_gill:v3-1a2b3c4d",
        "stem_season": "mushroom__stem_season:v12-99887766",
    }
    assert slot_model_tags(mushroom, mushroom, []) == {
        "cap_gill": "mushroom__cap_gill:latest",
        "stem_season": "mushroom__stem_season:latest",
    }
    narrowed = served_segments(mushroom, ["stem_season"])
    assert slot_model_tags(mushroom, narrowed, tags) == {
        "stem_season": "mushroom__stem_season:v12-99887766"
    }
    with pytest.raises(ValueError, match="1 model tags for 2 model slots"):
        slot_model_tags(mushroom, mushroom, tags[:1])
