"""`winnow report RUN [DATA]`: one self-contained HTML page on a tiny tuned binary run.

One run is trained and tuned per module and one report written for it; the tests read that page.
The held-out data holds a few mislabelled images (disks labelled "bad", squares labelled "good"),
so that the gallery has confident mistakes to show.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import winnow
from winnow.cli.main import main
from winnow.evaluation.checkpoints import run_checkpoints

from chromium import assert_renders
from conftest import draw, fast_config

SHAPES = {"good": "disk", "bad": "square"}
SWAPPED = {"good": "square", "bad": "disk"}
TARGET = "precision(good)>=0.9"
GALLERY = 4
SECTION_TITLES = ("Run", "Data", "Training curves", "Metrics", "Confusion matrix, PR, ROC and reliability",
                  "Operating point", "Gallery", "Embeddings", "Per-checkpoint table")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def shape_folder(root: Path, per_class: int, *, seed: int, wrong: int = 0) -> Path:
    """`root/<label>/*.png`: 32 px shapes, plus `wrong` images per label drawn as the other label's shape."""
    rng = np.random.default_rng(seed)
    for label, shape in SHAPES.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class + wrong):
            drawn, name = (shape, f"{label}_{i:03d}") if i < per_class else (SWAPPED[label], f"swap_{i:03d}")
            Image.fromarray(draw(drawn, rng, 32)).save(root / label / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A trained, tuned binary run (3 epoch checkpoints), held-out data and the report on that data."""
    root = tmp_path_factory.mktemp("report")
    run = winnow.train(fast_config(root, shape_folder(root / "train", 20, seed=0), head="binary",
                                   positive_class="good", epochs=3, save_every=1, name="binary")).path
    held = shape_folder(root / "held", 15, seed=1, wrong=3)
    assert main(["tune", str(run), "--target", TARGET, "--data", str(held)]) == 0
    assert main(["report", str(run), str(held), "--gallery", str(GALLERY)]) == 0
    path = run / "report-held.html"
    return {"run": run, "held": held, "root": root, "path": path, "html": path.read_text(encoding="utf-8")}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def section(html: str, anchor: str) -> str:
    """The `<section id="anchor">` of the page."""
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', html, flags=re.DOTALL)
    assert match, f"no section {anchor!r}"
    return match.group(1)


class TagChecker(HTMLParser):
    """Records unbalanced tags: a closing tag that does not close the innermost open one, or tags left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(html: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors[:5], checker.stack)
    return checker


def gallery_paths(html: str, kind: str) -> list[str]:
    return re.findall(rf'<figure class="thumb {kind}" title="[^"]*" data-path="([^"]*)"', section(html, "gallery"))


# --------------------------------------------------------------------------------------------- content


def test_report_has_every_section_and_the_evaluated_run(reported):
    html = reported["html"]
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in html, title
    assert "winnow report: binary" in html and "best (epoch " in html
    assert "precision(good)&gt;=0.9" in html  # the decision rule, escaped
    assert "not available" not in section(html, "training") + section(html, "figures")
    metrics = json.loads((reported["run"] / "eval" / "held" / "best" / "metrics.json").read_text())
    scores = section(html, "metrics")
    for key in ("accuracy", "macro_f1", "roc_auc_macro"):
        assert f"<th>{key}</th><td class=\"num\">{metrics[key]:.4f}</td>" in scores, key
    for name, values in metrics["per_class"].items():
        assert f"<td>{name}</td><td class=\"num\">{values['precision']:.4f}</td>" in scores, name
    data = section(html, "data")
    assert "splits.csv" in data and "<td>all images</td>" in data and "img_size" in data


def test_operating_point_interval_is_the_one_in_metrics_json(reported):
    metrics = json.loads((reported["run"] / "eval" / "held" / "best" / "metrics.json").read_text())
    point = metrics["operating_point"]
    interval = point["interval"]
    assert interval["low"] < interval["high"]  # mislabelled images: a real interval, not [1, 1]
    text = section(reported["html"], "operating-point")
    assert f"[{interval['low']:.4f}, {interval['high']:.4f}]" in text
    assert f"{interval['confidence']:.0%} bootstrap interval" in text
    assert f"{point['threshold']:.6g}" in text
    assert ("held" if point["target_met"] else "NOT met") in text
    for warning in point["warnings"]:
        assert escape(warning) in text
    assert "Where it was tuned (thresholds.json)" in text and escape(str(reported["held"])) in text


def test_gallery_shows_the_most_confident_mistakes_and_least_confident_correct(reported):
    rows = read_rows(reported["run"] / "eval" / "held" / "best" / "predictions.csv")
    confidence = {row["path"]: float(row[f"prob_{row['predicted']}"]) for row in rows}
    for kind, wanted, descending in (("mistake", False, True), ("correct", True, False)):
        pool = [row["path"] for row in rows if (row["label"] == row["predicted"]) == wanted]
        shown = gallery_paths(reported["html"], kind)
        assert len(shown) == min(GALLERY, len(pool)) > 0, kind
        assert set(shown) <= set(pool)
        values = [confidence[path] for path in shown]
        assert values == sorted(values, reverse=descending), kind
        rest = [confidence[path] for path in pool if path not in shown]
        if rest:  # the CSV rounds to 6 decimals: compare with that tolerance
            assert (min(values) >= max(rest) - 1e-6) if descending else (max(values) <= min(rest) + 1e-6)
    first = next(row for row in rows if row["path"] == gallery_paths(reported["html"], "mistake")[0])
    card = section(reported["html"], "gallery").split(f'data-path="{first["path"]}"')[1].split("</figure>")[0]
    assert f"true: <b>{first['label']}</b>" in card and f"predicted: <b>{first['predicted']}</b>" in card
    for name, column in (("predicted", first["predicted"]), ("true", first["label"])):
        shown = float(re.search(rf"p\({name}\) ([0-9.]+)", card).group(1))
        assert shown == pytest.approx(float(first[f"prob_{column}"]), abs=6e-4), name


def test_per_checkpoint_table_has_one_row_per_checkpoint(reported):
    text = section(reported["html"], "checkpoints")
    body = text.split("<tbody>")[1].split("</tbody>")[0]
    names = re.findall(r"<tr><td>([^<]+)</td>", body)
    assert names == run_checkpoints(reported["run"])


# --------------------------------------------------------------------------------------------- self-contained


def test_html_is_balanced_offline_and_every_image_decodes(reported):
    html = reported["html"]
    assert html.startswith("<!DOCTYPE html>")
    checker = check_html(html)
    for forbidden in ("http://", "https://", 'src="file', "<script", "<link"):
        assert forbidden not in html, forbidden
    # figures: training curves, 4 evaluation plots, metrics over epochs; thumbnails: two galleries
    assert len(checker.images) == 6 + 2 * GALLERY
    for source in checker.images:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        data = base64.b64decode(source[len(prefix):], validate=True)
        Image.open(io.BytesIO(data)).verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.width > 0 and image.height > 0


def test_renders_in_headless_chromium_with_every_image(reported, tmp_path):
    assert_renders(reported["html"], tmp_path, n_images=6 + 2 * GALLERY, window_size="1200,900")


# --------------------------------------------------------------------------------------------- other runs, errors


def test_run_without_thresholds_says_the_operating_point_is_not_set(reported, tmp_path, capsys):
    run = Path(shutil.copytree(reported["run"], tmp_path / "run", ignore=shutil.ignore_patterns("eval", "*.html")))
    (run / "thresholds.json").unlink()
    (run / "metrics.jsonl").unlink()
    out = tmp_path / "custom.html"
    assert main(["report", str(run), "--checkpoints", "none", "--gallery", "0", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    check_html(html)
    text = section(html, "operating-point")
    assert "Operating point not set" in text and "winnow tune" in text and "thresholds.json" in text
    assert "not available: no metrics.jsonl" in section(html, "training")
    assert "not available: turned off (--checkpoints none)" in section(html, "checkpoints")
    assert "not available: gallery turned off" in section(html, "gallery")
    assert "test split of run" in html  # DATA omitted: the run's test split
    assert not (run / "report.html").exists()


def test_default_path_for_the_test_split_is_run_report_html(reported, tmp_path):
    run = Path(shutil.copytree(reported["run"], tmp_path / "run", ignore=shutil.ignore_patterns("eval", "*.html")))
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(reported["run"] / "checkpoints", run / "checkpoints",
                    ignore=shutil.ignore_patterns("epoch*", "last.pt"))
    assert main(["report", str(run), "--gallery", "1"]) == 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert re.findall(r"<tr><td>([^<]+)</td>", section(html, "checkpoints").split("<tbody>")[1]) == ["best"]


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "is not a folder"),
    (lambda root: root, "is not a winnow run folder"),
])
def test_not_a_run_folder_is_a_clear_cli_error(tmp_path, capsys, make, message):
    (tmp_path / "notes.txt").write_text("not a run")
    code = main(["report", str(make(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2 and "winnow report: error:" in err and message in err
    assert not list(tmp_path.glob("*.html"))


def test_negative_gallery_is_refused_before_inference(reported, capsys):
    assert main(["report", str(reported["run"]), "--gallery", "-1"]) == 2
    assert "gallery: expected a number of images >= 0" in capsys.readouterr().err


def test_report_of_an_ensemble_folder(reported, tmp_path, capsys):
    folder = tmp_path / "ensemble"
    assert main(["ensemble", str(reported["run"]), "--method", "svm", "--out", str(folder)]) == 0
    assert main(["tune", str(folder), "--target", TARGET, "--data", str(reported["held"])]) == 0
    assert main(["report", str(folder), str(reported["held"]), "--gallery", "2"]) == 0
    html = (folder / "report-held.html").read_text(encoding="utf-8")
    checker = check_html(html)
    assert "svm of 1 member(s)" in section(html, "run")
    assert "Preprocessing (of the first member)" in html and "img_size" in section(html, "data")
    assert "not available" in section(html, "training") and "has no checkpoints of its own" in html
    assert "bootstrap interval" in section(html, "operating-point")
    assert len(checker.images) == 4 + 2 * 2  # 4 evaluation plots, two galleries of 2
