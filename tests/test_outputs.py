"""Output folders: lowbit's marker, refusal of users' files and folders, the build-folder lock."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.outputs import MARKER, claim_folder, folder_lock, is_ours


def test_a_new_folder_is_claimed_and_marked(tmp_path):
    folder = claim_folder(tmp_path / "a" / "b", option="--out")
    assert folder.is_dir() and is_ours(folder)
    (folder / "x.v").write_text("ours")
    assert claim_folder(folder, option="--out") == folder        # ours: may be reused


def test_a_users_file_or_folder_is_refused_and_left_alone(tmp_path):
    user_file = tmp_path / "f"
    user_file.write_text("mine")
    for force in (False, True):                                   # a file: never, not even forced
        with pytest.raises(ConfigError, match="'--out'.*is a file"):
            claim_folder(user_file, option="--out", force=force)
    assert user_file.read_text() == "mine"
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not made by lowbit.*--force"):
        claim_folder(folder, option="--out")
    claim_folder(folder, option="--out", force=True)
    assert (folder / "mine.txt").read_text() == "mine" and not (folder / MARKER).exists()


HOLDER = """
import sys
from lowbit.rtl_gen.outputs import folder_lock
with folder_lock(sys.argv[1], "the second run", say=lambda m: print(m, flush=True)):
    print("got it", flush=True)
"""


def test_a_second_run_waits_for_the_lock_and_says_who_holds_it(tmp_path):
    with folder_lock(tmp_path, "the first run"):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()      # blocks until the waiter has printed: no clock
        assert "waiting for" in first and "the first run" in first, first
        assert proc.poll() is None          # still waiting while we hold the lock
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "got it"
