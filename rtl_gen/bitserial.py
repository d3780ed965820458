"""Bit-serial mixed-precision MAC array (and its bit-parallel baseline), streaming.

Algorithm: ``golden_models.bitserial`` (which this generator matches bit for bit). An array
of ``rows x cols`` processing elements (PEs) computes one *tile*: ``R`` output rows times
``C`` activation columns over ``K`` weights, ``Y = sum_g S_g * (W - Z_g) . A``. Every group of
``G`` weights is swept once per bit-plane step (``weight_serial``: ``wbits`` steps;
``both_serial``: ``wbits * abits`` plane pairs in descending diagonals; ``parallel``: one
step), ``G / L`` chunks of ``L`` lanes per step, one chunk per cycle. In order:

1. **join** (:meth:`BitSerialArray._join`): every input port lands in a skid buffer
   (registered ``ready``); a beat *fires* when the ``w``, ``x``, ``cmd`` and ``s`` heads are
   all there. The ``cmd`` head is kept for the whole tile and the ``s`` head for the whole
   group (they are taken with the tile's / group's last beat), so no copy of either exists.
2. **plane sums** (:meth:`BitSerialArray._plane_sums`): each PE reduces its ``L`` lanes to a
   partial sum: in ``weight_serial`` a pair of lanes selects one of ``0, a0, a1, a0 + a1``
   (the pair sums are formed once per column and shared by every row), in ``both_serial``
   4-lane popcounts of AND slices, in ``parallel`` ``L`` products; then a tree of two-input
   adders, one registered level each. A zero-point bit ``z_i`` subtracts the column's
   ``sum(a)`` (one tree per column, only with ``zero_point``); a sign plane inverts the sum
   (its ``+1`` enters the accumulator as a carry).
3. **accumulate** (:meth:`BitSerialArray._accumulate`): Horner's rule, ``acc = 2*acc + psum``
   on a new plane, ``acc + psum`` otherwise, ``psum`` on a group's first beat, in parts of at
   most ``CARRY_BITS`` bits: part ``j`` works on a beat ``j`` cycles after part 0, with the
   carry and the shifted-out bit of part ``j - 1`` registered between them.
4. **rescale** (:meth:`BitSerialArray._rescale`): a finished group value is handed off to
   ``P`` shared rescalers that walk the PEs' values (``m`` each), multiply by the group scale
   (kept in a small ring from the group's last beat to its hand-off) and add into the tile
   totals (again in skewed parts); the last group's totals move into the ``y`` register.

The datapath runs free: every stage register loads every cycle and a valid bit travels
beside it. Nothing downstream stalls it; the only stall is the join's, which holds back a
group's last beat while the hand-off or the output could not take it (registered flags).

Interface (layouts: :func:`layouts`)
------------------------------------
``cmd``: In(stream) ``{wbits, wsigned[, abits]}``, one beat per tile, taken with the tile's
    last beat. Run-time precisions are clamped into ``1..max`` (``parallel`` ignores wbits).
``s``: In(stream) ``{scale: R x unsigned(scale_bits), zero: R x wbits_max}`` (fields present
    when the design has them; no port when it has neither), one beat per group, taken with
    the group's last beat. ``zero`` holds two's-complement codes.
``w``: In(stream) per cycle the step's weight bit-plane, ``R x unsigned(L)`` (bit ``l`` of
    row ``r``); in ``parallel`` mode ``R x L x wbits_max``-bit weight codes.
``x``: In(stream) ``{data, last}``, per cycle ``C x L`` activations (``abits`` each) or, in
    ``both_serial``, ``C x unsigned(L)`` bits of the step's activation plane; ``last`` on
    the tile's final beat. ``w`` and ``x`` move together (one beat each per cycle).
``y``: Out(stream) ``R x C x signed(result_bits)``: one beat per tile (a register).
Every ``ready`` is a flip-flop (the skid buffers'); ``y.valid`` and ``y.payload`` are
flip-flops.

Widths: group accumulators ``acc_bits`` and totals ``result_bits`` come from
``golden_models.bitserial.plan`` (bounds over every run-time format and ``k_max``), so
nothing overflows.

Timing
------
Throughput: one ``w``/``x`` beat per cycle, no bubbles between groups or tiles while a group
lasts at least ``m + acc_parts - 1`` cycles (``steps * G / L``; ``plan`` keeps
``m <= G / L - 3``) and a tile at least the latency; a group's last beat waits otherwise.
Cycles per tile: ``K/L * steps``.
Latency (``self.latency``, the tile's last beat accepted to ``y.valid``)::

    1 (skid) + datapath_stages + acc_parts + m + product_stages + total_parts + 1 (into y)

with ``datapath_stages = tree_levels`` (the leaves are the first level) ``+ 2`` with zero
points ``+ 1`` in the serial modes (the sign), ``acc_parts = ceil(acc_bits / CARRY_BITS)``,
``total_parts = ceil(result_bits / CARRY_BITS)``, ``product_stages`` 2 when ``acc_bits > 16``
and there are scales (two DSP halves and their sum), else 1.
Back-pressure: while ``y`` is full, the next tile runs on until its first group's last beat;
two tiles may be finished and waiting (one in ``y``, one in the totals). Reset clears every
tile in flight.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.bitserial import plan

from .bitserial_config import BitserialConfig

#: longest carry chain of an accumulator part (the totals and group accumulators are split)
CARRY_BITS = 8
#: operand width of one fabric multiplier (iCE40 SB_MAC16; ECP5 MULT18X18D holds it too)
DSP_BITS = 16


def layouts(cfg: BitserialConfig) -> dict[str, data.Layout]:
    """Payload layouts of every port (``s`` only when the design has scales or zero points)."""
    p = plan(cfg)
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    cmd = {"wbits": unsigned(cfg.wbits_max.bit_length()), "wsigned": 1}
    if cfg.mode == "both_serial":
        cmd["abits"] = unsigned(cfg.abits.bit_length())
    act = signed(cfg.abits) if cfg.asigned else unsigned(cfg.abits)
    if cfg.mode == "parallel":
        w = data.ArrayLayout(data.ArrayLayout(unsigned(cfg.wbits_max), L), R)
    else:
        w = data.ArrayLayout(unsigned(L), R)
    xdata = (data.ArrayLayout(unsigned(L), C) if cfg.mode == "both_serial"
             else data.ArrayLayout(data.ArrayLayout(act, L), C))
    out = {"cmd": data.StructLayout(cmd), "w": w,
           "x": data.StructLayout({"data": xdata, "last": 1}),
           "y": data.ArrayLayout(data.ArrayLayout(signed(p.result_bits), C), R)}
    group = {}
    if cfg.scale_bits:
        group["scale"] = data.ArrayLayout(unsigned(cfg.scale_bits), R)
    if cfg.zero_point:
        group["zero"] = data.ArrayLayout(unsigned(cfg.wbits_max), R)
    if group:
        out["s"] = data.StructLayout(group)
    return out


def parts(width: int) -> list[tuple[int, int]]:
    """Bit ranges ``[lo, hi)`` of a ``width``-bit accumulator split into carry-chain parts."""
    n = max(1, -(-width // CARRY_BITS))
    size = -(-width // n)
    return [(lo, min(width, lo + size)) for lo in range(0, width, size)]


class Skid(wiring.Component):
    """Two-entry stream register: registered ``i.ready``, registered ``o.valid`` and
    ``o.payload``, no combinational path between the sides. Latency 1, one beat per cycle.
    ``spare`` (the second entry is full) and ``payload_next`` (the next ``o.payload``) let
    the consumer plan a cycle ahead."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                          "spare": Out(1), "payload_next": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        main, spare = Signal(), self.spare
        spare_data = Signal.like(self.o.payload, reset_less=True)
        m.d.comb += [self.i.ready.eq(~spare), self.o.valid.eq(main)]
        # o.payload loads whenever its beat leaves or it holds none (an enable of two
        # inputs); the spare entry loads whenever it is free (its own flip-flop as enable)
        load = ~main | self.o.ready
        m.d.comb += self.payload_next.eq(Mux(load, Mux(spare, spare_data, self.i.payload),
                                             self.o.payload))
        m.d.sync += self.o.payload.eq(self.payload_next)
        with m.If(~spare):
            m.d.sync += spare_data.eq(self.i.payload)
        m.d.sync += [main.eq(spare | self.i.valid | (main & ~self.o.ready)),
                     spare.eq(Mux(spare, ~self.o.ready, self.i.valid & main & ~self.o.ready))]
        return m


class _Pipe:
    """Free-running stages: registers loaded every cycle, a valid bit (reset to 0) beside."""

    def __init__(self, m: Module, valid):
        self.m, self.valid, self.stages = m, Value.cast(valid), 0

    def reg(self, value, name: str) -> Signal:
        value = Value.cast(value)
        register = Signal(value.shape(), name=name, reset_less=True)
        self.m.d.sync += register.eq(value)
        return register

    def stage(self, name: str, values: dict) -> dict:
        self.stages += 1
        valid = Signal(name=f"valid_{name}")
        self.m.d.sync += valid.eq(self.valid)
        self.valid = valid
        return {key: self.reg(value, f"{key}_{name}") for key, value in values.items()}


def _delay(m: Module, value, cycles: int, name: str, *, control: bool = False):
    """``value`` delayed ``cycles`` cycles (``control``: registers reset to 0, else none)."""
    value = Value.cast(value)
    for k in range(cycles):
        register = Signal(value.shape(), name=f"{name}_d{k + 1}", reset_less=not control)
        m.d.sync += register.eq(value)
        value = register
    return value


def _as_signed(value) -> Value:
    """``value`` as a signed value (an unsigned one gains a zero top bit)."""
    value = Value.cast(value)
    return value if value.shape().signed else Cat(value, Const(0, 1)).as_signed()


def _add_carry(a, b, cin, width: int):
    """``a + b + cin`` of two ``width``-bit operands as one carry chain (carry-in ``cin``):
    returns ``(sum, carry_out)``."""
    total = Cat(cin, a[:width]) + Cat(cin, b[:width])
    return total[1:width + 1], total[width + 1]


class BitSerialArray(wiring.Component):
    """The MAC array for one ``BitserialConfig`` (see the module docstring)."""

    def __init__(self, config: BitserialConfig):
        assert isinstance(config, BitserialConfig)
        self.config = cfg = config
        self.plan = p = plan(config)
        serial = cfg.mode != "parallel"
        if cfg.mode == "both_serial":
            leaves = -(-cfg.lanes // 4)
        elif cfg.mode == "weight_serial" and self.pair_select:
            leaves = -(-cfg.lanes // 2)
        else:
            leaves = cfg.lanes
        #: registered levels of the partial-sum tree (the leaves are the first)
        self.tree_levels = 1 + (leaves - 1).bit_length()
        #: tree levels, zero point (two stages), sign (serial modes)
        self.datapath_stages = self.tree_levels + 2 * (serial and cfg.zero_point) + serial
        self.acc_parts = len(parts(p.acc_bits))
        self.total_parts = len(parts(p.result_bits))
        self.product_stages = 2 if (p.acc_bits > DSP_BITS and cfg.scale_bits) else 1
        #: last beat accepted -> y.valid (the formula of the module docstring)
        self.latency = (1 + self.datapath_stages + self.acc_parts + p.entries_per_rescaler
                        + self.product_stages + self.total_parts + 1)
        #: least cycles between two groups' last beats (the hand-off registers are free again)
        self.handoff_spacing = p.entries_per_rescaler + self.acc_parts - 1
        ports = {name: In(stream.Signature(layout)) for name, layout in layouts(config).items()}
        ports["y"] = Out(stream.Signature(layouts(config)["y"]))
        super().__init__(ports)

    @property
    def pair_select(self) -> bool:
        """weight_serial leaves select among ``0, a0, a1, a0 + a1`` per lane pair (the pair
        sums shared by the rows): cheaper than two AND leaves and an adder from two rows on."""
        return self.config.mode == "weight_serial" and self.config.rows >= 2 and self.config.lanes >= 2

    def elaborate(self, platform):
        m = Module()
        beat = self._join(m)
        pipe = _Pipe(m, beat.fire)
        sums = self._plane_sums(m, pipe, beat)
        assert pipe.stages == self.datapath_stages, (pipe.stages, self.datapath_stages)
        groups = self._accumulate(m, pipe, sums)
        self._rescale(m, beat, groups)
        return m

    # ------------------------------------------------------------------------------ 1. join
    def _join(self, m: Module) -> SimpleNamespace:
        """Skid buffers on every port; the sequencer of planes and chunks; ``fire``."""
        cfg, p = self.config, self.plan
        mode, has_s = cfg.mode, "s" in layouts(cfg)
        heads = {}
        for name in ("w", "x") + (("s",) if has_s else ()):
            m.submodules[f"skid_{name}"] = skid = Skid(layouts(cfg)[name])
            wiring.connect(m, wiring.flipped(getattr(self, name)), skid.i)
            heads[name] = skid.o

        def top(value, maximum):  # clamp a run-time precision into 1..maximum, minus one
            return Mux(value == 0, 0, Mux(value > maximum, maximum - 1, value - 1))

        # the command enters its skid buffer clamped: wtop / atop = precision - 1
        command = data.StructLayout({"wtop": range(cfg.wbits_max), "atop": range(cfg.abits),
                                     "wsigned": 1})
        m.submodules.skid_cmd = skid = Skid(command)
        cmd = self.cmd.payload
        m.d.comb += [skid.i.valid.eq(self.cmd.valid), self.cmd.ready.eq(skid.i.ready),
                     skid.i.payload.wtop.eq(top(cmd.wbits, cfg.wbits_max)),
                     skid.i.payload.wsigned.eq(cmd.wsigned)]
        if mode == "both_serial":
            m.d.comb += skid.i.payload.atop.eq(top(cmd.abits, cfg.abits))
        heads["cmd"] = skid.o
        c = skid.o.payload
        wtop, atop = c.wtop, c.atop

        # sequencer state: the beat's position in its group (planes hold the current beat's
        # planes except on a group's first beat, which starts at the top planes)
        group_start = Signal(init=1)
        chunk = Signal(range(p.chunks))
        plane_w = Signal(range(cfg.wbits_max))
        plane_a = Signal(range(cfg.abits))
        i_now = Mux(group_start, wtop, plane_w)
        j_now = Mux(group_start, atop, plane_a)
        last_chunk = chunk == p.chunks - 1
        group_end = Signal()  # a flip-flop, decided a cycle ahead (below)
        final = group_end & heads["x"].payload.last
        shift = (chunk == 0) & ~group_start
        if mode == "both_serial":
            shift &= (i_now == wtop) | (j_now == 0)
        sign_plane = c.wsigned & (i_now == wtop)
        if mode == "both_serial" and cfg.asigned:
            sign_plane ^= j_now == atop
        if cfg.zero_point and mode != "parallel":
            zbits = Cat(*(heads["s"].payload.zero[r].bit_select(i_now, 1) for r in range(cfg.rows)))
        else:
            zbits = Const(0, cfg.rows)

        # the sequencer's next state if this beat fires
        chunk_f, plane_w_f, plane_a_f = Signal.like(chunk), Signal.like(plane_w), Signal.like(plane_a)
        m.d.comb += [chunk_f.eq(Mux(last_chunk, 0, chunk + 1)), plane_w_f.eq(i_now),
                     plane_a_f.eq(j_now)]
        with m.If(last_chunk):
            if mode == "weight_serial":
                m.d.comb += plane_w_f.eq(i_now - 1)
            elif mode == "both_serial":
                with m.If((i_now != 0) & (j_now != atop)):
                    m.d.comb += [plane_w_f.eq(i_now - 1), plane_a_f.eq(j_now + 1)]
                with m.Else():  # next diagonal s - 1 starts at i = min(s - 1, wtop)
                    diagonal = i_now + j_now - 1
                    first_i = Mux(diagonal > wtop, wtop, diagonal)
                    m.d.comb += [plane_w_f.eq(first_i), plane_a_f.eq(diagonal - first_i)]

        # `fire` is a flip-flop: it is decided a cycle ahead from the next state of every
        # skid buffer and of the sequencer (both cases, this beat firing or not), so the
        # enables of the heads and of the datapath are one gate away from it. A group's last
        # beat fires only while its hand-off and the output are sure to be free when it
        # arrives: handoff_spacing cycles since the last group end (`cool`) and at most one
        # finished tile not yet taken from y (`pending`); both are checked conservatively.
        fire, taken = Signal(), Signal()
        m.d.comb += taken.eq(self.y.valid & self.y.ready)
        ready = {"w": fire, "x": fire, "cmd": fire & final}
        if has_s:
            ready["s"] = fire & group_end
        for name, value in ready.items():
            m.d.comb += heads[name].ready.eq(value)
        spacing = self.handoff_spacing
        cool = Signal(range(spacing + 1))
        pending = Signal(range(3))  # tiles whose last beat fired, not yet taken from y
        m.d.sync += [cool.eq(Mux(fire & group_end, spacing - 1 if spacing else 0,
                                 Mux(cool == 0, 0, cool - 1))),
                     pending.eq(pending + (fire & final) - taken)]
        # the next beat may be a group's last if it fires: after this beat fires / holds
        allow_hold = (cool <= 1) & (pending < 2)
        allow_fire = Mux(group_end, spacing <= 1, cool <= 1) & (pending + final < 2)

        def step_end(i, j):
            return {"weight_serial": i == 0, "both_serial": (i == 0) & (j == 0),
                    "parallel": Const(1)}[mode]

        c_next = skid.payload_next
        if p.chunks >= 3:  # the next beat is the last chunk: this one is not a group's first
            end_if_fire = (chunk == p.chunks - 2) & step_end(plane_w, plane_a)
        elif p.chunks == 2:
            end_if_fire = (chunk == 0) & step_end(i_now, j_now)
        else:  # every beat is a last chunk; the next group starts at the next command's planes
            end_if_fire = step_end(Mux(group_end, c_next.wtop, plane_w_f),
                                   Mux(group_end, c_next.atop, plane_a_f))
        if p.chunks >= 2:  # a group's last chunk is never its first beat
            end_if_hold = (chunk == p.chunks - 1) & step_end(plane_w, plane_a)
        else:
            end_if_hold = step_end(Mux(group_start, c_next.wtop, plane_w),
                                   Mux(group_start, c_next.atop, plane_a))
        m.d.sync += group_end.eq(Mux(fire, end_if_fire, end_if_hold))
        sources = {"w": self.w, "x": self.x, "cmd": self.cmd, **({"s": self.s} if has_s else {})}
        after_fire, after_hold = [], []
        for name, head in heads.items():
            skid_ = m.submodules[f"skid_{name}"]
            arriving = skid_.spare | sources[name].valid
            kept = {"w": Const(0), "x": Const(0), "cmd": ~final, "s": ~group_end}[name]
            after_fire.append(arriving | (head.valid & kept))
            after_hold.append(arriving | head.valid)
        m.d.sync += fire.eq(Mux(fire, Cat(*after_fire).all() & ~(end_if_fire & ~allow_fire),
                                Cat(*after_hold).all() & ~(end_if_hold & ~allow_hold)))

        with m.If(fire):
            m.d.sync += [chunk.eq(chunk_f), group_start.eq(group_end), plane_w.eq(plane_w_f),
                         plane_a.eq(plane_a_f)]
        return SimpleNamespace(
            fire=fire, taken=taken, w=heads["w"].payload, x=heads["x"].payload.data,
            s=heads["s"].payload if has_s else None, wsigned=c.wsigned, group_end=group_end,
            flags=dict(first=group_start, shift=shift, end=group_end, final=final,
                       sign=sign_plane, zbit=zbits))

    # ------------------------------------------------------------------------------ 2. plane sums
    def _plane_sums(self, m: Module, pipe: _Pipe, beat) -> dict:
        """Leaves and the registered adder tree, the zero point and the sign: the plane value
        of every PE (inverted on a sign plane; ``neg`` is the missing ``+1``)."""
        cfg = self.config
        R, C, L, mode = cfg.rows, cfg.cols, cfg.lanes, cfg.mode
        serial = mode != "parallel"
        w, x = beat.w, beat.x

        def popcounts(bits):
            return [sum(bits[l] for l in range(k, min(k + 4, L))) for k in range(0, L, 4)]

        leaves = {}
        if self.pair_select:
            # per column and lane pair, a0 + a1 once; each row picks 0, a0, a1 or a0 + a1
            pairs = {(c, k): x[c][k] + x[c][k + 1] for c in range(C) for k in range(0, L - 1, 2)}
            for r in range(R):
                for c in range(C):
                    terms = []
                    for k in range(0, L, 2):
                        b0, a0 = w[r][k], x[c][k]
                        if k + 1 == L:
                            terms.append(Mux(b0, a0, 0))
                            continue
                        b1, a1 = w[r][k + 1], x[c][k + 1]
                        terms.append(Mux(b1, Mux(b0, pairs[c, k], a1), Mux(b0, a0, 0)))
                    leaves[r, c] = terms
        else:
            for r in range(R):
                for c in range(C):
                    if mode == "weight_serial":
                        leaves[r, c] = [Mux(w[r][l], x[c][l], 0) for l in range(L)]
                    elif mode == "both_serial":
                        leaves[r, c] = popcounts(w[r] & x[c])
                    else:
                        z = 0
                        if cfg.zero_point:
                            zero = beat.s.zero[r]
                            z = Mux(beat.wsigned, zero.as_signed(), zero)
                        leaves[r, c] = [(Mux(beat.wsigned, w[r][l].as_signed(), w[r][l]) - z)
                                        * x[c][l] for l in range(L)]
        if serial and cfg.zero_point:  # sum(a) per column, shared by the rows
            for c in range(C):
                if self.pair_select:  # the pair sums again
                    leaves["a", c] = [pairs[c, k] if k + 1 < L else x[c][k] for k in range(0, L, 2)]
                else:
                    leaves["a", c] = ([x[c][l] for l in range(L)] if mode == "weight_serial"
                                      else popcounts(x[c]))

        flags = dict(beat.flags)
        while True:
            values = {f"p{n}_{k}": t for n, (key, terms) in enumerate(leaves.items())
                      for k, t in enumerate(terms)}
            regs = pipe.stage(f"sum{pipe.stages}", {**flags, **values})
            flags = {f: regs[f] for f in flags}
            leaves = {key: [regs[f"p{n}_{k}"] for k in range(len(terms))]
                      for n, (key, terms) in enumerate(leaves.items())}
            if all(len(terms) == 1 for terms in leaves.values()):
                break
            leaves = {key: [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                            for k in range(0, len(terms), 2)] for key, terms in leaves.items()}
        psums = {key: terms[0] for key, terms in leaves.items()}
        pes = [(r, c) for r in range(R) for c in range(C)]
        if serial and cfg.zero_point:
            # t = psum - z_i * sum(a): one stage gates -sum(a), the next adds
            regs = pipe.stage("zgate", {**flags, **{
                f"p{r}_{c}": psums[r, c] for (r, c) in pes}, **{
                f"q{r}_{c}": Mux(flags["zbit"][r], -psums["a", c], 0) for (r, c) in pes}})
            flags = {f: regs[f] for f in flags}
            regs = pipe.stage("zero", {**flags, **{
                f"p{r}_{c}": regs[f"p{r}_{c}"] + regs[f"q{r}_{c}"] for (r, c) in pes}})
            flags = {f: regs[f] for f in flags}
            psums = {(r, c): regs[f"p{r}_{c}"] for (r, c) in pes}
        psums = {key: _as_signed(v) for key, v in psums.items() if key in pes}
        if serial:  # a sign plane inverts the sum (~t = -t - 1; the +1 is the acc's carry-in)
            sign = flags["sign"]
            regs = pipe.stage("sign", {**flags, **{
                f"p{r}_{c}": (psums[r, c].as_unsigned() ^ sign.replicate(len(psums[r, c])))
                for (r, c) in pes}})
            flags = {f: regs[f] for f in flags}
            psums = {(r, c): regs[f"p{r}_{c}"].as_signed() for (r, c) in pes}
            neg = flags["sign"]
        else:
            neg = Const(0)
        return dict(psums=psums, neg=neg, valid=pipe.valid, first=flags["first"],
                    shift=flags["shift"], end=flags["end"], final=flags["final"])

    # ------------------------------------------------------------------------------ 3. accumulate
    def _accumulate(self, m: Module, pipe: _Pipe, sums: dict) -> SimpleNamespace:
        """Horner accumulators in skewed parts. Returns per PE the part registers and the
        hand-off strobes: ``take[j]`` is set in the cycle part ``j`` holds a finished group."""
        p = self.plan
        spans = parts(p.acc_bits)
        n = len(spans)
        ctrl = dict(valid=sums["valid"], first=sums["first"], shift=sums["shift"],
                    end=sums["end"] & sums["valid"], final=sums["final"], neg=sums["neg"])
        # the controls of part j: part 0's, j cycles later
        delayed = [ctrl]
        for j in range(1, n + 1):
            delayed.append({k: _delay(m, v, 1, f"acc_{k}{j}", control=k in ("valid", "end"))
                            for k, v in delayed[-1].items()})
        acc = {}
        for key, psum in sums["psums"].items():
            r, c = key
            width = len(Value.cast(psum))
            regs, carry, sout = [], Const(0), Const(0)
            for j, (lo, hi) in enumerate(spans):
                d = delayed[j]
                # this part's slice of the plane value, j cycles late (only its distinct
                # bits; a part above the value's width gets its sign bit)
                if hi <= width:
                    piece = psum[lo:hi]
                elif lo < width:
                    piece = psum[lo:width].as_signed()
                else:
                    piece = psum[width - 1:width].as_signed()
                piece = _delay(m, piece, j, f"psum_{r}_{c}_{j}")
                addend = Signal(hi - lo, name=f"addend_{r}_{c}_{j}")
                m.d.comb += addend.eq(piece)
                reg = Signal(hi - lo, name=f"acc_{r}_{c}_{j}", reset_less=True)
                base = Mux(d["first"], 0, Mux(d["shift"], Cat(sout, reg[:-1]), reg))
                cin = d["neg"] if j == 0 else carry
                total, cout = _add_carry(Value.cast(base), addend, cin, hi - lo)
                if j + 1 < n:
                    carry = Signal(name=f"acc_carry_{r}_{c}_{j}", reset_less=True)
                    sout_next = Signal(name=f"acc_sout_{r}_{c}_{j}", reset_less=True)
                with m.If(d["valid"]):
                    m.d.sync += reg.eq(total)
                    if j + 1 < n:
                        m.d.sync += [carry.eq(cout), sout_next.eq(reg[-1])]
                if j + 1 < n:
                    sout = sout_next
                regs.append(reg)
            acc[key] = regs
        take = [delayed[j + 1]["end"] for j in range(n)]  # part j holds the group's value
        final = delayed[n]["final"]
        return SimpleNamespace(acc=acc, spans=spans, take=take, final=final)

    # ------------------------------------------------------------------------------ 4. rescale
    def _rescale(self, m: Module, beat, groups) -> None:
        """Hand-off, scale ring, the rescalers' walks, the totals and the ``y`` register."""
        cfg, p = self.config, self.plan
        R, C, S = cfg.rows, cfg.cols, cfg.scale_bits
        mm = p.entries_per_rescaler
        take, n_acc = groups.take[-1], len(groups.spans)

        # group scales wait in a ring from the group's last beat to its hand-off
        if S:
            depth = 1 << (self.latency + 2).bit_length()
            m.submodules.scale_ring = ring = Memory(shape=S * R, depth=depth, init=[])
            ring_w, ring_r = ring.write_port(), ring.read_port(transparent_for=())
            write_at, read_at = Signal(range(depth)), Signal(range(depth))
            m.d.comb += [ring_w.addr.eq(write_at), ring_w.data.eq(beat.s.scale.as_value()),
                         ring_w.en.eq(beat.fire & beat.group_end)]
            with m.If(beat.fire & beat.group_end):
                m.d.sync += write_at.eq(write_at + 1)
            m.d.comb += ring_r.addr.eq(Mux(take, read_at + 1, read_at))
            with m.If(take):
                m.d.sync += read_at.eq(read_at + 1)
            scales = ring_r.data

        # the walk: after a hand-off, mm cycles each send one value of every chain to its
        # rescaler (its index and the tile's-last flag ride along)
        remaining = Signal(range(mm + 1))
        index = Signal(range(max(2, mm)), reset_less=True)
        last = Signal(reset_less=True)
        walking = remaining != 0
        with m.If(take):
            m.d.sync += [remaining.eq(mm), index.eq(0), last.eq(groups.final)]
        with m.Elif(walking):
            m.d.sync += [remaining.eq(remaining - 1), index.eq(index + 1)]

        entries = [(r, c) for r in range(R) for c in range(C)]
        chains = [entries[k:k + mm] for k in range(0, len(entries), mm)]
        spans = parts(p.result_bits)
        nt = len(spans)
        totals = {}
        update_last = None  # part 0 of the last group's last entry is updated this cycle
        for n, chain in enumerate(chains):
            done = [[Signal(hi - lo, name=f"done_{n}_{q}_{j}", reset_less=True)
                     for j, (lo, hi) in enumerate(groups.spans)] for q in range(len(chain))]
            dscale = [Signal(unsigned(S), name=f"dscale_{n}_{q}", reset_less=True)
                      for q in range(len(chain))]
            for j in range(n_acc):
                with m.If(groups.take[j]):
                    m.d.sync += [done[q][j].eq(groups.acc[key][j]) for q, key in enumerate(chain)]
                with m.Elif(walking):
                    m.d.sync += [done[q][j].eq(done[q + 1][j]) for q in range(len(chain) - 1)]
            if S:
                with m.If(take):
                    m.d.sync += [dscale[q].eq(scales[r * S:(r + 1) * S])
                                 for q, (r, c) in enumerate(chain)]
                with m.Elif(walking):
                    m.d.sync += [dscale[q].eq(dscale[q + 1]) for q in range(len(chain) - 1)]
            head = Cat(*done[0]).as_signed()
            rp = _Pipe(m, walking)
            if S and self.product_stages == 2:
                regs = rp.stage(f"mul{n}", dict(lo=head[:DSP_BITS] * dscale[0],
                                                hi=head[DSP_BITS:].as_signed() * dscale[0],
                                                index=index, last=last))
                regs = rp.stage(f"prod{n}", dict(
                    value=Cat(regs["lo"][:DSP_BITS], regs["lo"][DSP_BITS:] + regs["hi"]).as_signed(),
                    index=regs["index"], last=regs["last"]))
            else:
                regs = rp.stage(f"prod{n}", dict(value=head * dscale[0] if S else head,
                                                 index=index, last=last))
            assert rp.stages == self.product_stages
            product = Signal(signed(p.result_bits), name=f"product_{n}")
            m.d.comb += product.eq(regs["value"])
            # skewed totals: part j adds j cycles after part 0 (carries registered per entry)
            valid = [rp.valid]
            idx = [regs["index"]]
            for j in range(1, nt):
                valid.append(_delay(m, valid[-1], 1, f"tot_valid{n}_{j}", control=True))
                idx.append(_delay(m, idx[-1], 1, f"tot_index{n}_{j}"))
            pieces = [_delay(m, product[lo:hi], j, f"tot_add{n}_{j}") for j, (lo, hi) in enumerate(spans)]
            for q, key in enumerate(chain):
                regs_q, carry = [], Const(0)
                for j, (lo, hi) in enumerate(spans):
                    reg = Signal(hi - lo, name=f"total_{key[0]}_{key[1]}_{j}")  # reset: 0
                    total, cout = _add_carry(reg, pieces[j], carry, hi - lo)
                    hit = valid[j] & (idx[j] == q)
                    if j + 1 < nt:
                        carry_reg = Signal(name=f"total_carry_{key[0]}_{key[1]}_{j}", reset_less=True)
                    with m.If(hit):
                        m.d.sync += reg.eq(total)
                        if j + 1 < nt:
                            m.d.sync += carry_reg.eq(cout)
                    if j + 1 < nt:
                        carry = carry_reg
                    regs_q.append(reg)
                totals[key] = regs_q
            if n == 0:
                update_last = rp.valid & regs["last"] & (regs["index"] == len(chain) - 1)

        # the last group's totals move into y (part j a cycle after part j - 1, clearing it)
        ready_copy = Signal()
        copy0 = Signal()
        copying = [copy0]
        for j in range(1, nt):
            reg = Signal(name=f"copy_{j}")
            m.d.sync += reg.eq(copying[-1])
            copying.append(reg)
        busy = Cat(*copying[1:]).any() if nt > 1 else Const(0)
        m.d.comb += copy0.eq(ready_copy & ~self.y.valid & ~busy)
        with m.If(update_last):
            m.d.sync += ready_copy.eq(1)
        with m.Elif(copy0):
            m.d.sync += ready_copy.eq(0)
        for (r, c), regs_q in totals.items():
            out = self.y.payload[r][c]
            for j, (lo, hi) in enumerate(spans):
                with m.If(copying[j]):
                    m.d.sync += [out[lo:hi].eq(regs_q[j]), regs_q[j].eq(0)]
        with m.If(copying[-1]):
            m.d.sync += self.y.valid.eq(1)
        with m.Elif(beat.taken):
            m.d.sync += self.y.valid.eq(0)
