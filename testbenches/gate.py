"""A pause pattern a bench can override while it runs: :class:`Gate` and
:class:`GatedPressure` (a named :class:`~lowbit.testbenches.pressure.Pressure` whose pause
iterator goes through a gate).

A bench hands ``GatedPressure(**vars(pressure(name)))`` to its drivers in place of the
name and keeps ``.gate``; setting ``gate.condition`` to a function makes every cycle for
which it returns true a pause (``ready`` low on a sink, no new beat on a source), on top of
the named pattern. The driver calls it once per edge, after it took that edge's beat, to
decide the next edge. The inner pattern advances every cycle either way, so a seed replays
the same random draws."""
from __future__ import annotations

from dataclasses import dataclass, field

from .pressure import Pressure


class Gate:
    """A pause iterator: the inner pattern's pause, or ``condition()`` when one is set."""

    def __init__(self):
        self.condition = None
        self.inner = None

    def __iter__(self):
        return self

    def __next__(self) -> bool:
        pause = next(self.inner)
        return (self.condition is not None and bool(self.condition())) or pause


@dataclass(frozen=True)
class GatedPressure(Pressure):
    """A named pressure whose pause iterator goes through :attr:`gate`."""

    gate: Gate = field(default_factory=Gate)

    def pauses(self, rng, seed, salt=1):
        self.gate.inner = super().pauses(rng, seed, salt)
        return self.gate


__all__ = ["Gate", "GatedPressure"]
