"""`winnow train --pu --unlabeled DATA`: extra unlabelled sources split with the rest (never into test); bad input."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from winnow.cli.main import build_parser, main
from winnow.config import Config
from winnow.data.splits import assign_splits
from winnow.pu.auto import resolve_prior

from conftest import draw
from test_pu_train import FAST, pu_manifest


def extra_images(root: Path, *, n: int = 20, seed: int = 1, manifest_groups: int | None = None) -> Path:
    """`n` disks in a flat folder (no class folders), or a manifest with `group` (and a label, ignored)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(draw("disk", rng)).save(root / f"x{i:03d}.png")
    if manifest_groups is None:
        return root
    path = root / "extra.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "group"],
                                      *[[f"x{i:03d}.png", "good", f"g{i % manifest_groups}"] for i in range(n)]])
    return path


def test_extra_unlabelled_images_join_train_and_val_but_never_test(tmp_path):
    data = pu_manifest(tmp_path / "data", unlabelled_name="bad")
    extra = extra_images(tmp_path / "extra", n=24, manifest_groups=6)
    settings = {"val_fraction": 0.25, "test_fraction": 0.2, "seed": 0}
    plain = assign_splits([str(data)], **settings)
    samples = assign_splits([str(data)], unlabelled=[str(extra)], positive_class="good", **settings)
    added = [i for i, path in enumerate(samples.paths) if Path(path).parent == extra.parent]
    assert len(samples) == len(plain) + 24 and len(added) == 24
    assert {samples.labels[i] for i in added} == {"bad"}  # DATA's unlabelled label; the manifest's "good" is ignored
    splits = Counter(samples.splits[i] for i in added)
    assert splits["test"] == 0 and splits["val"] >= 4 and splits["train"] >= 8
    for group in {samples.groups[i] for i in added}:  # each group on one side
        assert len({samples.splits[i] for i in added if samples.groups[i] == group}) == 1
    # the test split is DATA's own, exactly as without the extra images
    assert [p for p, s in zip(samples.paths, samples.splits) if s == "test"] == \
           [p for p, s in zip(plain.paths, plain.splits) if s == "test"]


def test_with_an_explicit_val_split_the_extra_images_train(tmp_path):
    data = pu_manifest(tmp_path / "data")
    val = pu_manifest(tmp_path / "val", labelled=3, hidden=1, negatives=3)
    samples = assign_splits([str(data)], val=[str(val)], unlabelled=[str(extra_images(tmp_path / "extra"))],
                            positive_class="good", test_fraction=0.0)
    added = [i for i, path in enumerate(samples.paths) if "/extra/" in path]
    assert {samples.splits[i] for i in added} == {"train"} and {samples.labels[i] for i in added} == {"unlabeled"}


def test_data_of_positives_only_takes_the_extra_images_as_unlabeled(tmp_path):
    data = pu_manifest(tmp_path / "data", hidden=0, negatives=0, labelled=12)
    samples = assign_splits([str(data)], unlabelled=[str(extra_images(tmp_path / "extra"))], positive_class="good")
    assert Counter(samples.labels) == {"good": 12, "unlabeled": 20}


def test_prior_auto_counts_the_extra_images_as_unlabelled(tmp_path):
    data = pu_manifest(tmp_path / "data", hidden=0, negatives=0, labelled=12)  # positives only
    config = Config(data=[str(data)], unlabeled=[str(extra_images(tmp_path / "extra"))], pu=True, head="binary",
                    positive_class="good", prior="auto", select_metric="val_pu_auc")
    resolved, estimate = resolve_prior(config, bootstrap=0)
    assert 0 < resolved.prior < 1 and estimate is not None  # without the extra images: no unlabelled image at all
    with pytest.raises(ValueError, match="at least 5 labelled positives and 5 unlabelled"):
        resolve_prior(config.replace(unlabeled=[]), bootstrap=0)


def test_unlabeled_is_repeatable_and_refused_without_pu(tmp_path, capsys):
    args = build_parser().parse_args(["train", "data", "--unlabeled", "a", "b", "--unlabeled", "c"])
    assert args.unlabeled == ["a", "b", "c"]
    pu = {"pu": True, "head": "binary", "positive_class": "good", "prior": 0.3, "select_metric": "val_pu_auc"}
    assert Config(unlabeled="a", **pu).unlabeled == ["a"]
    data, extra = pu_manifest(tmp_path / "data"), extra_images(tmp_path / "extra")
    assert main(["train", str(data), "--unlabeled", str(extra), "--out", str(tmp_path / "runs"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "unlabeled is" in err and "pu is false" in err and "add --pu" in err
    with pytest.raises(ValueError, match="but pu is false: only a positive-unlabelled run trains on unlabelled"):
        Config(unlabeled=[str(extra)])


@pytest.mark.parametrize("positive, labels, match", [
    (None, None, "needs positive_class"),
    ("good", ["bad", "maybe"], r"one other label, got \['bad', 'maybe'\]"),
])
def test_extra_images_need_a_positive_class_and_one_other_label(tmp_path, positive, labels, match):
    data = pu_manifest(tmp_path / "data", unlabelled_name="bad")
    if labels:  # a third label among the unlabelled
        rows = list(csv.reader(open(data)))
        rows[-1][1] = labels[1]
        csv.writer(open(data, "w", newline="")).writerows(rows)
    with pytest.raises(ValueError, match=match):
        assign_splits([str(data)], unlabelled=[str(extra_images(tmp_path / "extra"))], positive_class=positive)
