"""Stream drivers of the lowbit test benches (cocotb 2.x): :class:`StreamSource`, :class:`StreamSink`.

A source drives ``<name>__valid``/``__payload`` of one of the design's input streams, a sink
drives ``<name>__ready`` of an output stream and checks the design's side of the handshake.
How they sample (on the rising edge, before the design evaluates it, under Verilator) and see
``rst`` is in :mod:`.handles`; their ``pause`` iterators come from :mod:`.pressure`.

Reset. No beat moves on an edge where ``rst`` is high, and the sink's protocol check starts
afresh. Use :func:`reset_dut` and ``clear()`` on the drivers (and the scoreboard) to reset
mid-stream. :func:`seed_from_env` gives a bench its replayable seed.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections import deque
from collections.abc import Iterator

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, RisingEdge

from .handles import clock_signal, reader, reset_reader, stream_handles, writer

__all__ = ["StreamProtocolError", "StreamSink", "StreamSource", "reset_dut", "seed_from_env"]

_log = logging.getLogger("cocotb.lowbit")


class StreamProtocolError(AssertionError):
    """The design broke the valid/ready rules on one of its output streams."""


def seed_from_env() -> int:
    """The bench's seed: ``LOWBIT_SEED`` if set, else a fresh random one; logged for replay."""
    text = os.environ.get("LOWBIT_SEED", "").strip()
    seed = int(text) if text else random.SystemRandom().randrange(1 << 31)
    _log.info("seed = %d (replay: LOWBIT_SEED=%d / lowbit sim --seed %d)", seed, seed, seed)
    return seed


async def reset_dut(dut, clock, cycles: int = 2) -> None:
    """Hold ``dut.rst`` high for ``cycles`` rising edges of ``clock``, then release it.

    Returns just after the last reset edge; the next edge is the first out of reset.
    """
    edge = RisingEdge(clock_signal(clock))
    dut.rst.value = 1
    for _ in range(cycles):
        await edge
    dut.rst.value = 0


def _now() -> str:
    return f"{get_sim_time('ns'):g} ns"


class StreamSource:
    """Drives ``<name>__valid``/``__payload`` from a queue of integer payloads, honouring ``ready``.

    One beat is presented at a time and held unchanged until accepted; ``pause`` is consulted
    (one value per cycle) only before presenting a new beat, so a presented beat is never
    withdrawn (except by :meth:`clear`). ``sent`` counts accepted beats. The coroutine sleeps
    while the queue is empty, so an idle source costs nothing per cycle; after an idle spell the
    first beat appears on the edge after it was queued.
    """

    def __init__(self, dut, name: str, clock, *, pause: Iterator[bool] | None = None):
        self.name = name
        self._valid, self._ready, self._payload, self._rst, self._edge = stream_handles(
            dut, name, clock)
        self._limit = 1 << len(self._payload)
        self._pause = pause if pause is not None else itertools.repeat(False)
        self._queue: deque[tuple[int, Event | None]] = deque()
        self._current: tuple[int, Event | None] | None = None  # the beat on the bus
        self._cleared = False  # clear() ran since the last edge was processed
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self.sent = 0
        self._valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def _check(self, payload: int) -> int:
        payload = int(payload)
        if not 0 <= payload < self._limit:
            raise ValueError(
                f"stream {self.name!r}: payload {payload} does not fit "
                f"{len(self._payload)} unsigned bits (pack signed fields with PayloadLayout)"
            )
        return payload

    def send_nowait(self, payload: int) -> None:
        """Queue one beat (an unsigned integer of the payload's width)."""
        self._queue.append((self._check(payload), None))
        self._idle.clear()
        self._wake.set()

    async def send(self, payload: int) -> None:
        """Queue one beat and return once the design has accepted it (or ``clear()`` dropped it)."""
        done = Event()
        self._queue.append((self._check(payload), done))
        self._idle.clear()
        self._wake.set()
        await done.wait()

    async def wait_idle(self) -> None:
        """Return once the queue is empty and the last beat has been accepted."""
        await self._idle.wait()

    def clear(self) -> None:
        """Drop every queued beat and deassert ``valid`` now (the beat on the bus is withdrawn)."""
        for _, done in self._queue:
            if done is not None:
                done.set()
        self._queue.clear()
        self._cleared = True
        self._valid.value = 0

    async def _run(self) -> None:
        queue, edge, pause = self._queue, self._edge, self._pause
        read_valid, read_ready = reader(self._valid), reader(self._ready)
        read_rst = reset_reader(self._rst)
        write_valid, write_payload = writer(self._valid), writer(self._payload)
        valid_driven = 0
        while True:
            if self._current is None and not queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            await edge
            current = self._current
            cleared, self._cleared = self._cleared, False
            if current is not None:
                # What the design saw at this edge: our own valid, unless clear() wrote it since
                # (a write in this edge's callback lands after the edge, so read it back).
                seen_valid = read_valid() if cleared else valid_driven
                if seen_valid and read_ready() and not read_rst():
                    self.sent += 1
                    if current[1] is not None:
                        current[1].set()
                    current = None
                elif cleared:
                    if current[1] is not None:
                        current[1].set()
                    current = None
            if cleared:
                valid_driven = 0  # clear() wrote 0
            if current is None:
                if queue and not next(pause):
                    current = queue.popleft()
                    write_payload(current[0])
                    if not valid_driven:
                        write_valid(1)
                        valid_driven = 1
                elif valid_driven:
                    write_valid(0)
                    valid_driven = 0
            self._current = current


class StreamSink:
    """Drives ``<name>__ready`` from ``pause`` and records every accepted payload in ``received``.

    It also checks the design's side of the protocol: once ``valid`` is high on an edge where
    ``ready`` is low, ``valid`` must stay high and ``payload`` unchanged until a beat moves.
    A violation is appended to ``protocol_errors`` and raised as :class:`StreamProtocolError`
    from the driver task (which fails the running cocotb test) and from :meth:`wait_count`.
    """

    def __init__(self, dut, name: str, clock, *, pause: Iterator[bool] | None = None):
        self.name = name
        self._valid, self._ready, self._payload, self._rst, self._edge = stream_handles(
            dut, name, clock)
        self._pause = pause if pause is not None else itertools.repeat(False)
        self.received: list[int] = []
        #: Rising edges seen since the sink started (a cycle counter for reports and timing).
        self.cycle = 0
        self.protocol_errors: list[str] = []
        self._stalled: int | None = None  # payload held on a stalled edge, else None
        self._target = 0
        self._deadline: int | None = None  # cycle at which wait_count gives up
        self._reached = Event()
        self._ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def clear(self) -> None:
        """Forget received beats and any stalled beat (use around a mid-stream reset)."""
        self.received.clear()
        self._stalled = None

    async def wait_count(self, n: int, timeout_cycles: int | None = None) -> None:
        """Return once ``len(received) >= n``; raise ``TimeoutError`` after ``timeout_cycles``."""
        self._raise_protocol_errors()
        if len(self.received) >= n:
            return
        start = self.cycle
        self._target = n
        self._deadline = None if timeout_cycles is None else start + timeout_cycles
        self._reached.clear()
        try:
            await self._reached.wait()
        finally:
            self._target, self._deadline = 0, None
        self._raise_protocol_errors()
        if len(self.received) < n:
            raise TimeoutError(
                f"stream {self.name!r}: received {len(self.received)} of {n} beats "
                f"in {timeout_cycles} cycles (cycles {start}..{self.cycle}); "
                f"the design dropped beats or stalled"
            )

    def _raise_protocol_errors(self) -> None:
        if self.protocol_errors:
            raise StreamProtocolError(self.protocol_errors[0])

    def _violation(self, what: str) -> None:
        message = (
            f"stream {self.name!r}: protocol violation at cycle {self.cycle} "
            f"({_now()}): {what}"
        )
        self.protocol_errors.append(message)
        self._reached.set()  # wake wait_count() so it reports the violation
        raise StreamProtocolError(message)

    async def _run(self) -> None:
        edge, received, pause = self._edge, self.received, self._pause
        read_valid, read_payload = reader(self._valid), reader(self._payload)
        read_rst = reset_reader(self._rst)
        write_ready = writer(self._ready)
        ready_driven = 0
        while True:
            await edge
            self.cycle += 1
            if self.cycle == self._deadline:
                self._reached.set()  # wait_count() timed out; it raises
            if read_rst():
                self._stalled = None
            elif read_valid():
                data = read_payload()
                if self._stalled is not None and data != self._stalled:
                    self._violation(
                        f"payload changed from {self._stalled:#x} to {data:#x} while stalled"
                    )
                if ready_driven:
                    self._stalled = None
                    received.append(data)
                    if self._target and len(received) >= self._target:
                        self._reached.set()
                else:
                    self._stalled = data
            elif self._stalled is not None:
                self._violation(f"valid dropped while stalled with payload {self._stalled:#x}")
            next_ready = 0 if next(pause) else 1
            if next_ready != ready_driven:
                write_ready(next_ready)
                ready_driven = next_ready
