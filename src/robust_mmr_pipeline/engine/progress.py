"""A tqdm progress bar over optimizer steps showing the loss and samples/s."""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm.auto import tqdm


def stream_is_tty(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):
        return False


class TrainProgress:
    """Progress over ``total`` steps starting at ``initial``.

    Shown only when ``enabled`` and the output stream is a TTY (``require_tty=False`` lifts the
    TTY condition, e.g. for tests writing to a buffer). A disabled bar costs nothing.
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        enabled: bool = True,
        desc: str = "train",
        file: IO[str] | None = None,
        require_tty: bool = True,
    ) -> None:
        stream = file if file is not None else sys.stderr
        self.enabled = bool(enabled) and (stream_is_tty(stream) or not require_tty)
        self._bar: Any = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="step",
            file=stream,
            disable=not self.enabled,
            dynamic_ncols=True,
            leave=True,
        )

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        """Move to ``step`` and show ``loss`` and ``samples_per_s``."""
        if not self.enabled:
            return
        self._bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{samples_per_s:.1f}", refresh=False)
        self._bar.update(max(0, step - self._bar.n))

    def close(self) -> None:
        """Finish the bar."""
        self._bar.close()
