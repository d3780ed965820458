"""The formal invariant of the Hadamard rotation unit (``HadamardUnit.invariant``).

``invariant(unit, internals, in_flight)`` is the relation a stream proof
(``testbenches.formal.prove_stream_protocol``'s ``invariant``) asserts, and so proves, beside
the stream rules; k-induction needs it because a stall can freeze an unreachable state.
``internals.signals(name)`` finds the unit's registers by the names ``rtl_gen.hadamard``
gives them. The beats in flight are those of the input register, the rounding stages, the
skid buffer and each butterfly stage:

* a memory stage holds ``min(pos, D)`` inputs of its block (stored, or read back into a
  sum), ``D - ptr`` differences still to read out, and one beat per output register of
  its read, RAM and adder stages; its read-out runs only in a first half, ahead of the next
  block (``pos <= ptr < D``), and ``at_end`` is ``pos == 2D - 1``;
* a pair stage holds ``min(pos, D)`` inputs, a pair in flight (pair or sum register) stands
  for its sum and its difference, the block's last pair for the block's ``D`` differences,
  the read-out ``D - ptr``, the output register one; and the pairs, the block ends and the
  read-out keep the order of the block schedule (the conditions below). These are stated
  for single-chunk adders (``A = 1``: stage widths up to ``CHUNK`` bits), the proof's
  narrow variant; a wider pair stage raises ``ValueError``.
"""
from __future__ import annotations

from amaranth.hdl import Mux


def invariant(unit, internals, in_flight):
    """The invariant of ``unit`` (a ``HadamardUnit``: its ``spans``, ``memory`` and
    ``adder_stages`` per stage): see the module docstring."""
    def one(name):
        (sig,) = internals.signals(name)
        return sig

    count = one("valid_in") + one("main_valid") + one("skid_valid")
    count += sum(internals.signals(r"valid_round\d*")) + one("valid_out")
    holds = 1
    for k, (span, memory, stages) in enumerate(zip(unit.spans, unit.memory, unit.adder_stages)):
        bits = (span - 1).bit_length()
        pos, emit, ptr = one(f"pos{k}"), one(f"emit{k}"), one(f"ptr{k}")
        second, low = pos[bits], pos[:bits]
        count += Mux(second, span, low) + Mux(emit, span - ptr, 0)
        holds &= ~emit | (ptr < span)
        if memory:
            holds &= ~emit | (~second & (low <= ptr))
            holds &= one(f"at_end{k}") == (pos == 2 * span - 1)
            for reg in (f"read{k}", f"ram{k}"):
                valid, is_sum, is_emit = one(f"valid_{reg}"), one(f"sum_{reg}"), one(f"emit_{reg}")
                count += valid & (is_sum | is_emit)
                holds &= ~(valid & is_sum & is_emit)
            count += sum(one(f"valid_y{k}_{j}") for j in range(stages))
            continue
        if stages != 1:
            raise ValueError(f"stage {k}: the pair-stage invariant is stated for single-chunk "
                             f"adders; prove a variant with narrower widths")
        pair, pair_j = one(f"valid_pair{k}"), one(f"j_pair{k}")
        total, total_j = one(f"valid_sum{k}_0"), one(f"j_sum{k}_0")
        pair_end, total_end = pair & (pair_j == span - 1), total & (total_j == span - 1)
        count += pair + total + one(f"valid{k}") + span * (pair_end + total_end)
        holds &= ~(total & emit) & (~total_end | (pos <= 1)) & (~emit | (pos <= ptr + 2))
        holds &= ~(pair & total_end) & (~(pair & emit) | (ptr == span - 1))
        holds &= (~pair_end | (pos == 0)) & (~pair | pair_end | (second & (low == pair_j + 1)))
        holds &= ~total | total_end | second | (pair_end & (pos == 0))
    return holds & (in_flight == count)
