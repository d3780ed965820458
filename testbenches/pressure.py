"""Pressure on a lowbit stream: per-cycle pause patterns and the named settings benches take.

Both drivers (:mod:`.drivers`) take ``pause``: an iterator of booleans, one per clock cycle,
``True`` meaning "not this cycle" (the source starts no new beat; the sink holds ``ready``
low). Build one with :func:`random_pauses`, :func:`bursty_pauses` or ``itertools.cycle([...])``.

Named settings. :data:`PRESSURES` names the patterns the benches use (``"none"``,
``"random5"`` .. ``"random40"``: a pause each cycle with probability 0.05 .. 0.4, and three
bursty ones). A bench test takes each stream's pressure as a keyword parameter holding such a
name, with the suite's setting as its default::

    @cocotb.test()
    async def long_stalls(dut, gap="random10", stall="bursty"):
        bench = Bench(dut, seed_from_env(), gap=gap, stall=stall)

so the pressure is an option of the test, not a literal inside it: stacking
``@cocotb.parametrize(stall=["random30", "stop_go"])`` under ``@cocotb.test()`` sweeps it. The
default suite does not: cocotb names parametrised instances ``long_stalls/stall=...``, and the
plain names are what ``testcase=`` filters, sweep specs and the suite's test counts select.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["PRESSURES", "Pressure", "bursty_pauses", "pressure", "random_pauses"]


def random_pauses(rng: random.Random, p_pause: float) -> Iterator[bool]:
    """An endless iterator of per-cycle pause decisions: ``True`` with probability ``p_pause``."""
    if not 0.0 <= p_pause <= 1.0:
        raise ValueError(f"p_pause = {p_pause} must be within 0..1")
    if p_pause == 0.0:
        return itertools.repeat(False)
    if p_pause == 1.0:
        return itertools.repeat(True)
    draw = rng.random
    return (draw() < p_pause for _ in itertools.count())


def bursty_pauses(rng: random.Random, max_run: int = 40, max_pause: int = 60,
                  min_pause: int = 1) -> Iterator[bool]:
    """Long stretches: runs of 1..``max_run`` active cycles, then ``min_pause``..``max_pause``
    paused ones."""
    while True:
        yield from itertools.repeat(False, rng.randint(1, max_run))
        yield from itertools.repeat(True, rng.randint(min_pause, max_pause))


@dataclass(frozen=True)
class Pressure:
    """One named pause pattern: ``kind`` ``"none"``, ``"random"`` (a pause with probability
    ``p`` each cycle) or ``"bursty"`` (active runs of 1..``max_run`` cycles, paused runs of
    ``min_pause``..``max_pause``)."""

    name: str
    kind: str
    p: float = 0.0
    max_run: int = 40
    min_pause: int = 1
    max_pause: int = 60

    def __post_init__(self):
        if self.kind not in ("none", "random", "bursty"):
            raise ValueError(f"pressure {self.name!r}: unknown kind {self.kind!r}")

    def pauses(self, rng: random.Random, seed: int, salt: int = 1) -> Iterator[bool]:
        """The per-cycle pause iterator for one stream.

        ``random`` draws from ``rng``, the bench's generator shared with its stimulus;
        ``bursty`` from a generator of its own, ``random.Random(seed + salt)`` (give each
        stream of a bench its own ``salt``), so its long stretches leave the stimulus alone.
        """
        if self.kind == "none":
            return itertools.repeat(False)
        if self.kind == "random":
            return random_pauses(rng, self.p)
        return bursty_pauses(random.Random(seed + salt), self.max_run, self.max_pause,
                             self.min_pause)


#: The named settings, by name.
PRESSURES: dict[str, Pressure] = {p.name: p for p in (
    Pressure("none", "none"),
    *(Pressure(f"random{round(100 * p)}", "random", p=p) for p in (0.05, 0.1, 0.2, 0.3, 0.4)),
    Pressure("bursty", "bursty", max_run=40, min_pause=1, max_pause=60),
    Pressure("bursty_long", "bursty", max_run=40, min_pause=1, max_pause=80),
    Pressure("stop_go", "bursty", max_run=10, min_pause=20, max_pause=120),
)}


def pressure(setting: str | Pressure) -> Pressure:
    """The :class:`Pressure` named ``setting`` (a :class:`Pressure` passes through)."""
    if isinstance(setting, Pressure):
        return setting
    try:
        return PRESSURES[setting]
    except KeyError:
        raise KeyError(f"no pressure setting {setting!r}; known: {sorted(PRESSURES)}") from None
