"""CUDA paths (AMP, channels_last, pinned memory, compile): run only where a GPU is present."""

from __future__ import annotations

import pytest
import torch

import winnow

from conftest import fast_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
def test_cuda_training_with_amp(tmp_path, image_folder, amp):
    run = winnow.train(fast_config(tmp_path, image_folder, device="cuda", amp=amp, epochs=3, workers=2))
    assert run.status == "finished" and run.metrics[-1]["train_loss"] < run.metrics[0]["train_loss"] * 1.5


def test_cuda_compile_and_resume_on_gpu(tmp_path, image_folder):
    run = winnow.train(fast_config(tmp_path, image_folder, device="cuda", compile=True, epochs=1))
    resumed = winnow.train(None, resume=run.path, overrides={"epochs": 2})
    assert resumed.status == "finished" and len(resumed.metrics) == 2
    predictions = winnow.load(run.path, device="cuda").predict(image_folder / "disk")
    assert predictions.probabilities.shape == (12, 3)
