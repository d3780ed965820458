"""How a lowbit bench sees a stream's signals: port lookup and fast reads and writes (cocotb 2.x).

A lowbit stream is an ``amaranth.lib.stream`` interface as Amaranth writes it to Verilog:
``<name>__valid``, ``<name>__ready`` and one flat ``<name>__payload`` vector (a struct payload
has its first field in the low bits: :class:`lowbit.testbenches.payload.PayloadLayout`). A beat
moves on a rising clock edge at which ``valid`` and ``ready`` are both high and ``rst`` is low.

Sampling. Each driver (:mod:`.drivers`) and monitor (:mod:`.monitor`) is one coroutine that
wakes on the rising edge and reads the handshake there. Under Verilator the edge callback runs
*before* the design evaluates that edge, so the values read are the ones the flip-flops are
about to capture, and writes made then are inertial: they reach the design after the edge
(cocotbext-axi relies on the same order; the self-test ``tb_selftest.test_edge_sampling``
checks it against a real design).

Reset. If the design has an ``rst`` port (Amaranth's synchronous, active-high reset) the
drivers and monitors see it: no beat moves on an edge where ``rst`` is high.
"""

from __future__ import annotations

from collections.abc import Callable

from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

__all__ = ["clock_signal", "reader", "reset_port", "reset_reader", "stream_handles", "writer"]


def clock_signal(clock):
    """The clock's signal handle, given either the handle or the cocotb ``Clock`` driving it."""
    return clock.signal if isinstance(clock, Clock) else clock


def stream_handles(dut, name: str, clock) -> tuple:
    """``(valid, ready, payload, rst, edge)`` of stream ``name``: its three handles, the reset
    port (None without one) and the ``RisingEdge`` trigger of ``clock``."""
    return (_port(dut, name, "valid"), _port(dut, name, "ready"), _port(dut, name, "payload"),
            reset_port(dut), RisingEdge(clock_signal(clock)))


def _port(dut, name: str, suffix: str):
    """The handle of ``<name>__<suffix>``; a missing port names the three a stream needs."""
    full = f"{name}__{suffix}"
    try:
        return getattr(dut, full)
    except AttributeError:
        raise AttributeError(
            f"{dut._name} has no port {full!r} (a lowbit stream {name!r} needs "
            f"{name}__valid, {name}__ready and {name}__payload)"
        ) from None


def reset_port(dut):
    """``dut.rst``, or None when the design has no reset port."""
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


def reader(handle) -> Callable[[], int]:
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


def reset_reader(rst) -> Callable[[], int]:
    """:func:`reader` of the reset port from :func:`reset_port`; always 0 when there is none."""
    return reader(rst) if rst is not None else (lambda: 0)


def writer(handle) -> Callable[[int], None]:
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
