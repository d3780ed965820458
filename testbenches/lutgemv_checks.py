"""Port-level checks of the GEMV benches (``testbenches.tb_lutgemv``) that run beside the
scoreboard: :class:`XReadyCheck`, the shell's promise that ``x`` waits only while both
vector buffers are in use (``rtl_gen.gemv_common``)."""
from __future__ import annotations

import cocotb


class XReadyCheck:
    """Per-cycle check of ``x.ready`` against the buffers in use, seen from the ports only.

    On every rising edge out of reset it counts vectors (``x`` beats with ``last``) and
    finished passes (``w`` beats with ``last``) moved on earlier edges; ``x.ready`` low is a
    violation when a vector is part-way in (its buffer is taken) or fewer than two vectors
    are stored and not yet finished by their pass. A reset zeroes the counts."""

    def __init__(self, dut, clock, layouts):
        from lowbit.testbenches.handles import reader, reset_reader, stream_handles
        handles = {name: stream_handles(dut, name, clock) for name in ("x", "w")}
        self._edge = handles["x"][4]
        self._read = {name: tuple(reader(h) for h in handles[name][:3]) for name in handles}
        self._rst = reset_reader(handles["x"][3])
        self._last = {name: layouts[name].offset("last") for name in handles}
        self.violations: list[str] = []
        self.checked = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        stored = finished = 0
        partial = False
        (xv, xr, xp), (wv, wr, wp) = self._read["x"], self._read["w"]
        x_last, w_last = self._last["x"], self._last["w"]
        cycle = 0
        while True:
            await self._edge
            cycle += 1
            if self._rst():
                stored = finished = 0
                partial = False
                continue
            ready = xr()
            self.checked += 1
            if not ready and (partial or stored - finished < 2) and len(self.violations) < 5:
                self.violations.append(f"cycle {cycle}: x.ready low with {stored - finished} "
                                       f"vector(s) stored{' and one part-way in' if partial else ''}")
            if xv() and ready:
                if (xp() >> x_last) & 1:
                    stored, partial = stored + 1, False
                else:
                    partial = True
            if wv() and wr() and (wp() >> w_last) & 1:
                finished += 1
