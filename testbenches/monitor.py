"""A passive stream monitor (:class:`StreamMonitor`): handshake counters for coverage.

It drives nothing. Like the drivers it is one coroutine that wakes on the rising edge and
reads ``<name>__valid``, ``__ready`` (and ``rst``) there, which under Verilator are the values
the design is about to capture at that edge (see :mod:`.handles`), so its counts agree with
what the drivers see: a beat is an edge with ``valid`` and ``ready`` high and ``rst`` low.
Edges with ``rst`` high count as ``resets`` and nothing else.
"""

from __future__ import annotations

import cocotb

from .handles import reader, reset_reader, stream_handles
from .payload import PayloadLayout

__all__ = ["StreamMonitor", "BeatEdges"]


class StreamMonitor:
    """Counts the handshake of stream ``name`` on every rising edge of ``clock``.

    Counters (ints, updated on each edge; read them any time, :meth:`counts` gives them all):

    * ``cycles``: rising edges seen since the monitor started;
    * ``beats``: edges where a beat moved (``valid`` and ``ready``, not in reset);
    * ``stalls``: edges with ``valid`` high and ``ready`` low (the beat is held);
    * ``last_stalls``: those stalls whose payload has its ``last`` bit set (only counted when
      ``layout`` has a ``last`` field; else stays 0);
    * ``idle``: edges with ``valid`` low, out of reset;
    * ``resets``: edges with ``rst`` high.
    """

    def __init__(self, dut, name: str, clock, *, layout: PayloadLayout | None = None):
        self.name = name
        self._valid, self._ready, self._payload, self._rst, self._edge = stream_handles(
            dut, name, clock)
        has_last = layout is not None and any(f == "last" for f, _, _ in layout.fields)
        self._last_bit = layout.offset("last") if has_last else None
        self.cycles = self.beats = self.stalls = self.last_stalls = self.idle = self.resets = 0
        self._task = cocotb.start_soon(self._run())

    def counts(self) -> dict[str, int]:
        """Every counter by name (for logs and coverage messages)."""
        return {"cycles": self.cycles, "beats": self.beats, "stalls": self.stalls,
                "last_stalls": self.last_stalls, "idle": self.idle, "resets": self.resets}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"StreamMonitor({self.name!r}: {inner})"

    def stop(self) -> None:
        """Stop sampling; the counters keep their values."""
        self._task.cancel()

    async def _run(self) -> None:
        edge = self._edge
        read_valid, read_ready = reader(self._valid), reader(self._ready)
        read_rst = reset_reader(self._rst)
        read_payload = reader(self._payload) if self._last_bit is not None else None
        last_bit = self._last_bit
        while True:
            await edge
            self.cycles += 1
            if read_rst():
                self.resets += 1
            elif not read_valid():
                self.idle += 1
            elif read_ready():
                self.beats += 1
            else:
                self.stalls += 1
                if read_payload is not None and (read_payload() >> last_bit) & 1:
                    self.last_stalls += 1


class BeatEdges:
    """Passive: the clock cycle of every beat moved on stream ``name`` and, with ``last_bit``
    (the payload bit of ``last``), that bit (``beats``: ``(cycle, last)``; ``last`` 0 without
    it). For the coverage of back-to-back vectors / rows."""

    def __init__(self, dut, name: str, last_bit: int | None = None):
        valid, ready, payload, rst, self._edge = stream_handles(dut, name, dut.clk)
        self._valid, self._ready, self._rst = reader(valid), reader(ready), reset_reader(rst)
        self._payload = reader(payload) if last_bit is not None else None
        self._last_bit = last_bit
        self.beats: list[tuple[int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        cycle = 0
        while True:
            await self._edge
            cycle += 1
            if not self._rst() and self._valid() and self._ready():
                last = (self._payload() >> self._last_bit) & 1 if self._payload else 0
                self.beats.append((cycle, last))

    def back_to_back(self, n: int | None = None) -> bool:
        """Whether some vector's first beat moved on the edge after the previous one's last:
        vectors of ``n`` beats, or (``n`` None) ended by the ``last`` bit."""
        b = self.beats
        starts = range(n, len(b), n) if n else [k for k in range(1, len(b)) if b[k - 1][1]]
        return any(b[k][0] == b[k - 1][0] + 1 for k in starts)
