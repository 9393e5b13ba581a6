"""What a bento worker builds at start: its slots' BentoML models and the serving runtime.

``bento/service.py`` declares one ``bentoml.models.BentoModel`` per model slot (BentoML finds a
service's models among its class attributes, and a use case has as many as it has slots) and
hands them here, with the resolved environment, to build the one :class:`ServingRuntime`.

A worker also watches its parent (:func:`exit_with_parent`): BentoML runs the worker in a process
group of its own, so when ``bentoml serve`` is SIGKILLed nothing stops the worker, which keeps
the port and makes the next start fail with "Address already in use".
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_assets.environment import Environment
from mlops_assets.features.forecast import history_needed
from mlops_assets.features.history import StoredHistory
from mlops_assets.prediction_log import PredictionLog
from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime
from mlops_assets.specs.model import UseCaseSpec

logger = logging.getLogger(__name__)


def slot_model_tags(
    full: UseCaseSpec, served: UseCaseSpec, tags: Sequence[str], fallback: str | None = None
) -> dict[str | None, str]:
    """The BentoML model tag of each served slot, by segment.

    ``tags`` are the bento's build argument, one per slot of the whole use case in spec order.
    Serving ``bento/`` directly (no build argument) takes ``fallback`` (``MLOPS_MODEL_TAG``)
    for a one-slot use case, else each slot's latest imported model.
    """
    slots = [view.segment for view in full.segment_specs()]
    if tags and len(tags) != len(slots):
        raise ValueError(f"{full.name}: {len(tags)} model tags for {len(slots)} model slots")
    by_slot = dict(zip(slots, tags, strict=True)) if tags else {}
    wanted = [view for view in served.segment_specs()]
    return {
        view.segment: by_slot.get(view.segment)
        or (fallback if fallback and len(slots) == 1 else f"{view.registered_model_name()}:latest")
        for view in wanted
    }


def slot_attribute(index: int) -> str:
    """The service class attribute holding a slot's BentoML model."""
    return f"model_{index}"


def declare_slot_models(tags: Mapping[str | None, str]) -> Callable[[type], type]:
    """Class decorator: one ``model_<n>`` BentoModel attribute per slot, and ``slot_models``."""

    def declare(cls: type) -> type:
        import bentoml

        pairs = []
        for index, (segment, tag) in enumerate(tags.items()):
            setattr(cls, slot_attribute(index), bentoml.models.BentoModel(tag))
            pairs.append((segment, slot_attribute(index)))
        cls.slot_models = pairs  # type: ignore[attr-defined]
        return cls

    return declare


def runtime_for_models(
    spec: UseCaseSpec,
    models: Mapping[str | None, Any],
    env: Environment,
    on_batch: Callable[[int, int], None] | None = None,
) -> ServingRuntime:
    """A worker's runtime: one slot runtime per BentoML model, logging where ``env`` says."""
    import bentoml.sklearn

    options = env.serving
    store = env.lake()
    slots: dict[str | None, SlotRuntime] = {}
    for view in spec.segment_specs():
        model = models[view.segment]
        labels = dict(model.info.labels)
        log = None
        if options.prediction_log:
            log = PredictionLog(
                store,
                view,
                flush_interval_s=options.log_flush_s,
                max_rows=options.log_max_rows,
                database_url=env.prediction_log_database,
                spool_root=env.prediction_log_spool,
            )
        slots[view.segment] = SlotRuntime(
            view,
            bentoml.sklearn.load_model(model),
            labels.get("mlflow_model_name", view.registered_model_name()),
            labels.get("mlflow_model_version", str(model.tag.version)),
            options,
            log=log,
            on_batch=on_batch,
            history=warm_history(store, view, options.champion_poll_s),
        )
    # Everything loaded so far (libraries, models, compiled executors) lives as long as the
    # worker: out of the cyclic collector's passes, which then only walk what requests make.
    gc.freeze()
    return ServingRuntime(spec, slots)


def warm_history(store: Any, view: UseCaseSpec, refresh_s: float) -> StoredHistory | None:
    """A forecast slot's stored history, the days a request for tomorrow reads already read."""
    if view.forecast is None:
        return None
    history = StoredHistory(store, view, refresh_s=refresh_s)
    history.warm(history_needed(view) + 1)
    return history


def exit_with_parent(
    poll_s: float = 1.0, grace_s: float = 30.0, parent: int | None = None
) -> threading.Thread:
    """Stop this process when its parent dies, as ``bentoml serve`` would have stopped it.

    SIGTERM to itself (a graceful shutdown that writes the prediction log), then, if it is
    still alive ``grace_s`` seconds later, exit. The parent is gone when this process is
    re-parented (``os.getppid()`` changes): to init or a subreaper. Returns the watching
    (daemon) thread.
    """
    original = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == original:
            time.sleep(poll_s)
        logger.warning(
            "the serving process (pid %d) is gone: stopping this worker (pid %d)",
            original,
            os.getpid(),
        )
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        logger.error("worker still running %.0f s after its parent died: exiting", grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
