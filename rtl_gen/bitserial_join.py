"""The join of ``BitSerialArray`` (step 1 of ``rtl_gen.bitserial``'s algorithm).

Every input port lands in a one-entry *head* register (:func:`_head`) whose ``ready`` is a
flip-flop decided a cycle ahead: ``fire`` (the beat is consumed) is itself a flip-flop known
a cycle early, so ``ready(t+1) = ~valid(t+1) | consumed(t+1)`` needs no second (skid) entry
to keep one beat per cycle, and a head's load enable is ``i.valid & ready`` (two flip-flops,
one gate). The sequencer walks the chunks and bit planes of a group; ``fire`` is decided a
cycle ahead from the next state of every head and of the sequencer. The ``cmd`` head is kept
for the tile and the ``s`` head for the group.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data


__all__ = ["join"]


def _head(m: Module, port, name: str, shape, payload=None, *, reset: bool = True):
    """A one-entry head register on the stream ``port`` (``payload``: the value loaded,
    ``port.payload`` unless given). Its ``ready`` (``<name>_ready``, reset to 1) is a
    flip-flop the caller drives a cycle ahead (``m.d.sync += head.ready.eq(...)``); the head
    loads while ``port.valid & ready``. Returns ``payload``, ``valid``, ``ready``,
    ``accepted`` and ``next_payload`` (what the register holds in the next cycle)."""
    reg = Signal(shape, name=f"{name}_head", reset_less=not reset)
    valid = Signal(name=f"{name}_head_valid")
    ready = Signal(name=f"{name}_ready", init=1)
    accepted = port.valid & ready
    loaded = port.payload if payload is None else payload
    m.d.comb += port.ready.eq(ready)
    with m.If(accepted):
        m.d.sync += reg.eq(loaded)
    nxt = Signal(shape, name=f"{name}_head_next")
    m.d.comb += nxt.eq(Mux(accepted, Value.cast(loaded), Value.cast(reg)))
    return SimpleNamespace(payload=reg, valid=valid, ready=ready, accepted=accepted,
                           next_payload=nxt)


def join(array, m: Module) -> SimpleNamespace:
    """Skid buffers on every port of ``array`` (a ``BitSerialArray``); the sequencer of
    planes and chunks; ``fire``. Returns the heads' payloads, ``fire`` and the beat's flags."""
    cfg, p = array.config, array.plan
    mode, has_s = cfg.mode, "s" in array.signature.members
    heads = {}
    for name in ("w", "x") + (("s",) if has_s else ()):
        port = getattr(array, name)
        heads[name] = _head(m, port, name, port.payload.shape(), reset=name == "s")

    def top(value, maximum):  # clamp a run-time precision into 1..maximum, minus one
        return Mux(value == 0, 0, Mux(value > maximum, maximum - 1, value - 1))

    # the command enters its head clamped: wtop / atop = precision - 1
    command = data.StructLayout({"wtop": range(cfg.wbits_max), "atop": range(cfg.abits),
                                 "wsigned": 1})
    cmd = array.cmd.payload
    clamped = Signal(command, name="cmd_clamped")
    m.d.comb += [clamped.wtop.eq(top(cmd.wbits, cfg.wbits_max)), clamped.wsigned.eq(cmd.wsigned)]
    if mode == "both_serial":
        m.d.comb += clamped.atop.eq(top(cmd.abits, cfg.abits))
    heads["cmd"] = _head(m, array.cmd, "cmd", command, clamped)
    c = heads["cmd"].payload
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
    final = Signal()  # group_end & the x head's last: a flip-flop as well (the cmd enable)
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
    # head and of the sequencer (both cases, this beat firing or not), and so is every
    # head's `ready` (from `fire`'s next value). A group's last
    # beat fires only while its hand-off and the output are sure to be free when it
    # arrives: handoff_spacing cycles since the last group end, tile_spacing since a tile's
    # last (`cool`), and at most one
    # finished tile not yet taken from y (`pending`); both are checked conservatively.
    fire, taken = Signal(), Signal()
    m.d.comb += taken.eq(array.y.valid & array.y.ready)
    spacing, tile_spacing = array.handoff_spacing, array.tile_spacing
    cool = Signal(range(tile_spacing + 1))
    pending = Signal(range(3))  # tiles whose last beat fired, not yet taken from y
    m.d.sync += [cool.eq(Mux(fire & group_end, Mux(final, max(tile_spacing - 1, 0),
                                                   max(spacing - 1, 0)),
                             Mux(cool == 0, 0, cool - 1))),
                 pending.eq(pending + (fire & final) - taken)]
    # the next beat may be a group's last if it fires: after this beat fires / holds
    allow_hold = (cool <= 1) & (pending < 2)
    allow_fire = Mux(group_end, Mux(final, tile_spacing <= 1, spacing <= 1),
                     cool <= 1) & (pending + final < 2)

    def step_end(i, j):
        return {"weight_serial": i == 0, "both_serial": (i == 0) & (j == 0),
                "parallel": Const(1)}[mode]

    c_next = heads["cmd"].next_payload
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
    end_next = Mux(fire, end_if_fire, end_if_hold)
    final_next = end_next & heads["x"].next_payload.last
    m.d.sync += [group_end.eq(end_next), final.eq(final_next)]
    # a head is consumed by a firing beat (cmd: the tile's last, s: the group's last)
    taken_by = {"w": Const(1), "x": Const(1), "cmd": final, "s": group_end}
    taken_next = {"w": Const(1), "x": Const(1), "cmd": final_next, "s": end_next}
    after_fire, after_hold = {}, {}
    for name, head in heads.items():
        after_fire[name] = head.accepted | (head.valid & ~taken_by[name])
        after_hold[name] = head.accepted | head.valid
        m.d.sync += head.valid.eq(Mux(fire, after_fire[name], after_hold[name]))
    fire_next = Mux(fire, Cat(*after_fire.values()).all() & ~(end_if_fire & ~allow_fire),
                    Cat(*after_hold.values()).all() & ~(end_if_hold & ~allow_hold))
    m.d.sync += fire.eq(fire_next)
    for name, head in heads.items():  # ready: empty, or consumed, in the next cycle
        valid_next = Mux(fire, after_fire[name], after_hold[name])
        consumed_next = fire_next & taken_next[name]
        m.d.sync += head.ready.eq(~valid_next | consumed_next)

    with m.If(fire):
        m.d.sync += [chunk.eq(chunk_f), group_start.eq(group_end), plane_w.eq(plane_w_f),
                     plane_a.eq(plane_a_f)]
    return SimpleNamespace(
        fire=fire, taken=taken, w=heads["w"].payload, x=heads["x"].payload.data,
        s=heads["s"].payload if has_s else None, wsigned=c.wsigned, group_end=group_end,
        flags=dict(first=group_start, shift=shift, end=group_end, final=final,
                   sign=sign_plane, zbit=zbits))
