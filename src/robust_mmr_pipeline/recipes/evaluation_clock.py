"""Where the minutes of an evaluation go: a wall-clock table per task and stage, and progress bars.

Stages are exclusive: time spent in a stage opened inside another (the bootstrap inside scoring)
counts for the inner one only, so the table adds up to the evaluation's wall time. Progress bars
(tqdm, on stderr) show only on a terminal; every finished stage is also logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StageClock:
    """``with clock.stage(task, name): ...`` accumulates exclusive seconds per (task, stage)."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = {}
        self._stack: list[list[float]] = []  # per open stage: [start, seconds of inner stages]

    @contextmanager
    def stage(self, task: str, name: str) -> Iterator[None]:
        self._stack.append([time.perf_counter(), 0.0])
        try:
            yield
        finally:
            start, inner = self._stack.pop()
            total = time.perf_counter() - start
            key = (task, name)
            self.seconds[key] = self.seconds.get(key, 0.0) + total - inner
            if self._stack:
                self._stack[-1][1] += total

    def bar(self, items: Iterable[T], description: str, total: int | None = None) -> Any:
        """A progress bar over ``items`` (a plain iterator when stderr is no terminal)."""
        from tqdm.auto import tqdm

        return tqdm(items, desc=description, total=total, disable=None, mininterval=1.0)

    def table(self) -> list[dict[str, Any]]:
        """``[{task, stage, seconds}]`` in the order the stages first ran."""
        return [
            {"task": task, "stage": name, "seconds": round(seconds, 3)}
            for (task, name), seconds in self.seconds.items()
        ]

    def log(self) -> None:
        total = sum(self.seconds.values())
        for (task, name), seconds in self.seconds.items():
            logger.info("Evaluation time %s / %s: %.1f s", task, name, seconds)
        logger.info("Evaluation time, all stages: %.1f s", total)
