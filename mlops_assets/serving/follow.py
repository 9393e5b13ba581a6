"""A running service follows the registry's ``champion`` alias, so no restart is needed.

A bento is built for one model version, so ``bentoml serve BENTO`` keeps answering from that
version. ``mlops serve`` turns following on (``MLOPS_FOLLOW_CHAMPION``): a thread of each service
worker looks at the alias every ``MLOPS_CHAMPION_POLL_S`` seconds and, when it has moved, loads
that version (from the BentoML model store when ``champion_bento`` imported it, else from MLflow)
and swaps it into the runtime between two batches. Loading happens beside the request path, and
the swap is one assignment, so no request fails during a switch; each answer names the version
that scored it.

A failed look (tracking server down, model not loadable yet) keeps the current model and is
retried at the next poll: a registry outage never takes the service down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from mlops_assets.registry.status import ModelRef, champion_ref
from mlops_assets.registry.tracking import Tracking
from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime
from mlops_assets.specs.model import UseCaseSpec

# A child of BentoML's logger: its handlers put the switch in the service's own log.
logger = logging.getLogger("bentoml").getChild("mlops.follow")

Resolver = Callable[[], ModelRef | None]
Loader = Callable[[ModelRef], Any]


def registry_champion(slot: UseCaseSpec, tracking: Tracking) -> Resolver:
    """Reads the slot's ``champion`` alias from the tracking server."""
    return lambda: champion_ref(slot, tracking)


def stored_or_registered_pipeline(tracking: Tracking) -> Loader:
    """Loads a version from the BentoML model store, or from MLflow when it was never imported.

    The store is read as the service's BentoML home configures it; nothing is written to it, so
    a service never races the ``champion_bento`` asset importing the same version.
    """

    def load(ref: ModelRef) -> Any:
        import bentoml
        import bentoml.sklearn
        from bentoml.exceptions import NotFound

        try:
            return bentoml.sklearn.load_model(bentoml.models.get(ref.bento_model_tag))
        except NotFound:
            return tracking.load_pipeline(ref.model_name, ref.version)

    return load


class ChampionFollower:
    """Keeps a runtime on the version the ``champion`` alias points at.

    Args:
        runtime: The worker's runtime (its model is swapped in place).
        poll_s: Seconds between looks at the alias.
        resolve: Returns the champion's reference, or ``None`` when there is none.
        load: Loads the pipeline of a reference.
    """

    def __init__(
        self, runtime: SlotRuntime, poll_s: float, resolve: Resolver, load: Loader
    ) -> None:
        self.runtime = runtime
        self.poll_s = poll_s
        self.resolve = resolve
        self.load = load
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str | None:
        """One look at the alias; the newly served version when the model was swapped."""
        ref = self.resolve()
        if ref is None or ref.version == self.runtime.model_version:
            return None
        pipeline = self.load(ref)
        previous = self.runtime.model_version
        self.runtime.swap_model(pipeline, ref.model_name, ref.version)
        logger.info("now serving %s v%s (was v%s)", ref.model_name, ref.version, previous)
        return ref.version

    def start(self) -> None:
        """Look at once, then every ``poll_s`` seconds, in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="champion-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking (called at shutdown); a load in progress is abandoned."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as error:  # noqa: BLE001 - keep serving the current model
                self.failures += 1
                logger.warning(
                    "could not follow the champion (still serving v%s): %s",
                    self.runtime.model_version,
                    error,
                )
            self._stop.wait(self.poll_s)


class Followers:
    """One champion follower per slot (``mlops serve``): each slot's alias moves on its own."""

    def __init__(self, followers: list[ChampionFollower]) -> None:
        self.followers = followers

    def stop(self) -> None:
        """Stop every follower (called at shutdown)."""
        for follower in self.followers:
            follower.stop()


def follow_champions(runtime: ServingRuntime, poll_s: float, tracking: Tracking) -> Followers:
    """Started followers keeping each slot's runtime on its registry champion."""
    load = stored_or_registered_pipeline(tracking)
    followers = []
    for slot in runtime.slots.values():
        follower = ChampionFollower(slot, poll_s, registry_champion(slot.spec, tracking), load)
        follower.start()
        followers.append(follower)
    return Followers(followers)
