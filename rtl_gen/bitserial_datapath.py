"""The datapath of ``BitSerialArray`` (steps 2 and 3 of ``rtl_gen.bitserial``'s algorithm).

``plane_sums``: the leaves (pair selects, AND + popcount slices or products) and a tree of
two-input adders, one registered level each, then the zero point and the sign, every PE's
plane value on ``pipeline.FreePipeline`` stages. ``accumulate``: Horner accumulators split
into parts of at most ``CARRY_BITS`` bits (``parts``), part ``j`` working ``j`` cycles after
part 0 with the carry and the shifted-out bit of part ``j - 1`` registered between them.
Both run free (every register loads every cycle, a valid bit beside).
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

from .pipeline import FreePipeline

__all__ = ["CARRY_BITS", "DSP_BITS", "parts", "plane_sums", "accumulate"]

#: longest carry chain of an accumulator part (measured: 12 beats 8 on the UP5K, BENCHMARKS.md)
CARRY_BITS = 12
#: operand width of one fabric multiplier (iCE40 SB_MAC16; ECP5 MULT18X18D holds it too)
DSP_BITS = 16


def parts(width: int) -> list[tuple[int, int]]:
    """Bit ranges ``[lo, hi)`` of a ``width``-bit accumulator split into carry-chain parts."""
    n = max(1, -(-width // CARRY_BITS))
    size = -(-width // n)
    return [(lo, min(width, lo + size)) for lo in range(0, width, size)]



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


def _stage(pipe: FreePipeline, name: str, values: dict) -> dict:
    """``pipe.stage`` over a dict of values (keys need not be known in advance)."""
    return vars(pipe.stage(name, **values))


# ------------------------------------------------------------------------------ 2. plane sums
def plane_sums(array, m: Module, pipe: FreePipeline, beat) -> dict:
    """Leaves and the registered adder tree, the zero point and the sign: the plane value
    of every PE (inverted on a sign plane; ``neg`` is the missing ``+1``)."""
    cfg = array.config
    R, C, L, mode = cfg.rows, cfg.cols, cfg.lanes, cfg.mode
    serial = mode != "parallel"
    w, x = beat.w, beat.x

    def popcounts(bits):
        return [sum(bits[l] for l in range(k, min(k + 4, L))) for k in range(0, L, 4)]

    leaves = {}
    if array.pair_select:
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
            if array.pair_select:  # the pair sums again
                leaves["a", c] = [pairs[c, k] if k + 1 < L else x[c][k] for k in range(0, L, 2)]
            else:
                leaves["a", c] = ([x[c][l] for l in range(L)] if mode == "weight_serial"
                                  else popcounts(x[c]))

    flags = dict(beat.flags)
    while True:
        values = {f"p{n}_{k}": t for n, (key, terms) in enumerate(leaves.items())
                  for k, t in enumerate(terms)}
        regs = _stage(pipe, f"sum{pipe.stages}", {**flags, **values})
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
        regs = _stage(pipe, "zgate", {**flags, **{
            f"p{r}_{c}": psums[r, c] for (r, c) in pes}, **{
            f"q{r}_{c}": Mux(flags["zbit"][r], -psums["a", c], 0) for (r, c) in pes}})
        flags = {f: regs[f] for f in flags}
        regs = _stage(pipe, "zero", {**flags, **{
            f"p{r}_{c}": regs[f"p{r}_{c}"] + regs[f"q{r}_{c}"] for (r, c) in pes}})
        flags = {f: regs[f] for f in flags}
        psums = {(r, c): regs[f"p{r}_{c}"] for (r, c) in pes}
    psums = {key: _as_signed(v) for key, v in psums.items() if key in pes}
    if serial:  # a sign plane inverts the sum (~t = -t - 1; the +1 is the acc's carry-in)
        sign = flags["sign"]
        regs = _stage(pipe, "sign", {**flags, **{
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
def accumulate(array, m: Module, pipe: FreePipeline, sums: dict) -> SimpleNamespace:
    """Horner accumulators in skewed parts. Returns per PE the part registers and the
    hand-off strobes: ``take[j]`` is set in the cycle part ``j`` holds a finished group."""
    p = array.plan
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
