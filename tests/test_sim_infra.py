"""The simulation infrastructure: Verilator build cache, cocotb runner, stream drivers.

A small Amaranth pipeline (``Triple``) goes through ``testbenches.runner.run`` with the
self-test bench ``testbenches.tb_selftest``; broken variants of it must make the bench fail.
Builds are cached in ``<repo>/build/sim_cache`` (the ``sim_cache`` fixture of ``conftest.py``)
across pytest runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.testbenches import runner, verilator_toolchain
from lowbit.testbenches.payload import PayloadLayout

WIDTH = 12
BEATS = 3000
BENCH = "lowbit.testbenches.tb_selftest"


def beat_layout(width: int) -> data.StructLayout:
    return data.StructLayout({"data": signed(width), "last": 1})


class Triple(wiring.Component):
    """``o.data = 3 * i.data``, ``last`` passed through; 2 registered stages, global stall.

    ``bug`` makes a deliberately broken variant: ``"plus_one"`` (wrong arithmetic), ``"drop"``
    (accepts input while stalled and loses it), ``"unstable"`` (payload changes while stalled),
    ``"hang"`` (output never valid). Every variant adds ``ROM[index]`` of a 6-entry ROM of
    zeros (the tail of a coefficient table); the correct design clamps ``index`` (the low 3
    bits of ``data``) to 5, ``"rom_overrun"`` reads entries 6 and 7, past the end.
    """

    def __init__(self, width: int = WIDTH, bug: str | None = None):
        assert bug in (None, "plus_one", "drop", "unstable", "hang", "rom_overrun")
        self.width, self.bug = width, bug
        super().__init__({
            "i": In(stream.Signature(beat_layout(width))),
            "o": Out(stream.Signature(beat_layout(width + 2))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(1 if self.bug == "drop" else advance)
        stage = Signal(beat_layout(self.width))
        stage_valid = Signal()
        m.submodules.rom = rom = Memory(shape=signed(4), depth=6, init=[0] * 6)
        rom_read = rom.read_port(domain="comb")
        index = stage.data[:3]
        m.d.comb += rom_read.addr.eq(index if self.bug == "rom_overrun" else Mux(index > 5, 5, index))
        with m.If(advance):
            product = stage.data * 3 + rom_read.data + (1 if self.bug == "plus_one" else 0)
            m.d.sync += [
                stage.eq(self.i.payload),
                stage_valid.eq(self.i.valid),
                self.o.payload.data.eq(product),
                self.o.payload.last.eq(stage.last),
                self.o.valid.eq(stage_valid & (self.bug != "hang")),
            ]
        if self.bug == "unstable":
            with m.Elif(self.o.valid):
                m.d.sync += self.o.payload.last.eq(~self.o.payload.last)
        return m


def write_design(folder: Path, bug: str | None = None, beats: int = BEATS) -> tuple[Path, dict]:
    """Write ``selftest.v`` and its design-point file ``selftest.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "selftest.v"
    source.write_text(verilog.convert(Triple(bug=bug), name="selftest", emit_src=False))
    config = folder / "selftest.json"
    config.write_text(json.dumps({"width": WIDTH, "beats": beats, "latency": 2}))
    return source, {"LOWBIT_CONFIG": str(config)}


# ---------------------------------------------------------------------------------- pure Python


def test_payload_layout_round_trip():
    layout = PayloadLayout([("data", 12, True), ("last", 1, False), ("tag", 3, False)])
    assert layout.width == 16
    for value in (-2048, -1, 0, 1, 2047):
        for last in (0, 1):
            raw = layout.pack(data=value, last=last, tag=5)
            assert 0 <= raw < 1 << 16
            assert layout.unpack(raw) == {"data": value, "last": last, "tag": 5}
    # First field in the low bits, two's complement within the field.
    assert layout.pack(data=-1, last=0, tag=0) == 0xFFF
    assert layout.pack(data=0, last=1, tag=0) == 1 << 12
    assert layout.pack(data=0, last=0, tag=7) == 7 << 13


def test_payload_layout_range_errors():
    layout = PayloadLayout([("data", 4, True), ("flag", 1, False)])
    for bad in (-9, 8):
        with pytest.raises(ValueError, match="data"):
            layout.pack(data=bad, flag=0)
    with pytest.raises(ValueError, match="flag"):
        layout.pack(data=0, flag=2)
    with pytest.raises(ValueError, match="flag"):
        layout.pack(data=0, flag=-1)
    with pytest.raises(ValueError, match="missing"):
        layout.pack(data=0)
    with pytest.raises(ValueError, match="unknown"):
        layout.pack(data=0, flag=0, other=1)
    with pytest.raises(ValueError):
        layout.unpack(1 << 5)


def test_payload_layout_matches_amaranth():
    layout = PayloadLayout.from_struct(beat_layout(12))
    assert layout.fields == (("data", 12, True), ("last", 1, False))
    assert layout.width == beat_layout(12).size


def test_publish_race_and_stale_builds(tmp_path):
    final = tmp_path / "top-0123456789abcdef"
    # The winner of a race publishes; the loser's rename fails and it uses the winner's build.
    for name in ("a", "b"):
        staging = tmp_path / name
        staging.mkdir()
        (staging / runner.BUILD_MARKER).write_text(name)
        runner._publish(staging, final)
    assert (final / runner.BUILD_MARKER).read_text() == "a"
    # A folder without the marker (an interrupted or foreign build) is never reused.
    (final / runner.BUILD_MARKER).unlink()
    staging = tmp_path / "c"
    staging.mkdir()
    (staging / runner.BUILD_MARKER).write_text("c")
    runner._publish(staging, final)
    assert (final / runner.BUILD_MARKER).read_text() == "c"


def test_verilator_env():
    env = verilator_toolchain.verilator_env()
    root = Path(env["VERILATOR_ROOT"])
    assert (root / "include" / "verilated.mk").is_file()
    assert str(root / "bin") in env["PATH"].split(os.pathsep)
    assert (root / "bin" / "verilator").is_file()


# ---------------------------------------------------------------------------------- simulation


def test_selftest_passes_and_build_is_cached(tmp_path, sim_cache):
    source, env = write_design(tmp_path / "design")
    result = runner.run(source, "selftest", BENCH, cache_root=sim_cache,
                        test_dir=tmp_path / "run1", env=env)
    assert (result.tests, result.failed) == (3, 0)
    marker = result.build_dir / runner.BUILD_MARKER
    built_at = json.loads(marker.read_text())["built_at"]
    # the precompiled headers (the bulk of a build) are gone; the simulator runs without them
    assert not list(result.build_dir.glob("*.gch"))
    assert (result.build_dir / "selftest").is_file()

    again = runner.build(source, "selftest", cache_root=sim_cache)
    assert again == result.build_dir
    assert json.loads(marker.read_text())["built_at"] == built_at  # not rebuilt

    # Same seed, same run: the seed really replays.
    replay = runner.run(source, "selftest", BENCH, cache_root=sim_cache, test_dir=tmp_path / "run2",
                        env=env, seed=result.seed, testcase="test_random_pressure")
    assert (replay.tests, replay.failed) == (1, 0)
    log1, log2 = (r.log.read_text() for r in (result, replay))
    # The pressure drawn and where the reset landed depend on every random draw of the run.
    marks = ("p_gap =", "reset after")
    pick = lambda text: [line.split("INFO", 1)[1] for line in text.splitlines()  # noqa: E731
                         if any(m in line for m in marks)]
    assert pick(log1) == pick(log2) and len(pick(log2)) == 2


@pytest.mark.parametrize("bug, testcase, symptom", [
    ("plus_one", "test_random_pressure", "first mismatch: beat 0"),
    ("drop", "test_random_pressure", "mismatch"),
    ("unstable", "test_random_pressure", "protocol violation"),
    ("hang", "test_full_throughput", "received 0 of 600 beats"),
])
def test_broken_design_fails(tmp_path, sim_cache, bug, testcase, symptom):
    """The bench can fail: each broken variant is caught, and the report says why."""
    source, env = write_design(tmp_path / "design", bug=bug, beats=600)
    with pytest.raises(runner.SimulationFailed) as info:
        runner.run(source, "selftest", BENCH, cache_root=sim_cache, test_dir=tmp_path / "run",
                   env=env, seed=1234, testcase=testcase)
    headline, details = str(info.value).split("\n", 1)
    assert headline.startswith("1 of 1 cocotb tests failed (results: ")
    assert headline.endswith("; replay with seed 1234")
    assert symptom in details


def test_an_out_of_range_rom_read_is_caught_that_default_settings_hide(tmp_path, sim_cache,
                                                                        monkeypatch):
    """Past the end of its ROM the design reads X: the benches' Verilator settings make X
    random (seeded), so the bench fails; Verilator's defaults read 0 there, which here is the
    right answer, and the same bug passes."""
    source, env = write_design(tmp_path / "design", bug="rom_overrun", beats=600)
    with pytest.raises(runner.SimulationFailed, match="1 of 1 cocotb tests failed"):
        runner.run(source, "selftest", BENCH, cache_root=sim_cache, test_dir=tmp_path / "run",
                   env=env, seed=1234, testcase="test_random_pressure")
    monkeypatch.setattr(runner, "VERILATOR_ARGS", ("-Wno-fatal",))
    monkeypatch.setattr(runner, "RUN_PLUSARGS", ())
    hidden = runner.run(source, "selftest", BENCH, cache_root=sim_cache,
                        test_dir=tmp_path / "run_default", env=env, seed=1234,
                        testcase="test_random_pressure")
    assert (hidden.tests, hidden.failed) == (1, 0)


def test_check_false_returns_failures(tmp_path, sim_cache):
    source, env = write_design(tmp_path / "design", bug="plus_one", beats=600)
    result = runner.run(source, "selftest", BENCH, cache_root=sim_cache, test_dir=tmp_path / "run",
                        env=env, seed=7, testcase="test_random_pressure", check=False)
    assert (result.tests, result.failed) == (1, 1)
    assert result.results_xml.is_file() and result.log.is_file()


def test_waves(tmp_path, sim_cache):
    source, env = write_design(tmp_path / "design", beats=50)
    result = runner.run(source, "selftest", BENCH, cache_root=sim_cache, test_dir=tmp_path / "run",
                        env=env, waves=True, testcase="test_full_throughput")
    assert result.waves is not None and result.waves.suffix in (".fst", ".vcd")
    head = result.waves.read_bytes()[:1]
    # FST starts with its header block (type 0); a VCD fallback with a "$" keyword.
    assert head == (b"\x00" if result.waves.suffix == ".fst" else b"$")
