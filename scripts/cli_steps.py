"""Progress lines the ``lowbit`` commands print: a timestamped step title, an indented note."""
from __future__ import annotations

import time


def progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


def step(title: str):
    """Print ``[HH:MM:SS] title`` and return the start time (``time.perf_counter``)."""
    print(f"[{time.strftime('%H:%M:%S')}] {title}", flush=True)
    return time.perf_counter()
