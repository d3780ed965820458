"""The rescalers of ``BitSerialArray`` (step 4 of ``rtl_gen.bitserial``'s algorithm).

A finished group value is handed off to ``P`` shared rescalers that walk the PEs' values
(``m`` each), multiply by the group scale (kept in a small ring from the group's last beat to
its hand-off; two DSP halves and a registered sum when the value is wider than ``DSP_BITS``)
and add into the tile totals, split into skewed parts of at most ``CARRY_BITS`` bits; the
last group's totals move into the ``y`` register.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from .bitserial_datapath import DSP_BITS, _add_carry, _delay, _stage, parts
from .pipeline import FreePipeline

__all__ = ["rescale"]


def rescale(array, m: Module, beat, groups) -> None:
    """Hand-off, scale ring, the rescalers' walks, the totals and the ``y`` register."""
    cfg, p = array.config, array.plan
    R, C, S = cfg.rows, cfg.cols, cfg.scale_bits
    mm = p.entries_per_rescaler
    take, n_acc = groups.take[-1], len(groups.spans)

    # group scales wait in a ring from the group's last beat to its hand-off
    if S:
        depth = 1 << (array.latency + 2).bit_length()
        m.submodules.scale_ring = ring = Memory(shape=S * R, depth=depth, init=[])
        ring_w, ring_r = ring.write_port(), ring.read_port(transparent_for=())
        write_at, read_at = Signal(range(depth)), Signal(range(depth))
        m.d.comb += [ring_w.addr.eq(write_at), ring_w.data.eq(beat.s.scale.as_value()),
                     ring_w.en.eq(beat.fire & beat.group_end)]
        with m.If(beat.fire & beat.group_end):
            m.d.sync += write_at.eq(write_at + 1)
        read_next = Signal(range(depth), init=1)  # read_at + 1, kept beside it (no adder
        m.d.comb += ring_r.addr.eq(Mux(take, read_next, read_at))  # before the address)
        with m.If(take):
            m.d.sync += [read_at.eq(read_next), read_next.eq(read_next + 1)]
        scales = ring_r.data

    # the walk: after a hand-off, mm cycles each send one value of every chain to its
    # rescaler (its index and the tile's-last flag ride along)
    remaining = Signal(range(mm + 1))
    index = Signal(range(max(2, mm)), reset_less=True)
    last = Signal(reset_less=True)
    walking = Signal()  # remaining != 0, a flip-flop of its own (it gates every chain)
    m.d.sync += walking.eq(take | (walking & (remaining != 1)))
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
        rp = FreePipeline(m, walking)
        if S and array.product_stages == 2:
            regs = _stage(rp, f"mul{n}", dict(lo=head[:DSP_BITS] * dscale[0],
                                            hi=head[DSP_BITS:].as_signed() * dscale[0],
                                            index=index, last=last))
            regs = _stage(rp, f"prod{n}", dict(
                value=Cat(regs["lo"][:DSP_BITS], regs["lo"][DSP_BITS:] + regs["hi"]).as_signed(),
                index=regs["index"], last=regs["last"]))
        else:
            regs = _stage(rp, f"prod{n}", dict(value=head * dscale[0] if S else head,
                                             index=index, last=last))
        assert rp.stages == array.product_stages
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
    # `copy0` is a flip-flop decided a cycle ahead (a copy is due, y is free and no copy is
    # under way in the next cycle), so the wide enables of totals and y hang off a register
    ready_copy = Signal()
    copy0 = Signal()
    copying = [copy0]
    for j in range(1, nt):
        reg = Signal(name=f"copy_{j}")
        m.d.sync += reg.eq(copying[-1])
        copying.append(reg)
    ready_next = update_last | (ready_copy & ~copy0)
    y_valid_next = copying[-1] | (array.y.valid & ~beat.taken)
    busy_next = Cat(*copying[:-1]).any() if nt > 1 else Const(0)
    m.d.sync += [ready_copy.eq(ready_next), copy0.eq(ready_next & ~y_valid_next & ~busy_next)]
    for (r, c), regs_q in totals.items():
        out = array.y.payload[r][c]
        for j, (lo, hi) in enumerate(spans):
            with m.If(copying[j]):
                m.d.sync += [out[lo:hi].eq(regs_q[j]), regs_q[j].eq(0)]
    with m.If(copying[-1]):
        m.d.sync += array.y.valid.eq(1)
    with m.Elif(beat.taken):
        m.d.sync += array.y.valid.eq(0)
