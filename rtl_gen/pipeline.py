"""The stream-pipeline idiom of the lowbit generators: free-running datapaths, credits, skids.

A datapath is a chain of registers that **runs free**: every stage register loads every
cycle (no clock enable), and a ``valid`` bit travels beside each stage. Nothing stalls it.
Its results land in a small output queue, and an input is accepted only while a credit is
free: ``credits`` counts the beats accepted and not yet delivered (in the stages, or waiting
in the queue), so every beat in flight is sure of a slot when it lands. Backpressure on the
output therefore stops the *input*, one decision in one place; no control signal fans out
into the clock enables of the datapath (on iCE40 such an enable goes through a global
buffer, and on the critical path), and each stage holds at most one carry chain or one
registered multiplier.

Pieces
------
``FreePipeline(m, valid)``
    A builder inside a module: ``stage(name, **values)`` registers the values (no enable,
    no reset) and the valid bit beside them (reset to 0); ``rom(...)`` is a one-cycle ROM
    read (registered LUTs up to 32 words, else a non-transparent ``lib.memory.Memory``
    read port in block RAM), to be registered again in the stage after the read; ``add(...)`` splits a long carry chain over stages with
    registered partial sums; ``mul(...)`` registers a product (a DSP with its registers, or
    fabric partial products for a multiplier of at most 3 bits). ``FreePipeline(None)``
    only counts stages (for a ``latency`` attribute known before ``elaborate``).
``CreditQueue(shape, credits)``
    The landing queue and the credit count (``wiring.Component``; latency 3, capacity
    ``credits``).
``SkidBuffer(shape)``
    A two-entry stream register cutting every combinational path between its sides
    (``wiring.Component``; latency 1, capacity 2), for joining streams across a timing
    boundary.

Composition (one result per input beat)::

    m.submodules.queue = queue = CreditQueue(layout, credits=latency)  # latency = stages + 3
    m.d.comb += [self.i.ready.eq(queue.admit), queue.accept.eq(self.i.valid & queue.admit)]
    pipe = FreePipeline(m, queue.accept)
    s = pipe.stage("in", x=self.i.payload.data)
    ...                                                    # more stages
    m.d.comb += [queue.w.valid.eq(pipe.valid), queue.w.payload.eq(result)]
    wiring.connect(m, queue.o, wiring.flipped(self.o))

The unit's latency is then ``pipe.stages + CreditQueue.LATENCY`` cycles, and with
``credits`` equal to it (the unit's capacity) it takes one beat per cycle while ``o`` is
ready. The credit flags are named ``valid_<k>`` and sum to the beats in flight in every
state, so ``testbenches.formal.stall_pipeline_invariant`` proves such a unit's stream rules
by induction (``tests/test_pipeline.py``, ``tests/test_formal.py``). With
``CreditQueue(layout, credits=latency + 2, registered=True)`` ``i.ready`` is a flip-flop
(neither ``o.ready`` nor ``i.valid`` reaches it; the activation unit's form), the capacity
``latency + 2`` beats, still one beat per cycle; ``CreditQueue.invariant`` (the flags'
sum, a thermometer without holes) is then the induction's invariant.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .skid import SkidBuffer  # the idiom's third part, in its own file

__all__ = ["FreePipeline", "CreditQueue", "SkidBuffer"]


class FreePipeline:
    """Stages of a free-running datapath, built inside a ``Module``.

    Function: each ``stage`` is one rank of registers loaded every cycle; the valid bit of
    the stage (``valid_<name>``, reset to 0) says whether it holds a beat. Data registers
    carry no reset and no enable. Latency: one cycle per ``stage`` (``self.stages``).
    Throughput: one beat per cycle, always (nothing here can stall).

    ``valid``: the valid bit entering the first stage (e.g. the input handshake).
    ``self.valid``: the valid bit of the last stage built so far.
    """

    def __init__(self, m: Module | None, valid=0):
        # ``m=None``: a dry run that only counts stages (e.g. for a ``latency`` attribute
        # computed before ``elaborate``); nothing it builds is used.
        self.dry = m is None
        if self.dry:
            m = Module()
            m._MustUse__silence = True
        self.m = m
        self.valid = Value.cast(valid)
        self.stages = 0

    def reg(self, value, name: str, *, reset_less: bool = True) -> Signal:
        """A register loading ``value`` every cycle."""
        value = Value.cast(value)
        register = Signal(value.shape(), name=name, reset_less=reset_less)
        self.m.d.sync += register.eq(value)
        return register

    def stage(self, name: str, **values) -> SimpleNamespace:
        """One rank of registers for the named values (and the valid bit beside them)."""
        self.stages += 1
        self.valid = self.reg(self.valid, f"valid_{name}", reset_less=False)
        return SimpleNamespace(**{key: self.reg(value, f"{key}_{name}") for key, value in values.items()})

    def rom(self, name: str, init, shape, addr) -> Value:
        """A ROM read: the word of ``addr`` (from this stage's registers) arrives with the
        next ``stage`` (one cycle, like a synchronous read port); register it there again
        before arithmetic. Up to 16 words: a LUT per bit, registered. 17 to 32 words: the
        two halves read by the low four address bits and registered with the top bit, the
        half chosen in the next stage (one LUT level per cycle on a LUT4 fabric, no block
        RAM output on the path: ECP5's is slow). Larger: a ``lib.memory.Memory`` read port
        (``transparent=False``, block RAM). Returns the word as a value."""
        width = Shape.cast(shape).width
        addr = Value.cast(addr)
        if len(init) <= 32 and not self.dry:
            init = [int(v) & ((1 << width) - 1) for v in init] + [0] * (-len(init) % 2)
            def lookup(words, index):
                out = Signal(width, name=f"{name}_lut{len(halves)}")
                with self.m.Switch(index):
                    for k, v in enumerate(words):
                        with self.m.Case(k):
                            self.m.d.comb += out.eq(v)
                return out
            halves = []
            if len(init) <= 16:
                return self.reg(lookup(init, addr), f"{name}_word")
            low, high = init[:16], init[16:]
            halves.append(self.reg(lookup(low, addr[:4]), f"{name}_low"))
            halves.append(self.reg(lookup(high, addr[:4]), f"{name}_high"))
            top = self.reg(addr[4], f"{name}_top")
            return Mux(top, halves[1], halves[0])
        if self.dry:
            return Signal(shape, name=f"{name}_data")
        self.m.submodules[name] = rom = Memory(shape=shape, depth=len(init), init=init,
                                               attrs={"ram_style": "block"})
        read = rom.read_port(transparent_for=())
        self.m.d.comb += [read.en.eq(1), read.addr.eq(addr)]
        return read.data

    @staticmethod
    def add_stages(width: int, chunk: int) -> int:
        """Stages of ``add`` for a sum ``width`` bits wide: ``ceil(width / chunk)``."""
        return max(1, -(-width // chunk))

    def add(self, name: str, a, b, width: int, chunk: int, *, carry_in: int = 0,
            invert: bool = False, **riders):
        """``a + b + carry_in`` modulo ``2**width`` (signed when either operand is; with
        ``invert``: its complement ``~(a + b + carry_in)``, which costs nothing) in
        ``add_stages(width, chunk)`` stages.

        Stage ``j`` adds ``chunk`` bits of the operands and the carry registered by stage
        ``j - 1`` (entering as the low bit of an operand), so no stage holds a carry chain
        longer than ``chunk + 2`` cells. Every chain reads its operands straight from
        registers, and its carry out leaves as a sum bit (``1 + 0 + carry``: a real LUT,
        packed with its flip-flop; a bare carry-out would need an extra logic cell and a
        route). That bit is the complemented carry, so every other stage works on
        complemented operands (``~x + ~y + ~c = ~(x + y + c)``, with its carry out
        complemented back), its operand bits stored complemented one stage ahead.
        Returns ``(sum, riders)`` (all registered)."""
        a, b = Value.cast(a), Value.cast(b)
        signed = a.shape().signed or b.shape().signed
        a_bits = Signal(width, name=f"{name}_a")
        b_bits = Signal(width, name=f"{name}_b")
        self.m.d.comb += [a_bits.eq(a), b_bits.eq(b)]
        names = list(riders)
        n = self.add_stages(width, chunk)
        bounds = [(j * chunk, min(width, (j + 1) * chunk)) for j in range(n)]
        done = []      # registered chunks of the sum (true polarity)
        # the carry into this chunk (registered, complemented on odd stages); a carry-in
        # enters as the low bit of the operands like the carries between stages
        carry = Const(1, 1) if carry_in else None
        x, y = a_bits[:bounds[0][1]], b_bits[:bounds[0][1]]   # this chunk's operands
        rest_a, rest_b = a_bits[bounds[0][1]:], b_bits[bounds[0][1]:]  # later chunks (true)
        for j, (lo, hi) in enumerate(bounds):
            flip = j % 2 == 1          # this stage works on complemented values
            final = j == n - 1
            size = hi - lo
            top = () if final else (Const(1, 1),)
            if carry is None:
                step = Cat(x, *top) + Cat(y, *(Const(0, 1),) * len(top))
                low = 0
            else:
                step = Cat(carry, x, *top) + Cat(Const(1, 1), y, *(Const(0, 1),) * len(top))
                low = 1
            part = step[low:low + size]
            values = {"part": (~part if flip else part) if not invert else (part if flip else ~part)}
            if not final:
                values["carry"] = step[low + size]  # the complement of this stage's carry out
                nlo, nhi = bounds[j + 1]
                nsize = nhi - nlo
                # the next chunk's operands, in the next stage's polarity
                values["next_a"] = ~rest_a[:nsize] if not flip else rest_a[:nsize]
                values["next_b"] = ~rest_b[:nsize] if not flip else rest_b[:nsize]
                if nhi < width:
                    values["rest_a"], values["rest_b"] = rest_a[nsize:], rest_b[nsize:]
            values.update({f"done{k}": d for k, d in enumerate(done)})
            values.update(riders)
            s = self.stage(f"{name}{j}", **values)
            done = [getattr(s, f"done{k}") for k in range(len(done))] + [s.part]
            riders = {k: getattr(s, k) for k in names}
            if not final:
                carry, x, y = s.carry, s.next_a, s.next_b
                if bounds[j + 1][1] < width:
                    rest_a, rest_b = s.rest_a, s.rest_b
        total = Cat(*done)
        return (total.as_signed() if signed else total), riders

    def mul(self, name: str, a, b, chunk: int, *, small: int = 3, **riders):
        """``a * b`` for an unsigned ``b``. With ``len(b) <= small``: in fabric, the
        partial products ``b[j] ? a << j : 0`` registered (one stage), then summed one
        after the other by ``add``. Otherwise one stage: both operands come from registers
        and the product is registered (a DSP block with its input and output registers).
        Returns ``(product, riders)``."""
        a, u = Value.cast(a), Value.cast(b)
        names = list(riders)
        if len(u) > small:
            s = self.stage(name, product=a * u, **riders)
            return s.product, {k: getattr(s, k) for k in names}
        width = (a * u).shape().width
        s = self.stage(f"{name}_pp", **{f"pp{j}": Mux(u[j], a, 0).shift_left(j) for j in range(len(u))},
                       **riders)
        total, terms = getattr(s, "pp0"), [getattr(s, f"pp{j}") for j in range(1, len(u))]
        riders = {k: getattr(s, k) for k in names}
        for j, term in enumerate(terms):
            later = {f"t{k}": t for k, t in enumerate(terms[j + 1:])}
            total, got = self.add(f"{name}_sum{j}", total, term, width, chunk, **later, **riders)
            terms[j + 1:] = [got[f"t{k}"] for k in range(len(later))]
            riders = {k: got[k] for k in names}
        return total, riders


class CreditQueue(wiring.Component):
    """Landing queue and input credits of a free-running pipeline.

    Function: results written on ``w`` (``w.ready`` is always 1: their room was reserved
    when their input was accepted) leave in order on ``o``. ``credits`` counts the beats
    accepted (``accept``) and not yet delivered on ``o``: a thermometer of ``credits``
    flags (``valid_0`` .. ``valid_<credits-1>``, reset to 0; no carry chain) plus the
    flag of the beat accepted in the last cycle (``valid_<credits>``), which joins the
    thermometer a cycle later, so the flags' next states never see ``i.valid``;
    ``admit``: the top flag is clear after this cycle's update (so the thermometer never
    overflows, whatever state it starts in): the capacity is exactly ``credits`` beats and
    a pipeline of latency ``credits`` runs at full rate (two LUT levels from ``o.ready``). The flags sum to the beats in
    flight in every state (``testbenches.formal.stall_pipeline_invariant`` holds).

    Structure: a RAM ring (``lib.memory.Memory``, synchronous read port, not transparent:
    block RAM on iCE40, distributed RAM on ECP5; at least 16 entries) written at ``wp`` by
    every landing result; its read address is ``rp`` or, when the head moves on this
    cycle, ``rp + 1`` (both registers), and a thermometer of the entries written one cycle
    ago or earlier makes the registered head-valid flag. The RAM's output feeds two skid
    registers (``SkidBuffer``'s logic) whose registered ready is all the ring's read side
    sees, so ``o.ready`` reaches only the skid registers, the credit flags and ``admit``
    (two LUT levels); ``o.valid`` and ``o.payload`` are registers. Every next-state function has
    at most six inputs (two LUT levels).

    ``registered=True``: ``admit`` is a register (its next state sees itself, ``accepted``
    and three credit flags, never ``o.ready`` or ``accept``), set while the beats in
    flight, and one more accepted in this cycle if ``admit`` is set, leave a credit free
    without counting a delivery; capacity still
    ``credits`` beats, and a pipeline of latency ``credits - 2`` runs at full rate (one
    credit more than unregistered: a beat delivered now frees its credit for the cycle
    after next).

    Ports:
    ``accept`` (In 1): an input beat was accepted this cycle (only while ``admit``).
    ``admit`` (Out 1): a credit is free after this cycle (counting one freed now).
    ``w`` (In stream): the pipeline's results. ``o`` (Out stream): the results, in order.

    Latency ``w`` to ``o``: ``LATENCY`` = 3 cycles (RAM write, RAM read, skid register).
    Throughput: one beat per cycle. Capacity: ``credits`` beats.
    """

    LATENCY = 3

    def __init__(self, shape, credits: int, *, registered: bool = False):
        assert credits >= 2 + registered
        self.shape, self.credits, self.registered = shape, credits, registered
        # ring entries: a power of two, at least 16 (smaller rings are mapped to flip-flops
        # and a read multiplexer, which is slower than a RAM)
        self.depth = max(16, 1 << (credits - 1).bit_length())
        super().__init__({
            "accept": In(1), "admit": Out(1),
            "w": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
        })

    @staticmethod
    def invariant(internals, in_flight):
        """The relation a formal proof of a unit built on one ``CreditQueue`` asserts (and
        proves) beside its stream rules (``testbenches.formal.prove_stream_protocol``'s
        ``invariant``; ``internals.signals(regex)`` finds registers by name): the credit
        flags ``valid_<k>`` sum to ``in_flight``, the thermometer ``valid_0`` ..
        ``valid_<credits-1>`` has no hole, and a set ``admit_reg`` (``registered``) leaves
        a credit free. (k-induction cannot rule out a thermometer with a hole, in which
        the registered ``admit`` would read the wrong flags.)"""
        flags = sorted(internals.signals(r"valid_\d+"), key=lambda s: int(s.name.split("_")[1]))
        if not flags:
            raise ValueError("CreditQueue.invariant: the DUT has no valid_<k> registers")
        count = len(flags) - 1  # credits; the last flag is the beat accepted a cycle ago
        holds = in_flight == sum(flags)
        for k in range(1, count):
            holds &= ~flags[k] | flags[k - 1]
        for admit in internals.signals("admit_reg"):
            holds &= ~admit | (in_flight <= count - 1)
        return holds

    @staticmethod
    def _thermometer(m, flags, up, down):
        """Next state of a thermometer count: ``up`` shifts a one in, ``down`` one out."""
        n = len(flags)
        for k, flag in enumerate(flags):
            below = flags[k - 1] if k else Const(1)
            above = flags[k + 1] if k + 1 < n else Const(0)
            m.d.sync += flag.eq(Mux(up & ~down, below, Mux(down & ~up, above, flag)))

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.shape).width
        depth = self.depth
        # ---------------------------------------------------------------- ring (write side)
        # no_rw_check: the ring never reads an entry in the cycle it is written (a read
        # takes only entries written a cycle before, and the write pointer never reaches
        # an unread entry), so Yosys needs no read-during-write emulation logic
        m.submodules.ring = ring = Memory(shape=width, depth=depth, init=[], attrs={"no_rw_check": 1})
        write = ring.write_port()
        read = ring.read_port(transparent_for=())
        wp = Signal(range(depth), name="ring_wp")
        m.d.comb += [self.w.ready.eq(1), write.en.eq(self.w.valid), write.addr.eq(wp),
                     write.data.eq(self.w.payload)]
        with m.If(self.w.valid):
            m.d.sync += wp.eq(wp + 1)
        # ---------------------------------------------------------------- ring (read side)
        head_valid = Signal(name="ring_head_valid")  # the RAM output holds the head entry
        ready = [Signal(name=f"ring_ready_{k}") for k in range(self.credits)]  # entries readable
        rp = Signal(range(depth), name="ring_rp")
        rp1 = Signal(range(depth), name="ring_rp1", init=1 % depth)
        move = Signal(name="ring_move")  # the head enters the output skid registers this cycle
        raddr = Signal(range(depth), name="ring_raddr")
        # ---------------------------------------------------------------- output skid registers
        main = Signal(name="main_valid")   # o.valid
        spare = Signal(name="skid_valid")  # a beat waits in the skid register
        spare_data = Signal(width, name="skid_payload", reset_less=True)
        main_data = Signal(width, name="main_payload", reset_less=True)
        m.d.comb += [move.eq(head_valid & ~spare), raddr.eq(Mux(move, rp1, rp)),
                     read.en.eq(1), read.addr.eq(raddr)]
        m.d.sync += [rp.eq(raddr), rp1.eq(Mux(move, rp1 + 1, rp1)),
                     head_valid.eq(Mux(move, ready[1], ready[0]))]
        # an entry written in this cycle is readable from the next one
        self._thermometer(m, ready, self.w.valid, move)
        # ---------------------------------------------------------------- credits
        # beats in flight = the thermometer + the beat accepted in the last cycle (``accepted``,
        # added to the thermometer a cycle late, so no flag's next state sees ``i.valid``)
        credit = [Signal(name=f"valid_{k}") for k in range(self.credits)]
        accepted = Signal(name=f"valid_{self.credits}")
        taken = Signal()
        up, down = accepted & ~taken, taken & ~accepted
        # admit while the top flag stays clear after this cycle's update: the beat accepted
        # now joins the thermometer next cycle without pushing a flag out (in any state)
        m.d.sync += accepted.eq(self.accept)
        m.d.comb += [self.o.valid.eq(main), self.o.payload.eq(main_data),
                     taken.eq(main & self.o.ready)]
        if self.registered:
            # ``admit`` is a register: set while the beats in flight plus one accepted in
            # this cycle whenever ``admit`` is set (taken or not: ``i.valid`` does not reach
            # it) leave a credit free, counting no delivery (``o.ready`` does not reach it
            # either: its next state reads ``admit``, ``accepted`` and three flags). So a
            # beat accepted in the next cycle always has its credit; a pipeline of latency
            # ``credits - 2`` runs at full rate.
            admit = Signal(name="admit_reg", init=1)
            n = self.credits
            m.d.sync += admit.eq(Mux(accepted & admit, ~credit[n - 3],
                                     Mux(accepted | admit, ~credit[n - 2], ~credit[n - 1])))
            m.d.comb += self.admit.eq(admit)
        else:
            top_next = Mux(up, credit[-2], Mux(down, 0, credit[-1]))
            m.d.comb += self.admit.eq(~top_next)
        self._thermometer(m, credit, accepted, taken)
        # The skid registers (as in ``SkidBuffer``; ``i.ready = ~spare``). ``main`` may be
        # set only while credit 0 stays in use: ``keep`` is 0 exactly when the last credit
        # is being freed (one cycle later every delivered beat owns credit 0, whatever
        # state the queue started in; in a reachable state ``keep`` never clears a beat).
        keep = credit[0] & ~(taken & ~credit[1])
        main_next = Signal()
        # data registers with the fewest enable inputs: the skid register samples the RAM
        # while it is empty, the output register loads whenever o moves or is empty
        with m.If(~spare):
            m.d.sync += spare_data.eq(read.data)
        with m.If(~main | self.o.ready):
            m.d.sync += main_data.eq(Mux(spare, spare_data, read.data))
        with m.If(spare):
            with m.If(self.o.ready | ~main):  # the waiting beat moves to the output
                m.d.sync += spare.eq(0)
                m.d.comb += main_next.eq(1)
            with m.Else():
                m.d.comb += main_next.eq(main)
        with m.Elif(move & main & ~self.o.ready):  # output busy: the beat waits
            m.d.sync += spare.eq(1)
            m.d.comb += main_next.eq(1)
        with m.Elif(move):
            m.d.comb += main_next.eq(1)
        with m.Else():
            m.d.comb += main_next.eq(main & ~self.o.ready)
        m.d.sync += main.eq(main_next & keep)
        return m
