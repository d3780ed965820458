"""Stream drivers, monitor checks and the scoreboard shared by every lowbit test bench (cocotb 2.x).

A lowbit stream is an ``amaranth.lib.stream`` interface as Amaranth writes it to Verilog:
``<name>__valid``, ``<name>__ready`` and one flat ``<name>__payload`` vector (a struct payload
has its first field in the low bits: :class:`PayloadLayout`). A beat moves on a rising clock
edge at which ``valid`` and ``ready`` are both high and ``rst`` is low.

Sampling. Each driver is one coroutine that wakes on the rising edge and reads the handshake
there. Under Verilator the edge callback runs *before* the design evaluates that edge, so the
values read are the ones the flip-flops are about to capture, and writes made then are
inertial: they reach the design after the edge (cocotbext-axi relies on the same order; the
self-test ``tb_selftest.test_edge_sampling`` checks it against a real design).

Reset. If the design has an ``rst`` port (Amaranth's synchronous, active-high reset) the
drivers see it: no beat moves on an edge where ``rst`` is high, and the sink's protocol check
starts afresh. Use :func:`reset_dut` and ``clear()`` on the drivers (and the scoreboard) to
reset mid-stream.

Pressure. Both drivers take ``pause``: an iterator of booleans, one per clock cycle, ``True``
meaning "not this cycle" (the source starts no new beat; the sink holds ``ready`` low). Use
:func:`random_pauses` or ``itertools.cycle([...])``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, RisingEdge

__all__ = [
    "PayloadLayout",
    "Scoreboard",
    "StreamProtocolError",
    "StreamSink",
    "StreamSource",
    "bursty_pauses",
    "random_pauses",
    "reset_dut",
    "seed_from_env",
]

_log = logging.getLogger("cocotb.lowbit")


class StreamProtocolError(AssertionError):
    """The design broke the valid/ready rules on one of its output streams."""


# --------------------------------------------------------------------------------------------
# Payload layout


class PayloadLayout:
    """The bit layout of a struct payload, mirroring an Amaranth ``data.StructLayout``.

    ``fields`` is a sequence of ``(name, width, signed)``; the first field occupies the low bits.
    :meth:`pack` takes every field by name, checks each value fits its field (``ValueError``
    otherwise) and returns the flat unsigned integer; :meth:`unpack` returns a dict of ints with
    signed fields sign-extended.
    """

    def __init__(self, fields: Sequence[tuple[str, int, bool]]):
        self.fields: tuple[tuple[str, int, bool], ...] = tuple(
            (str(name), int(width), bool(signed)) for name, width, signed in fields
        )
        names = [name for name, _, _ in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in payload layout: {names}")
        self._offsets: dict[str, int] = {}
        offset = 0
        for name, width, _ in self.fields:
            if width < 1:
                raise ValueError(f"payload field {name!r} has width {width}; it must be >= 1")
            self._offsets[name] = offset
            offset += width
        self.width: int = offset

    @classmethod
    def from_struct(cls, layout) -> PayloadLayout:
        """Build from an Amaranth ``data.StructLayout`` (fields must be plain ``Shape``-castable)."""
        from amaranth.hdl import Shape

        fields = []
        for name, field in layout:
            shape = Shape.cast(field.shape)
            fields.append((name, shape.width, shape.signed))
        return cls(fields)

    def pack(self, **values: int) -> int:
        missing = [name for name, _, _ in self.fields if name not in values]
        extra = sorted(set(values) - set(self._offsets))
        if missing or extra:
            raise ValueError(
                f"pack() needs exactly the fields {[n for n, _, _ in self.fields]}; "
                f"missing {missing}, unknown {extra}"
            )
        raw = 0
        for name, width, signed in self.fields:
            value = int(values[name])
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            if not lo <= value <= hi:
                kind = "signed" if signed else "unsigned"
                raise ValueError(
                    f"field {name!r} = {value} does not fit {kind}({width}) (range {lo}..{hi})"
                )
            raw |= (value & ((1 << width) - 1)) << self._offsets[name]
        return raw

    def unpack(self, raw: int) -> dict[str, int]:
        raw = int(raw)
        if not 0 <= raw < (1 << self.width):
            raise ValueError(f"raw payload {raw:#x} does not fit {self.width} bits")
        out = {}
        for name, width, signed in self.fields:
            value = (raw >> self._offsets[name]) & ((1 << width) - 1)
            if signed and value >> (width - 1):
                value -= 1 << width
            out[name] = value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}: {'s' if s else 'u'}{w}" for n, w, s in self.fields)
        return f"PayloadLayout({inner})"


# --------------------------------------------------------------------------------------------
# Helpers


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


def bursty_pauses(rng: random.Random, max_run: int = 40, max_pause: int = 60) -> Iterator[bool]:
    """Long stretches: runs of 1..``max_run`` active cycles, then 1..``max_pause`` paused ones."""
    while True:
        yield from itertools.repeat(False, rng.randint(1, max_run))
        yield from itertools.repeat(True, rng.randint(1, max_pause))


def seed_from_env() -> int:
    """The bench's seed: ``LOWBIT_SEED`` if set, else a fresh random one; logged for replay."""
    text = os.environ.get("LOWBIT_SEED", "").strip()
    seed = int(text) if text else random.SystemRandom().randrange(1 << 31)
    _log.info("seed = %d (replay: LOWBIT_SEED=%d / lowbit sim --seed %d)", seed, seed, seed)
    return seed


def _clock_signal(clock):
    return clock.signal if isinstance(clock, Clock) else clock


async def reset_dut(dut, clock, cycles: int = 2) -> None:
    """Hold ``dut.rst`` high for ``cycles`` rising edges of ``clock``, then release it.

    Returns just after the last reset edge; the next edge is the first out of reset.
    """
    edge = RisingEdge(_clock_signal(clock))
    dut.rst.value = 1
    for _ in range(cycles):
        await edge
    dut.rst.value = 0


def _port(dut, name: str, suffix: str):
    full = f"{name}__{suffix}"
    try:
        return getattr(dut, full)
    except AttributeError:
        raise AttributeError(
            f"{dut._name} has no port {full!r} (a lowbit stream {name!r} needs "
            f"{name}__valid, {name}__ready and {name}__payload)"
        ) from None


def _reset_port(dut):
    try:
        return dut.rst
    except AttributeError:
        return None


def _fast_access(handle) -> object | None:
    """The raw GPI object behind ``handle`` if cocotb writes to it directly (Verilator), else None.

    cocotb's ``.value`` get/set builds ``LogicArray``/``Logic`` objects and re-checks ranges on
    every call; the drivers touch 3-5 signals per cycle, so they use the raw integer/binary
    string calls cocotb itself ends in. Only when cocotb trusts the simulator's inertial writes
    (``COCOTB_TRUST_INERTIAL_WRITES``, set by its Verilator runner) does ``.value =`` reduce to
    exactly that call; otherwise fall back to the public API.
    """
    import cocotb.handle as ch

    raw = getattr(handle, "_handle", None)
    if not getattr(ch, "_trust_inertial", False):
        return None
    if not all(hasattr(raw, f) for f in ("get_signal_val_binstr", "set_signal_val_int",
                                          "set_signal_val_binstr")):
        return None
    return raw


_DEPOSIT = 0  # cocotb.handle._GPISetAction.DEPOSIT: an ordinary (inertial) write


def _reader(handle) -> Callable[[], int]:
    """An integer read of a signal; Verilator is two-state, so X/Z take the slow path only."""
    raw = _fast_access(handle)
    if raw is None:
        return lambda: int(handle.value)
    get = raw.get_signal_val_binstr

    def read() -> int:
        try:
            return int(get(), 2)
        except ValueError:  # X/Z on a four-state simulator: let cocotb say what it is
            return int(handle.value)

    return read


def _writer(handle) -> Callable[[int], None]:
    """An integer write (callers range-check); inertial: the design sees it after this edge."""
    raw = _fast_access(handle)
    if raw is None:

        def write(value: int) -> None:
            handle.value = value

        return write
    width = len(handle)
    if width <= 32:
        set_int = raw.set_signal_val_int
        return lambda value: set_int(_DEPOSIT, value)
    set_bin = raw.set_signal_val_binstr
    spec = f"0{width}b"
    return lambda value: set_bin(_DEPOSIT, format(value, spec))


def _now() -> str:
    return f"{get_sim_time('ns'):g} ns"


# --------------------------------------------------------------------------------------------
# Source


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
        self._valid = _port(dut, name, "valid")
        self._ready = _port(dut, name, "ready")
        self._payload = _port(dut, name, "payload")
        self._rst = _reset_port(dut)
        self._edge = RisingEdge(_clock_signal(clock))
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
        read_valid, read_ready = _reader(self._valid), _reader(self._ready)
        read_rst = _reader(self._rst) if self._rst is not None else (lambda: 0)
        write_valid, write_payload = _writer(self._valid), _writer(self._payload)
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


# --------------------------------------------------------------------------------------------
# Sink


class StreamSink:
    """Drives ``<name>__ready`` from ``pause`` and records every accepted payload in ``received``.

    It also checks the design's side of the protocol: once ``valid`` is high on an edge where
    ``ready`` is low, ``valid`` must stay high and ``payload`` unchanged until a beat moves.
    A violation is appended to ``protocol_errors`` and raised as :class:`StreamProtocolError`
    from the driver task (which fails the running cocotb test) and from :meth:`wait_count`.
    """

    def __init__(self, dut, name: str, clock, *, pause: Iterator[bool] | None = None):
        self.name = name
        self._valid = _port(dut, name, "valid")
        self._ready = _port(dut, name, "ready")
        self._payload = _port(dut, name, "payload")
        self._rst = _reset_port(dut)
        self._clock = _clock_signal(clock)
        self._edge = RisingEdge(self._clock)
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
        read_valid, read_payload = _reader(self._valid), _reader(self._payload)
        read_rst = _reader(self._rst) if self._rst is not None else (lambda: 0)
        write_ready = _writer(self._ready)
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


# --------------------------------------------------------------------------------------------
# Scoreboard


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
