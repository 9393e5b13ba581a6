"""Progress of long loops in a run's log: ``cleaned 120/1913 days``, at most every few seconds.

A history file of years is ingested as one run; its steps loop over the days. A line per day
would flood the run's log, none would leave it silent for minutes: :class:`Progress` logs when
``every_s`` seconds have passed since its last line, and the last step of a loop that logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

EVERY_S = 10.0


class Progress:
    """Counts the steps of a loop and logs ``<what> n/N <unit>`` now and then.

    Args:
        log: Where lines go (a run's ``context.log.info``).
        total: Steps the loop takes.
        what: What a step does, e.g. ``"cleaned"``.
        unit: What a step is, e.g. ``"days"``.
        every_s: Seconds between two lines.
        clock: The time source (tests pass their own).
    """

    def __init__(
        self,
        log: Callable[[str], None],
        total: int,
        what: str,
        unit: str = "days",
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.total, self.what, self.unit = log, total, what, unit
        self.every_s, self.clock = every_s, clock
        self.done = 0
        self.started = self.last = clock()
        self.logged = False

    def step(self) -> None:
        """One step done: log if it is time (or the loop's end, once anything was logged)."""
        self.done += 1
        now = self.clock()
        finished = self.done == self.total
        if now - self.last >= self.every_s or (finished and self.logged):
            elapsed = now - self.started
            self.log(f"{self.what} {self.done}/{self.total} {self.unit} ({elapsed:.0f}s)")
            self.last, self.logged = now, True
