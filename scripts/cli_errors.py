"""How the ``lowbit`` command fails: one line on stderr and a documented exit status.

========  =====================================================================
status    meaning
========  =====================================================================
0         done (``lowbit synth --strict``: and every clock met its constraint)
1         a step failed: a tool (Yosys, nextpnr, Verilator, C++ build), a bench
          (a test failed or none ran), a board (no or wrong answer), a sweep
          point, missed timing under ``--strict``, a file that cannot be written
2         bad input: design or sweep file, ``-p`` value, option, missing file
          or port; nothing was built
130       interrupted (Ctrl-C); the message says whether a rerun resumes
========  =====================================================================

This module is the one place that knows the project's exception types; every command
raises them and :func:`run_command` turns them into the line and the status.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from lowbit.fpga.flow import ToolError
from lowbit.fpga.host_protocol import ProtocolError
from lowbit.rtl_gen.config import ConfigError
from lowbit.testbenches.runner import BuildFailed, SimulationFailed

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

#: a failed step: (exception type, the word the line starts with)
FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (ToolError, "tool failed"), (BuildFailed, "Verilator build failed"),
    (SimulationFailed, "simulation failed"), (ProtocolError, "board link failed"),
)


class StepFailed(RuntimeError):
    """A command finished its work but the result is a failure (e.g. missed timing under
    ``--strict``); the message is the one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C with a note on what a rerun does (``"rerun to resume"``)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                err=None) -> int:
    """``func(args)`` with every expected failure as one line on ``err`` and its status."""
    err = err or sys.stderr

    def say(text: str) -> None:
        print(f"lowbit: {_one_line(text)}", file=err, flush=True)

    try:
        return func(args)
    except ConfigError as exc:
        say(f"error: {exc}")
        return EXIT_BAD_INPUT
    except StepFailed as exc:
        say(f"failed: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        note = str(exc) if isinstance(exc, Interrupted) and str(exc) else ""
        say("interrupted" + (f"; {note}" if note else ""))
        return EXIT_INTERRUPTED
    except OSError as exc:   # a folder that is a file, a read-only folder, a full disk
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        hint = ("; lowbit needs a folder there" if isinstance(exc, (FileExistsError, NotADirectoryError))
                else "")
        say(f"error:{where}: {exc.strerror or exc}{hint}")
        return EXIT_FAILED
    except Exception as exc:
        for kind, word in FAILURES:
            if isinstance(exc, kind):   # the first line says what and where; the log has the rest
                say(f"{word}: {str(exc).splitlines()[0] if str(exc) else kind.__name__}")
                return EXIT_FAILED
        raise


class OneLineParser(argparse.ArgumentParser):
    """argparse with bad options reported as one line (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"lowbit: error: {self.prog}: {_one_line(message)} "
                                  f"(see {self.prog} --help)\n")


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (``--freq``, ``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected a number > 0")
    return value


def _whole_number(text: str, lo: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < lo:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected a whole number >= {lo}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (``--count``, ``--workers``, ``--baud``)."""
    return _whole_number(text, 1)


def nonnegative_int(text: str) -> int:
    """An argparse type: a whole number >= 0 (``--seed``, ``--pnr-seed``)."""
    return _whole_number(text, 0)
