"""Assemble README.md from its sections in docs/ (edit those, then run this).

    .venv/bin/python scripts/build_readme.py          # rewrite README.md
    .venv/bin/python scripts/build_readme.py --check  # exit 1 if README.md is stale (tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["readme_head", "status", "model_card", "results", "agents", "wan", "hardening", "layout"]


def build() -> str:
    parts = [(ROOT / "docs" / f"{name}.md").read_text() for name in SECTIONS]
    return "\n".join(parts)


def main() -> int:
    text = build()
    readme = ROOT / "README.md"
    if "--check" in sys.argv[1:]:
        if readme.read_text() != text:
            print("README.md is stale: run `python scripts/build_readme.py`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
