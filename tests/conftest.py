import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # small tensors: one thread is faster and deterministic on a busy CI box


@pytest.fixture
def tiny_weights_or_skip():
    def check():
        from mirage_gym.models.tiny import weights_available

        if not weights_available():
            pytest.skip("the embedded model's weights are not in this checkout yet")

    return check
