"""In-order scoreboard of a lowbit bench (:class:`Scoreboard`): observed beats against expected ones."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

__all__ = ["Scoreboard"]

_log = logging.getLogger("cocotb.lowbit")


class Scoreboard:
    """In-order comparison of observed beats against expected ones.

    :meth:`expect` queues an expected value (with the stimulus that produced it, for the
    report); :meth:`observe` pops and compares. :meth:`check_done` raises ``AssertionError``
    naming the first mismatch (index, stimulus, expected, actual) and the number of mismatches,
    or the number of expected beats never observed. ``fmt`` renders values in reports.
    """

    def __init__(self, name: str, fmt: Callable[[int], str] | None = None):
        self.name = name
        self.fmt = fmt if fmt is not None else (lambda v: f"{v} ({v:#x})")
        self._pending: deque[tuple[int, object]] = deque()
        self.matched = 0
        self.mismatches = 0
        self.observed = 0
        self._first_error: str | None = None

    def expect(self, expected: int, stimulus: object = None) -> None:
        self._pending.append((expected, stimulus))

    def observe(self, actual: int) -> None:
        index = self.observed
        self.observed += 1
        if not self._pending:
            self._record(f"beat {index}: unexpected output {self.fmt(actual)} (nothing expected)")
            return
        expected, stimulus = self._pending.popleft()
        if actual == expected:
            self.matched += 1
        else:
            self._record(
                f"beat {index}: input {stimulus!r}: expected {self.fmt(expected)}, "
                f"got {self.fmt(actual)}"
            )

    def _record(self, message: str) -> None:
        self.mismatches += 1
        if self._first_error is None:
            self._first_error = message
            _log.error("%s: first mismatch: %s", self.name, message)

    def clear(self) -> None:
        """Drop outstanding expectations (beats lost to a mid-stream reset)."""
        self._pending.clear()

    def check_done(self) -> None:
        if self.mismatches:
            raise AssertionError(
                f"{self.name}: {self.mismatches} mismatches in {self.observed} beats; "
                f"first mismatch: {self._first_error}"
            )
        if self._pending:
            expected, stimulus = self._pending[0]
            raise AssertionError(
                f"{self.name}: {len(self._pending)} expected beats never came out "
                f"(first: input {stimulus!r}, expected {self.fmt(expected)}); "
                f"{self.matched} matched"
            )
