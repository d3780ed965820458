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
``cmd``: In(stream) ``{wbits, wsigned[, abits]}``, one beat per tile, taken with the tile's
    first beat. Run-time precisions are clamped into ``1..max`` (``parallel`` ignores wbits).
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
``G / L >= m + 2`` cycles (always, when ``plan.rescalers`` is as planned and
``wbits * G / L >= m + 2``). Cycles per tile: ``K/L * steps``.
Latency: ``self.latency = m + 6`` cycles from the tile's last beat accepted to ``y.valid``
(input register, partial sum, accumulate, hand-off, ``m`` rescale steps, one add, copy).
Back-pressure: while ``y`` is full, the next tile's first group completes but waits for its
hand-off; the array then stops taking beats. Reset clears every tile in flight.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden_models.bitserial import plan

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


def tree_sum(terms):
    """Balanced adder tree (each level widens by one bit)."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
    return terms[0]


class BitSerialArray(wiring.Component):
    """The MAC array for one ``BitserialConfig`` (see the module docstring)."""

    def __init__(self, config: BitserialConfig):
        assert isinstance(config, BitserialConfig)
        self.config = config
        self.plan = plan(config)
        self.latency = self.plan.latency
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

        cmd = self.cmd.payload
        tile_start = ~in_tile
        wtop, atop = Signal.like(cur_wtop), Signal.like(cur_atop)  # this beat's top planes
        i_now, j_now = Signal.like(plane_w), Signal.like(plane_a)  # this beat's planes
        m.d.comb += wtop.eq(Mux(tile_start, top(cmd.wbits, cfg.wbits_max), cur_wtop))
        if mode == "both_serial":
            m.d.comb += atop.eq(Mux(tile_start, top(cmd.abits, cfg.abits), cur_atop))
        wsigned = Mux(tile_start, cmd.wsigned, cur_wsigned)
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
        ok = {"w": self.w.valid, "x": self.x.valid, "cmd": self.cmd.valid | ~need_cmd}
        if has_s:
            ok["s"] = self.s.valid | ~need_s
        fire = advance
        for value in ok.values():
            fire = fire & value
        for name in ok:
            others = advance
            for other, value in ok.items():
                if other != name:
                    others = others & value
            extra = {"cmd": need_cmd, "s": need_s}.get(name, 1)
            m.d.comb += getattr(self, name).ready.eq(others & extra)

        with m.If(fire):
            m.d.sync += [chunk.eq(Mux(last_chunk, 0, chunk + 1)), group_start.eq(group_end),
                         in_tile.eq(~final), plane_w.eq(i_now), plane_a.eq(j_now)]
            with m.If(tile_start):
                m.d.sync += [cur_wtop.eq(wtop), cur_atop.eq(atop), cur_wsigned.eq(wsigned)]
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

        # ---------------------------------------------------------------- stage A: operands
        def reg(shape, name, **kw):
            return Signal(shape, name=name, reset_less=True, **kw)

        valid_a, valid_b, handoff = Signal(), Signal(), Signal()
        w_a = reg(self.w.payload.shape(), "w_a")
        x_a = reg(self.x.payload.data.shape(), "x_a")
        first_a, shift_a, end_a, final_a, ws_a = (reg(1, n) for n in
                                                  ("first_a", "shift_a", "end_a", "final_a", "ws_a"))
        neg_a = reg(R, "neg_a")
        zbit_a = reg(R, "zbit_a")
        zero_a = reg(unsigned(cfg.wbits_max * R), "zero_a")
        scale_a = reg(unsigned(S * R), "scale_a")
        with m.If(advance):
            m.d.sync += valid_a.eq(fire)
            m.d.sync += [w_a.eq(self.w.payload), x_a.eq(self.x.payload.data),
                         first_a.eq(group_start), shift_a.eq(shift), end_a.eq(group_end),
                         final_a.eq(final), ws_a.eq(wsigned), zero_a.eq(zero_now),
                         scale_a.eq(scale_now)]
            for r in range(R):
                m.d.sync += [zbit_a[r].eq(zbits[r]), neg_a[r].eq(sign_plane ^ zbits[r])]

        # ---------------------------------------------------------------- stage B: partial sums
        w_view = data.View(self.w.payload.shape(), w_a)
        x_view = data.View(self.x.payload.data.shape(), x_a)
        psums = {}
        for r in range(R):
            for c in range(C):
                if mode == "weight_serial":
                    bits = w_view[r] ^ zbit_a[r].replicate(L)
                    psum = tree_sum(Mux(bits[l], x_view[c][l], 0) for l in range(L))
                elif mode == "both_serial":
                    bits = (w_view[r] ^ zbit_a[r].replicate(L)) & x_view[c]
                    psum = tree_sum(bits[l] for l in range(L))
                else:
                    zero = zero_a[r * cfg.wbits_max:(r + 1) * cfg.wbits_max]
                    z = Mux(ws_a, zero.as_signed(), zero) if cfg.zero_point else 0
                    psum = tree_sum((Mux(ws_a, w_view[r][l].as_signed(), w_view[r][l]) - z)
                                    * x_view[c][l] for l in range(L))
                psums[r, c] = reg(psum.shape(), f"psum_{r}_{c}")
                with m.If(advance):
                    m.d.sync += psums[r, c].eq(psum)
        first_b, shift_b, end_b, final_b = (reg(1, n) for n in ("first_b", "shift_b", "end_b", "final_b"))
        neg_b = reg(R, "neg_b")
        scale_b = reg(unsigned(S * R), "scale_b")
        with m.If(advance):
            m.d.sync += [valid_b.eq(valid_a), first_b.eq(first_a), shift_b.eq(shift_a),
                         end_b.eq(end_a), final_b.eq(final_a), neg_b.eq(neg_a), scale_b.eq(scale_a)]

        # ---------------------------------------------------------------- stage C: Horner accumulate
        acc = {key: reg(signed(p.acc_bits), f"acc_{key[0]}_{key[1]}") for key in psums}
        final_c = reg(1, "final_c")
        scale_c = reg(unsigned(S * R), "scale_c")
        with m.If(advance):
            m.d.sync += handoff.eq(valid_b & end_b)
            with m.If(valid_b & end_b):
                m.d.sync += [final_c.eq(final_b), scale_c.eq(scale_b)]
            with m.If(valid_b):
                for (r, c), a in acc.items():
                    base = Mux(first_b, 0, Mux(shift_b, a << 1, a))
                    term = Mux(neg_b[r], -psums[r, c], psums[r, c]) if serial else psums[r, c]
                    m.d.sync += a.eq(base + term)

        # ---------------------------------------------------------------- rescalers
        mm = p.entries_per_rescaler
        entries = [(r, c) for r in range(R) for c in range(C)]
        chains = [entries[k:k + mm] for k in range(0, len(entries), mm)]
        step = Signal(range(mm + 2))
        out_pending, last_group = Signal(), reg(1, "last_group")
        y_free = ~self.y.valid | self.y.ready
        handoff_ok = (((step == 0) & (~out_pending | y_free))
                      | ((step == mm + 1) & ~last_group))
        m.d.comb += advance.eq(~handoff | handoff_ok)
        take = handoff & handoff_ok
        walking = (step >= 1) & (step <= mm)
        with m.If(take):
            m.d.sync += [step.eq(1), last_group.eq(final_c)]
        with m.Elif(step != 0):
            m.d.sync += step.eq(Mux(step == mm + 1, 0, step + 1))
        with m.If((step == mm + 1) & last_group):
            m.d.sync += out_pending.eq(1)

        copy = out_pending & y_free
        totals = {}
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
            with m.If(copy):
                m.d.sync += [t.eq(0) for t in tot]
            with m.Elif(product_valid):  # rotate; the head's updated total enters at the tail
                m.d.sync += [tot[q].eq(tot[q + 1]) for q in range(len(chain) - 1)]
                m.d.sync += tot[-1].eq(tot[0] + product)
            for q, (r, c) in enumerate(chain):
                totals[r, c] = tot[q]

        with m.If(copy):
            m.d.sync += [out_pending.eq(0), self.y.valid.eq(1)]
            m.d.sync += [self.y.payload[r][c].eq(totals[r, c]) for r, c in entries]
        with m.Elif(self.y.ready):
            m.d.sync += self.y.valid.eq(0)
        return m
