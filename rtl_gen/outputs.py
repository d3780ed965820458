"""Output folders lowbit owns: a marker file that says so, and a lock per build folder.

* :func:`claim_folder` makes (or reuses) a folder for lowbit's output. A path that is a file
  is refused; an existing folder without lowbit's marker (:data:`MARKER`) holding anything
  is refused unless ``force`` (then lowbit adds its files beside the user's and deletes
  nothing). Every refusal is one :class:`~lowbit.rtl_gen.config.ConfigError` line naming the
  option. A folder lowbit made gets the marker, so the next run may replace what lowbit
  wrote there (and only that).
* :func:`folder_lock` holds an exclusive ``flock`` on ``<folder>/.lowbit.lock`` while a step
  writes the folder: a second run of the same design and target waits, after printing which
  process holds the folder and since when. The lock dies with its process (no stale locks).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .config import ConfigError

#: written into every folder lowbit creates for its output
MARKER = ".lowbit"
LOCK = ".lowbit.lock"


def is_ours(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def claim_folder(folder: Path, *, option: str, force: bool = False, what: str = "output") -> Path:
    """``folder`` ready for lowbit's ``what``: created with the marker, or already ours, or
    (``force``) a user's folder lowbit writes into without deleting anything."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError("<command line>", option, f"{folder} is a file; lowbit never replaces "
                          f"a file: give a folder path for the {what}")
    if folder.is_dir() and not is_ours(folder) and any(folder.iterdir()) and not force:
        raise ConfigError("<command line>", option, f"{folder} exists and was not made by lowbit; "
                          f"give a new or empty folder for the {what}, or --force to add its "
                          "files beside what is there (nothing is deleted)")
    folder.mkdir(parents=True, exist_ok=True)
    if not is_ours(folder) and not any(p.name != LOCK for p in folder.iterdir()):
        (folder / MARKER).write_text(f"made by lowbit for its {what}; lowbit may replace the "
                                     "files it wrote here\n")
    return folder


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if needed) while the body runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    with open(folder / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", time.time())))
            say(f"lowbit: waiting for {folder}: process {holder.get('pid', '?')} "
                f"({holder.get('what', 'another lowbit run')}) holds it since {since}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
