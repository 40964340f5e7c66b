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


@pytest.mark.parametrize("name", ["oracle64_memory_obs_seed3", "oracle64_fill_seed5"])
def test_memory_culling_keeps_the_env_outputs(name, monkeypatch):
    """The cases that read the memory (memory_obs, the fill rule's own-view splat), with
    culling and the near-rows key search forced on at every size: the same digests."""
    from mirage_gym.memory import cull

    monkeypatch.setattr(cull, "MIN_ROWS", 0)
    assert traces([name])[name] == json.loads(GOLDEN.read_text())[name]
