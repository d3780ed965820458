"""Bit-serial mixed-precision MAC array (and its bit-parallel baseline), streaming.

Algorithm: ``golden_models.bitserial`` (which this generator matches bit for bit). An array
of ``rows x cols`` processing elements (PEs) computes one *tile*: ``R`` output rows times
``C`` activation columns over ``K`` weights, ``Y = sum_g S_g * (W - Z_g) . A``. Every group of
``G`` weights is swept once per bit-plane step (``weight_serial``: ``wbits`` steps;
``both_serial``: ``wbits * abits`` plane pairs in descending diagonals; ``parallel``: one
step), ``G / L`` chunks of ``L`` lanes per step, one chunk per cycle. Each PE reduces its
``L`` lanes to a partial sum (AND/select + adder tree, popcount, or ``L`` multipliers) and
accumulates it by Horner's rule (``acc = 2*acc +- psum`` on a new plane, ``acc +- psum``
otherwise), so the PE never shifts by more than one bit. A finished group value is handed
off to ``P`` shared rescalers that walk the PEs' values (``m`` each), multiply by the group
scale and add into the tile totals; the last group's totals leave as one ``y`` beat.

Interface (layouts: :func:`layouts`)
------------------------------------
``cmd``: In(stream) ``{wbits, wsigned[, abits]}``, one beat per tile, held in a register
    (taken whenever that is empty) until the tile's first beat. Run-time precisions are clamped into ``1..max`` (``parallel`` ignores wbits).
``s``: In(stream) ``{scale: R x unsigned(scale_bits), zero: R x wbits_max}`` (fields present
    when the design has them; no port when it has neither), one beat per group, taken with
    the group's first beat. ``zero`` holds two's-complement codes.
``w``: In(stream) per cycle the step's weight bit-plane, ``R x unsigned(L)`` (bit ``l`` of
    row ``r``); in ``parallel`` mode ``R x L x wbits_max``-bit weight codes.
``x``: In(stream) ``{data, last}``, per cycle ``C x L`` activations (``abits`` each) or, in
    ``both_serial``, ``C x unsigned(L)`` bits of the step's activation plane; ``last`` on
    the tile's final beat. ``w`` and ``x`` move together (one beat each per cycle).
``y``: Out(stream) ``R x C x signed(result_bits)``: one beat per tile.

Widths: group accumulators ``acc_bits`` and totals ``result_bits`` come from
``golden_models.bitserial.plan`` (bounds over every run-time format and ``k_max``), so
nothing overflows.

Timing
------
Throughput: one ``w``/``x`` beat per cycle, no bubbles between groups or tiles while
``steps * G / L >= m + 3`` cycles (always when ``G / L >= m + 3``, which ``plan`` arranges
for every ``G / L >= 4``). Cycles per tile: ``K/L * steps``.
Latency: ``self.latency`` cycles from the tile's last beat accepted to ``y.valid``:
``pipeline_stages`` (``tree_levels`` registered levels of the partial sum, the first being
the leaves, the sign stage of the serial modes (two with zero points), accumulate),
hand-off, ``m`` rescale steps and the last add: ``tree_levels + m + 3`` (+1 in the serial
modes, +2 with zero points). The totals registers are
the ``y`` payload; they clear when ``y`` is taken.
Back-pressure: while ``y`` is full, the next tile's first group completes but waits for its
hand-off; the array then stops taking beats. Reset clears every tile in flight.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.bitserial import plan

from .bitserial_config import BitserialConfig


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


class BitSerialArray(wiring.Component):
    """The MAC array for one ``BitserialConfig`` (see the module docstring)."""

    def __init__(self, config: BitserialConfig):
        assert isinstance(config, BitserialConfig)
        self.config = config
        self.plan = plan(config)
        leaves = -(-config.lanes // 4) if config.mode == "both_serial" else config.lanes
        #: registered levels of the partial-sum tree (the leaves are the first)
        self.tree_levels = 1 + (leaves - 1).bit_length()
        #: tree levels, sign (serial modes; two stages with zero points), accumulate
        serial = config.mode != "parallel"
        self.pipeline_stages = self.tree_levels + serial * (1 + config.zero_point) + 1
        #: last beat accepted -> y.valid: the pipeline, hand-off, m rescale steps, last add
        self.latency = self.pipeline_stages + self.plan.entries_per_rescaler + 2
        ports = {name: In(stream.Signature(layout)) for name, layout in layouts(config).items()}
        ports["y"] = Out(stream.Signature(layouts(config)["y"]))
        super().__init__(ports)

    def elaborate(self, platform):
        cfg, p = self.config, self.plan
        R, C, L = cfg.rows, cfg.cols, cfg.lanes
        mode, serial = cfg.mode, cfg.mode != "parallel"
        has_s = "s" in layouts(cfg)
        S = cfg.scale_bits
        m = Module()

        # ---------------------------------------------------------------- sequencer
        in_tile = Signal()
        group_start = Signal(init=1)
        chunk = Signal(range(p.chunks))
        plane_w = Signal(range(cfg.wbits_max))
        plane_a = Signal(range(cfg.abits))
        cur_wtop = Signal(range(cfg.wbits_max), reset_less=True)
        cur_atop = Signal(range(cfg.abits), reset_less=True)
        cur_wsigned = Signal(reset_less=True)
        cur_scale = Signal(unsigned(S * R), reset_less=True)
        cur_zero = Signal(unsigned(cfg.wbits_max * R), reset_less=True)

        def top(value, maximum):  # clamp a run-time precision into 1..maximum, minus one
            return Mux(value == 0, 0, Mux(value > maximum, maximum - 1, value - 1))

        # the next tile's command waits, clamped, in a register (loaded whenever empty)
        cmd, cmd_full = self.cmd.payload, Signal()
        next_wtop, next_atop = Signal.like(cur_wtop), Signal.like(cur_atop)
        next_wsigned = Signal(reset_less=True)
        m.d.comb += self.cmd.ready.eq(~cmd_full)
        with m.If(self.cmd.valid & ~cmd_full):
            m.d.sync += [cmd_full.eq(1), next_wtop.eq(top(cmd.wbits, cfg.wbits_max)),
                         next_wsigned.eq(cmd.wsigned)]
            if mode == "both_serial":
                m.d.sync += next_atop.eq(top(cmd.abits, cfg.abits))
        tile_start = ~in_tile
        wtop, atop = Signal.like(cur_wtop), Signal.like(cur_atop)  # this beat's top planes
        i_now, j_now = Signal.like(plane_w), Signal.like(plane_a)  # this beat's planes
        m.d.comb += wtop.eq(Mux(tile_start, next_wtop, cur_wtop))
        if mode == "both_serial":
            m.d.comb += atop.eq(Mux(tile_start, next_atop, cur_atop))
        wsigned = Mux(tile_start, next_wsigned, cur_wsigned)
        m.d.comb += [i_now.eq(Mux(group_start, wtop, plane_w)),
                     j_now.eq(Mux(group_start, atop, plane_a))]
        s_in = self.s.payload if has_s else None
        scale_now = (Mux(group_start, s_in.scale.as_value(), cur_scale) if S else Const(0, 0))
        zero_now = (Mux(group_start, s_in.zero.as_value(), cur_zero) if cfg.zero_point
                    else Const(0, cfg.wbits_max * R))

        last_chunk = chunk == p.chunks - 1
        last_step = {"weight_serial": i_now == 0, "both_serial": (i_now == 0) & (j_now == 0),
                     "parallel": Const(1)}[mode]
        group_end = last_chunk & last_step
        final = group_end & self.x.payload.last
        shift = (chunk == 0) & ~group_start
        if mode == "both_serial":
            shift &= (i_now == wtop) | (j_now == 0)
        sign_plane = wsigned & (i_now == wtop)
        if mode == "both_serial" and cfg.asigned:
            sign_plane ^= j_now == atop
        zero_rows = [zero_now[r * cfg.wbits_max:(r + 1) * cfg.wbits_max] for r in range(R)]
        zbits = [z.bit_select(i_now, 1) if serial else Const(0) for z in zero_rows]

        # handshake: w, x (and cmd at a tile's start, s at a group's start) move together
        advance = Signal()
        need_cmd, need_s = tile_start, group_start if has_s else Const(0)
        ok = {"w": self.w.valid, "x": self.x.valid, "cmd": cmd_full | ~need_cmd}
        if has_s:
            ok["s"] = self.s.valid | ~need_s
        fire = advance
        for value in ok.values():
            fire = fire & value
        for name in (n for n in ok if n != "cmd"):
            others = advance
            for other, value in ok.items():
                if other != name:
                    others = others & value
            extra = need_s if name == "s" else 1
            m.d.comb += getattr(self, name).ready.eq(others & extra)

        with m.If(fire):
            m.d.sync += [chunk.eq(Mux(last_chunk, 0, chunk + 1)), group_start.eq(group_end),
                         in_tile.eq(~final), plane_w.eq(i_now), plane_a.eq(j_now)]
            with m.If(tile_start):
                m.d.sync += [cur_wtop.eq(wtop), cur_atop.eq(atop), cur_wsigned.eq(wsigned),
                             cmd_full.eq(0)]
            with m.If(group_start):
                m.d.sync += [cur_scale.eq(scale_now), cur_zero.eq(zero_now)]
            with m.If(last_chunk):
                if mode == "weight_serial":
                    m.d.sync += plane_w.eq(i_now - 1)
                elif mode == "both_serial":
                    with m.If((i_now != 0) & (j_now != atop)):
                        m.d.sync += [plane_w.eq(i_now - 1), plane_a.eq(j_now + 1)]
                    with m.Else():  # next diagonal s - 1 starts at i = min(s - 1, wtop)
                        diagonal = i_now + j_now - 1
                        first_i = Mux(diagonal > wtop, wtop, diagonal)
                        m.d.sync += [plane_w.eq(first_i), plane_a.eq(diagonal - first_i)]

        # ---------------------------------------------------------------- pipeline helpers
        def reg(shape, name, **kw):
            return Signal(shape, name=name, reset_less=True, **kw)

        def stage(name, **values):
            """Register ``values`` (and hold them while the array is frozen)."""
            out = {}
            for key, value in values.items():
                value = Value.cast(value)
                out[key] = Signal(value.shape(), name=f"{key}_{name}",
                                  reset_less=key != "valid")
                with m.If(advance):
                    m.d.sync += out[key].eq(value)
            return out

        # the beat itself and its flags; the leaves below are the first registered stage
        a = dict(valid=fire, w=self.w.payload.as_value(), x=self.x.payload.data.as_value(),
                 first=group_start, shift=shift, end=group_end, final=final, ws=wsigned,
                 zero=zero_now, zbit=Cat(*zbits), sign=sign_plane)
        flags = ("valid", "first", "shift", "end", "final", "sign", "zbit")

        # ---------------------------------------------------------------- partial sums
        # Leaves: a select (weight_serial), a popcount of 4-lane AND slices (both_serial) or a
        # product (parallel), straight from the stream payloads; then a tree of two-input
        # adders with a register after every level, so each level is one carry chain (an
        # unregistered tree becomes one carry-save macc). A zero-point bit z_i never touches
        # the leaves: with z_i set the plane's sum is sum(a) - psum, and sum(a) is one extra
        # tree per column (key ("a", c)) shared by every row.
        w_view = data.View(self.w.payload.shape(), a["w"])
        x_view = data.View(self.x.payload.data.shape(), a["x"])

        def popcounts(bits):
            return [sum(bits[l] for l in range(k, min(k + 4, L))) for k in range(0, L, 4)]

        acc_keys = [(r, c) for r in range(R) for c in range(C)]
        leaves = {}
        for r in range(R):
            for c in range(C):
                if mode == "weight_serial":
                    leaves[r, c] = [Mux(w_view[r][l], x_view[c][l], 0) for l in range(L)]
                elif mode == "both_serial":
                    leaves[r, c] = popcounts(w_view[r] & x_view[c])
                else:
                    zero = a["zero"][r * cfg.wbits_max:(r + 1) * cfg.wbits_max]
                    z = Mux(a["ws"], zero.as_signed(), zero) if cfg.zero_point else 0
                    leaves[r, c] = [(Mux(a["ws"], w_view[r][l].as_signed(), w_view[r][l]) - z)
                                    * x_view[c][l] for l in range(L)]
        if serial and cfg.zero_point:
            for c in range(C):
                leaves["a", c] = ([x_view[c][l] for l in range(L)] if mode == "weight_serial"
                                  else popcounts(x_view[c]))
        level, carried = 0, {f: a[f] for f in flags}
        while True:
            regs = stage(f"sum{level}", **carried,
                         **{f"p{r}_{c}_{k}": t for (r, c), terms in leaves.items()
                            for k, t in enumerate(terms)})
            carried = {f: regs[f] for f in flags}
            leaves = {key: [regs[f"p{key[0]}_{key[1]}_{k}"] for k in range(len(terms))]
                      for key, terms in leaves.items()}
            level += 1
            if all(len(terms) == 1 for terms in leaves.values()):
                break
            leaves = {key: [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                            for k in range(0, len(terms), 2)] for key, terms in leaves.items()}
        psums = {key: terms[0] for key, terms in leaves.items()}
        if serial and cfg.zero_point:
            # plane value = sign ? -t : t with t = psum - z * sum(a): one stage negates,
            # the next adds (the accumulate stage keeps a single adder)
            sign, zbit = carried["sign"], carried["zbit"]
            regs = stage("signed", **carried, **{
                f"{part}{r}_{c}": value for (r, c) in acc_keys for part, value in (
                    ("p", Mux(sign, -psums[r, c], psums[r, c])),
                    ("q", Mux(zbit[r], Mux(sign, psums["a", c], -psums["a", c]), 0)))})
            carried = {f: regs[f] for f in flags}
            regs = stage("zeroed", **carried, **{f"p{r}_{c}": regs[f"p{r}_{c}"] + regs[f"q{r}_{c}"]
                                                 for (r, c) in acc_keys})
            carried = {f: regs[f] for f in flags}
            psums = {(r, c): regs[f"p{r}_{c}"] for (r, c) in acc_keys}
        elif serial:  # the plane's sign as its own stage: the accumulate stage keeps one adder
            regs = stage("signed", **carried, **{f"p{r}_{c}": Mux(carried["sign"], -psums[r, c],
                                                                  psums[r, c])
                                                 for (r, c) in acc_keys})
            carried = {f: regs[f] for f in flags}
            psums = {(r, c): regs[f"p{r}_{c}"] for (r, c) in acc_keys}
        valid_b, first_b, shift_b = carried["valid"], carried["first"], carried["shift"]
        end_b, final_b = carried["end"], carried["final"]

        # ---------------------------------------------------------------- Horner accumulate
        acc = {key: reg(signed(p.acc_bits), f"acc_{key[0]}_{key[1]}") for key in acc_keys}
        handoff = Signal()
        final_c = reg(1, "final_c")
        with m.If(advance):
            m.d.sync += handoff.eq(valid_b & end_b)
            with m.If(valid_b & end_b):
                m.d.sync += final_c.eq(final_b)
            with m.If(valid_b):
                for key, acc_value in acc.items():
                    base = Mux(first_b, 0, Mux(shift_b, acc_value << 1, acc_value))
                    m.d.sync += acc_value.eq(base + psums[key])
        assert level == self.tree_levels, (level, self.tree_levels)

        # Group scales wait in a ring buffer from the group's last beat to its hand-off: at
        # most one entry per pipeline stage is outstanding, so the ring never overflows.
        if S:
            depth = 1 << (self.pipeline_stages + 1).bit_length()
            m.submodules.scale_ring = ring = Memory(shape=S * R, depth=depth, init=[])
            ring_w, ring_r = ring.write_port(), ring.read_port(transparent_for=())
            write_at, read_at = Signal(range(depth)), Signal(range(depth))
            m.d.comb += [ring_w.addr.eq(write_at), ring_w.data.eq(scale_now),
                         ring_w.en.eq(fire & group_end)]
            with m.If(fire & group_end):
                m.d.sync += write_at.eq(write_at + 1)
            scale_c = ring_r.data
        else:
            scale_c = Const(0, 0)

        # ---------------------------------------------------------------- rescalers
        mm = p.entries_per_rescaler
        entries = [(r, c) for r in range(R) for c in range(C)]
        chains = [entries[k:k + mm] for k in range(0, len(entries), mm)]
        step = Signal(range(mm + 2))
        last_group = reg(1, "last_group")
        # "a hand-off may happen now", registered from the next state, so that advance (and
        # with it every enable of the array) is one gate away from flip-flops. The totals are
        # the y payload: no walk starts while y holds a result.
        may_take = Signal(init=1)
        m.d.comb += advance.eq(~handoff | may_take)
        take = handoff & may_take
        walking = (step >= 1) & (step <= mm)
        taken = self.y.valid & self.y.ready
        step_next, last_next, y_valid_next = Signal.like(step), Signal(), Signal()
        m.d.comb += [
            step_next.eq(Mux(take, 1, Mux((step == 0) | (step == mm + 1), 0, step + 1))),
            last_next.eq(Mux(take, final_c, last_group)),
            y_valid_next.eq(((step == mm + 1) & last_group) | (self.y.valid & ~taken)),
        ]
        m.d.sync += [step.eq(step_next), last_group.eq(last_next), self.y.valid.eq(y_valid_next),
                     may_take.eq(((step_next == 0) & ~y_valid_next)
                                 | ((step_next == mm + 1) & ~last_next))]
        if S:  # address the entry the next hand-off takes (the read is registered)
            m.d.comb += ring_r.addr.eq(Mux(take, read_at + 1, read_at))
            with m.If(take):
                m.d.sync += read_at.eq(read_at + 1)

        for n, chain in enumerate(chains):
            done = [reg(signed(p.acc_bits), f"done_{n}_{q}") for q in range(len(chain))]
            dscale = [reg(unsigned(S), f"dscale_{n}_{q}") for q in range(len(chain))]
            tot = [Signal(signed(p.result_bits), name=f"total_{n}_{q}") for q in range(len(chain))]
            product = reg(signed(p.acc_bits + S + 1), f"product_{n}")
            product_valid = Signal(name=f"product_valid_{n}")
            with m.If(take):
                for q, (r, c) in enumerate(chain):
                    m.d.sync += done[q].eq(acc[r, c])
                    if S:
                        m.d.sync += dscale[q].eq(scale_c[r * S:(r + 1) * S])
            with m.If(walking):
                m.d.sync += [done[q].eq(done[q + 1]) for q in range(len(chain) - 1)]
                m.d.sync += [dscale[q].eq(dscale[q + 1]) for q in range(len(chain) - 1)]
                m.d.sync += product.eq(done[0] * dscale[0] if S else done[0])
            m.d.sync += product_valid.eq(walking & (step <= len(chain)))
            with m.If(taken):
                m.d.sync += [t.eq(0) for t in tot]
            with m.Elif(product_valid):  # rotate; the head's updated total enters at the tail
                m.d.sync += [tot[q].eq(tot[q + 1]) for q in range(len(chain) - 1)]
                m.d.sync += tot[-1].eq(tot[0] + product)
            for q, (r, c) in enumerate(chain):
                m.d.comb += self.y.payload[r][c].eq(tot[q])
        return m
