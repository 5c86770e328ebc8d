"""The progress bar of dual-encoder training: tqdm on stderr over the planned steps, with the
ETA, the last loss, the mean seconds per step and the last validation score.

Example::

    with TrainingProgress(total=120, enabled=True) as progress:
        progress.validated(0.41)
        progress.step(loss=2.31, seconds_per_step=1.8)
"""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm


class TrainingProgress:
    """A tqdm bar (or nothing, when not ``enabled``) counting optimiser steps."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = tqdm(total=total, disable=not enabled, unit="step", desc="dual-encoder")
        self._postfix: dict[str, str] = {}

    def step(self, loss: float, seconds_per_step: float) -> None:
        """One optimiser step done; the bar grows if the run outlasts its plan."""
        if self._bar.total is not None and self._bar.n >= self._bar.total:
            self._bar.total = self._bar.n + 1
        self._postfix.update(loss=f"{loss:.4f}", s_step=f"{seconds_per_step:.2f}")
        self._bar.set_postfix(self._postfix, refresh=False)
        self._bar.update(1)

    def validated(self, score: float) -> None:
        """Show the latest validation score."""
        self._postfix["val"] = f"{score:.4f}"
        self._bar.set_postfix(self._postfix)

    def close(self) -> None:
        """Finish the bar (its last line stays on stderr)."""
        self._bar.close()

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
