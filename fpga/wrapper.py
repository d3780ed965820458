"""A pin-count shell that lets any component be placed on a small package.

Contract
--------
:class:`PinWrapper` wraps any :class:`amaranth.lib.wiring.Component` that works in the
``sync`` clock domain (plus combinational logic) and exposes only four top-level ports:
``clk`` and ``rst`` (the ``sync`` domain, created implicitly so they become pins), one
input pin ``sin`` and one output pin ``sout``.

* Every bit of every ``In``-flow port of the component is driven by one flip-flop of a
  shift chain (``shift_bits`` long) that shifts ``sin`` in on every clock: the component
  sees registered, independent-looking inputs, so no input is a constant Yosys can fold.
* Every bit of every ``Out``-flow port is captured in a flip-flop; the captured bits, plus
  the last bit of the shift chain (so the whole chain stays live even when the component
  ignores some inputs), are XOR-reduced onto ``sout`` through a tree of registered
  ``xor_fan_in``-input XORs (one LUT4 per node on both iCE40 and ECP5).

The shell's cost is stated by ``shift_bits``, ``capture_bits``, ``xor_tree_ffs`` and
``xor_tree_luts`` (upper bounds for what Yosys keeps; it may merge equal or constant
capture flip-flops) and summarised by :meth:`PinWrapper.note`. The shell registers carry no
reset, so they add no reset logic.

Reset: the ``rst`` pin passes through a stage of ``RESET_STAGES`` (2) reset-less
flip-flops before it becomes the wrapped component's ``sync`` reset (the component runs in
a domain ``core`` on the same clock whose reset is that last flip-flop), so no path starts
at the pin and fans out combinationally into the component's flip-flop resets; a reset
takes effect ``RESET_STAGES`` cycles after the pin changes (both edges), and the
component starts in reset until the pin's value has passed the stage. Latency from a
component output to ``sout``: ``1 + xor_tree_depth`` cycles.
"""


from amaranth.hdl import (Cat, ClockDomain, ClockSignal, DomainRenamer, Module,
                          ResetSignal, Signal, Value)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PinWrapper", "RESET_STAGES"]

#: reset-less flip-flops between the ``rst`` pin and the wrapped component's reset
RESET_STAGES = 2


class PinWrapper(wiring.Component):
    """Serial-in / XOR-out shell around ``component`` (see the module docstring).

    Parameters
    ----------
    component : wiring.Component
        The design to wrap; must use only the ``sync`` domain (or none).
    xor_fan_in : int
        Inputs per registered XOR node (4 fits one LUT4).

    Members
    -------
    sin : In(1)
        Serial input feeding the shift chain.
    sout : Out(1)
        Registered XOR of every component output bit (and the chain's last bit).
    """

    sin: In(1)
    sout: Out(1)

    def __init__(self, component: wiring.Component, *, xor_fan_in: int = 4):
        if not isinstance(component, wiring.Component):
            raise TypeError(f"PinWrapper wraps an amaranth.lib.wiring.Component, "
                            f"not {component!r}")
        if xor_fan_in < 2:
            raise ValueError(f"xor_fan_in must be at least 2, not {xor_fan_in}")
        self.component = component
        self.xor_fan_in = int(xor_fan_in)
        self._inputs: list[Value] = []
        self._outputs: list[Value] = []
        for _path, member, value in component.signature.flatten(component):
            (self._inputs if member.flow == In else self._outputs).append(Value.cast(value))
        self.shift_bits = sum(len(v) for v in self._inputs)
        self.capture_bits = sum(len(v) for v in self._outputs)
        # XOR tree over the captured outputs plus the chain's tail bit.
        leaves = self.capture_bits + (1 if self.shift_bits else 0)
        self.xor_tree_ffs = 0
        self.xor_tree_luts = 0
        self.xor_tree_depth = 0
        while leaves > 1:
            nodes = -(-leaves // self.xor_fan_in)
            self.xor_tree_ffs += nodes
            self.xor_tree_luts += nodes
            self.xor_tree_depth += 1
            leaves = nodes
        super().__init__()

    @property
    def shell_ffs(self) -> int:
        """Upper bound of the flip-flops the shell adds."""
        return self.shift_bits + self.capture_bits + self.xor_tree_ffs + RESET_STAGES

    def note(self) -> str:
        """One sentence saying what the shell adds to LUT/FF counts."""
        return (f"LUT/FF counts include the PinWrapper shell: {self.shift_bits} shift-register "
                f"FFs driving {len(self._inputs)} input ports, {self.capture_bits} output-capture "
                f"FFs and a {self.xor_tree_depth}-level registered XOR tree "
                f"({self.xor_tree_ffs} FFs, ~{self.xor_tree_luts} LUT4) onto one pin, "
                f"{RESET_STAGES} reset-stage FFs between the rst pin and the design's reset "
                f"(reset {RESET_STAGES} cycles after the pin); at most {self.shell_ffs} FFs in all (Yosys may merge equal or constant ones).")

    def elaborate(self, platform):
        m = Module()
        # rst pin -> RESET_STAGES reset-less FFs -> the component's reset (domain "core")
        m.domains.core = core = ClockDomain("core", local=True)
        stages = [Signal(init=1, reset_less=True, name=f"rst_stage{k}")
                  for k in range(RESET_STAGES)]
        m.d.sync += [stage.eq(prev) for stage, prev in
                     zip(stages, [ResetSignal("sync"), *stages[:-1]])]
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(stages[-1])]
        m.submodules.dut = DomainRenamer({"sync": "core"})(self.component)

        if self.shift_bits:
            chain = Signal(self.shift_bits, reset_less=True)
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
            offset = 0
            for port in self._inputs:
                m.d.comb += port.eq(chain[offset:offset + len(port)])
                offset += len(port)
            leaves = [chain[-1]]
        else:
            leaves = []

        if self.capture_bits:
            captured = Signal(self.capture_bits, reset_less=True)
            m.d.sync += captured.eq(Cat(*self._outputs))
            leaves = [captured[i] for i in range(self.capture_bits)] + leaves

        while len(leaves) > 1:
            level = []
            for start in range(0, len(leaves), self.xor_fan_in):
                node = Signal(reset_less=True)
                m.d.sync += node.eq(Cat(*leaves[start:start + self.xor_fan_in]).xor())
                level.append(node)
            leaves = level
        m.d.comb += self.sout.eq(leaves[0] if leaves else 0)
        return m
