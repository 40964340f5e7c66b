"""README.md is assembled from docs/*.md by scripts/build_readme.py; it must not go stale."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_built_from_docs():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_readme.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
