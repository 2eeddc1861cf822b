"""`torchrun --nproc_per_node=2` on CPU (gloo): one run folder, one report, whole splits, one-process results.

The sampler shards one global epoch: with 2 ranks x batch 4, step s of rank r takes global
positions 8s + r, 8s + r + 2... of the same draw, so both ranks together see exactly the batch of
8 that one process with batch 8 sees, with the same augmentation seeds. The model is test_convnext
(LayerNorm: per-image arithmetic), so the two runs agree up to float summation order (measured:
5e-7 at most). A BatchNorm model would not: each rank normalises with the statistics of its own 4
images (SyncBatchNorm needs CUDA); test_resnet on this data ended at val_loss 1.044 against 0.993
(README, "More than one GPU or machine").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

import winnow
from winnow.config import Config
from winnow.data.prepare import eval_loader
from winnow.data.splits import load_splits
from winnow.runs.files import read_metrics
from winnow.runs.layout import RunPaths
from winnow.training.distributed import interleave

from conftest import make_image_folder

TESTS = Path(__file__).resolve().parent
COMMON = dict(model="test_convnext", img_size=32, epochs=2, workers=0, progress=False, lr=3e-3, warmup_epochs=0,
              val_fraction=0.15, test_fraction=0.15, swa_epochs=1)  # swa: the averaging runs under DDP too
COMPARED = ("train_loss", "lr", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flags(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        flags += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return flags


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available in this torch build")
def test_torchrun_two_ranks_one_folder_whole_splits_same_metrics(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=16)  # 48 images: 34 train, 7 val, 7 test
    out, cache = tmp_path / "runs", tmp_path / "cache"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master-addr=127.0.0.1", f"--master-port={_free_port()}", "-m", "winnow.cli.main", "train",
               str(data), *_flags(dict(COMMON, batch_size=4, out=out, cache_dir=cache, name="ddp"))]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    assert sorted(p.name for p in out.iterdir()) == ["ddp"], "rank 1 must not create a folder of its own"
    assert done.stdout.count("run: ") == 1 and done.stdout.count("test: ") == 1, done.stdout
    assert done.stderr.count("epoch 1/2 ") == 1, "only rank 0 logs"
    run = RunPaths(out / "ddp")
    samples = load_splits(run.splits)
    sizes = {split: len(samples.where_split(split)) for split in ("val", "test")}
    assert sizes == {"val": 7, "test": 7}  # odd: the two shards have 4 and 3 images, no padding
    summary = json.loads(run.summary.read_text())
    assert summary["images_evaluated"] == sizes

    single = winnow.train(Config(data=[str(data)], out=str(out), cache_dir=str(cache), name="single", batch_size=8,
                                 **COMMON))
    rows = read_metrics(run.metrics)
    assert len(rows) == len(single.metrics) == 2
    for got, want in zip(rows, single.metrics):
        for key in COMPARED:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), (key, got, want)
    assert summary["best_epoch"] == single.best_epoch
    assert summary["test"] == pytest.approx(single.test_metrics, rel=1e-4, abs=1e-5)
    assert run.checkpoint("swa").is_file() and summary["swa"]["n_averaged"] == 1
    assert summary["swa"]["metrics"] == pytest.approx(single.swa["metrics"], rel=1e-4, abs=1e-5)


def test_interleave_undoes_rank_sharding_without_padding():
    values = np.arange(14).reshape(7, 2)
    for world_size in (1, 2, 3, 8):  # 8 ranks for 7 images: one shard is empty
        shards = [values[rank::world_size] for rank in range(world_size)]
        assert np.array_equal(interleave(shards), values)
        by_task = [{"a": shard, "b": shard[:, 0]} if len(shard) else np.zeros((0,)) for shard in shards]
        merged = interleave(by_task)
        assert np.array_equal(merged["a"], values) and np.array_equal(merged["b"], values[:, 0])
    config = Config(batch_size=2, workers=0)
    shards = [[int(i) for batch in eval_loader(list(range(7)), config, rank=rank, world_size=3) for i in batch]
              for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]  # what eval_loader reads: every image once, no padding
    assert interleave([np.array(shard) for shard in shards]).tolist() == list(range(7))
