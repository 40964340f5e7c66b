"""The oracle envs' outputs stay bit-identical to the digests recorded before
the speed work (tests/oracle_golden.py writes them; see its docstring)."""

import json

import pytest

from oracle_golden import CASES, GOLDEN, traces


@pytest.mark.parametrize("name", sorted(CASES))
def test_oracle_outputs_bit_identical(name):
    golden = json.loads(GOLDEN.read_text())[name]
    now = traces([name])[name]
    for part in ("steps", "snapshots"):
        assert len(now[part]) == len(golden[part]), f"{name}: {len(now[part])} {part}, recorded {len(golden[part])}"
        for i, (a, b) in enumerate(zip(now[part], golden[part])):
            assert a == b, f"{name}: {part}[{i}] differs from the recorded digest ({a} != {b})"
