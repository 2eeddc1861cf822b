"""The plain training script a user would compare winnow with, written honestly.

It reads a manifest (`path,label,split` with train/val/test rows, paths absolute or relative
to the manifest), decodes every image once into a uint8 tensor, letterboxed to a square of
`--img-size` (aspect kept, black padding, as `PIL.ImageOps.pad` does), and trains a timm model
from scratch: AdamW with a one-cycle schedule, random whole-batch horizontal/vertical flips,
cross-entropy with label smoothing 0.1, random (shuffled) sampling. The checkpoint with the best
validation macro-F1 is scored on the test rows. It does not import winnow. Run:

    python bench/plain.py MANIFEST --epochs 15 --seed 0 --json result.json
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image, ImageOps
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from torch import nn


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of the manifest, each with an absolute `path`."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if not Path(row["path"]).is_absolute():
            row["path"] = str(path.parent / row["path"])
    return rows


def channels_of(paths: list[str]) -> int:
    """1 when (nearly) every image is grayscale, else 3."""
    gray = sum(Image.open(p).mode in ("L", "I;16", "I", "1") for p in paths)
    return 1 if gray >= 0.9 * len(paths) else 3


def decode(paths: list[str], *, size: int, channels: int) -> torch.Tensor:
    """Every image letterboxed to `size` -> `[N, C, size, size]` uint8."""
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for path in paths:
        with Image.open(path) as image:
            square = ImageOps.pad(image.convert(mode), (size, size), color=0)
        arrays.append(np.asarray(square).reshape(size, size, channels))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_splits(manifest: Path, *, size: int) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    """split -> (images `[N, C, S, S]` uint8, labels `[N]` int64), and the class names."""
    rows = read_manifest(manifest)
    classes = sorted({r["label"] for r in rows if r["split"] == "train"})
    index = {name: i for i, name in enumerate(classes)}
    channels = channels_of([r["path"] for r in rows])
    splits = {}
    for split in ("train", "val", "test"):
        picked = [r for r in rows if r["split"] == split and r["label"] in index]
        images = decode([r["path"] for r in picked], size=size, channels=channels)
        splits[split] = images, torch.tensor([index[r["label"]] for r in picked])
    return splits, classes


class Normalize(nn.Module):
    """uint8 `[B, C, H, W]` -> float, standardised with the training set's channel mean and std."""

    def __init__(self, train_images: torch.Tensor) -> None:
        super().__init__()
        pixels = train_images.float().div(255).transpose(0, 1).reshape(train_images.shape[1], -1)
        self.register_buffer("mean", pixels.mean(1).view(1, -1, 1, 1))
        self.register_buffer("std", pixels.std(1).clamp_min(1e-3).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float().div(255) - self.mean) / self.std


def flip_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip the whole batch `[B, C, H, W]` horizontally and/or vertically, each with p = 0.5."""
    draws = torch.rand(2, generator=generator)
    if draws[0] < 0.5:
        images = images.flip(3)
    if draws[1] < 0.5:
        images = images.flip(2)
    return images


def train_epoch(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], *, optimizer, scheduler,
                loss_fn: nn.Module, batch_size: int, generator: torch.Generator) -> None:
    """One pass over the training set in a random order."""
    images, labels = data
    model.train()
    order = torch.randperm(len(labels), generator=generator)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        if len(batch) < 2:  # batch norm cannot train on a single image
            continue
        loss = loss_fn(model(flip_batch(images[batch], generator)), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Predicted class index `[N]` of uint8 images `[N, C, H, W]`."""
    model.eval()
    return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]).numpy()


def scores(truth: torch.Tensor, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1."""
    truth = truth.numpy()
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0))}


def fit(splits: dict, num_classes: int, args: argparse.Namespace) -> tuple[nn.Module, int]:
    """Train `args.epochs` epochs; return the model at its best validation macro-F1 and that epoch."""
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    train_images = splits["train"][0]
    backbone = timm.create_model(args.model, pretrained=False, num_classes=num_classes, in_chans=train_images.shape[1])
    model = nn.Sequential(Normalize(train_images), backbone)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = sum(1 for s in range(0, len(train_images), args.batch_size) if len(train_images) - s >= 2)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    best, best_f1, best_epoch = None, -1.0, 0
    for epoch in range(1, args.epochs + 1):
        train_epoch(model, splits["train"], optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
                    batch_size=args.batch_size, generator=generator)
        val = scores(splits["val"][1], predict(model, splits["val"][0]))
        print(f"epoch {epoch}/{args.epochs}  val_accuracy {val['accuracy']:.4f}  val_macro_f1 {val['macro_f1']:.4f}", flush=True)
        if val["macro_f1"] > best_f1:
            best, best_f1, best_epoch = copy.deepcopy(model.state_dict()), val["macro_f1"], epoch
    model.load_state_dict(best)
    return model, best_epoch


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    splits, classes = load_splits(args.manifest, size=args.img_size)
    model, best_epoch = fit(splits, len(classes), args)
    result = {**scores(splits["test"][1], predict(model, splits["test"][0])), "best_epoch": best_epoch,
              "epochs": args.epochs, "cpu_s": round(cpu_seconds(), 1), "wall_s": round(time.perf_counter() - start, 1),
              "train_images": len(splits["train"][1]), "torch_threads": torch.get_num_threads()}
    result["img_per_s"] = round(result["train_images"] * args.epochs / result["wall_s"], 1)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
