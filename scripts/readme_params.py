"""README.md's parameter tables, generated from the families' declarations.

Each family has a marked section in README.md::

    <!-- params:activation -->
    | parameter | kind | allowed | default | meaning |
    ...
    <!-- /params:activation -->

``python -m lowbit.scripts.readme_params`` prints README.md with every section filled from
``rtl_gen.params.markdown_table``; ``--write`` writes it back (atomically). The test suite
fails when README.md and the declarations differ.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lowbit.rtl_gen.families import FAMILIES
from lowbit.rtl_gen.generate import write_atomic
from lowbit.rtl_gen.params import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def render(text: str) -> str:
    """``text`` with every family's marked section replaced by its table (every family must
    have one)."""
    for family, cls in FAMILIES.items():
        pattern = re.compile(rf"(<!-- params:{family} -->\n).*?(<!-- /params:{family} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no section <!-- params:{family} --> ... "
                             f"<!-- /params:{family} -->")
        text = pattern.sub(lambda m: m.group(1) + markdown_table(cls) + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write README.md (default: print it)")
    parser.add_argument("--readme", type=Path, default=README, help=f"default {README}")
    args = parser.parse_args(argv)
    new = render(args.readme.read_text())
    if args.write:
        write_atomic(args.readme, new)
    else:
        sys.stdout.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
