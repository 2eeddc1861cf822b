"""`winnow eval RUN --embeddings` and the report's Embeddings section, on a tiny three-class run."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import winnow
from winnow.cli.main import main
from winnow.embeddings.extract import embed
from winnow.embeddings.quality import embedding_quality
from winnow.evaluation.embedding_eval import embedding_model, read_map, skip_reason

from conftest import fast_config, make_image_folder

SCORES = ("precision_at_1", "r_precision", "mean_average_precision_at_r", "nmi")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A trained three-class run and `winnow eval RUN DATA --embeddings` on its data."""
    root = tmp_path_factory.mktemp("embq")
    data = make_image_folder(root / "data", per_class=10)
    run = winnow.train(fast_config(root, data, epochs=2, name="three")).path
    return {"run": run, "data": data, "root": root}


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def embeddings_section(path: Path) -> str:
    """The `<section id="embeddings">` of a report."""
    return re.search(r'<section id="embeddings">(.*?)</section>', path.read_text(), flags=re.DOTALL).group(1)


@pytest.fixture(scope="module")
def evaluated(three):
    code = main(["eval", str(three["run"]), str(three["data"]), "--embeddings"])
    assert code == 0
    directory = three["run"] / "eval" / "data" / "best"
    return {**three, "directory": directory, "metrics": json.loads((directory / "metrics.json").read_text())}


def test_eval_embeddings_block_matches_the_metrics_of_winnow_embed(evaluated):
    block = evaluated["metrics"]["embedding"]
    reference = embed(evaluated["run"], evaluated["data"])
    expected = embedding_quality(reference.embeddings, reference.labels)
    for key in (*SCORES, "n_samples", "n_classes", "dim"):
        assert block[key] == pytest.approx(expected[key], abs=1e-5), key
    assert block["n_samples"] == 30 and block["map"] == {"method": block["map"]["method"], "n_points": 30,
                                                         "file": "embedding_map.npz"}


def test_eval_prints_one_embedding_line(three, capsys):
    code, out, _ = cli(capsys, "eval", three["run"], three["data"], "--embeddings", "--no-plots")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("embedding:")]
    assert len(lines) == 1 and re.search(r"precision@1 \d\.\d{4}  R-precision .* MAP@R .* NMI ", lines[0])
    assert "30 images, D=" in lines[0]


def test_map_file_marks_the_classifier_mistakes(evaluated):
    saved = read_map(evaluated["directory"] / "embedding_map.npz")
    assert saved["coordinates"].shape == (30, 2) and np.isfinite(saved["coordinates"]).all()
    with open(evaluated["directory"] / "predictions.csv", newline="") as handle:
        wrong = {row["path"]: row["label"] != row["predicted"] for row in csv.DictReader(handle)}
    assert [wrong[path] for path in saved["paths"]] == saved["mistakes"].tolist()
    assert saved["meta"]["checkpoint_fingerprint"] == evaluated["metrics"]["checkpoint"]["fingerprint"]
    assert (evaluated["directory"] / "embedding_map.png").stat().st_size > 1000


def test_without_the_flag_there_is_no_block(three, tmp_path):
    run = Path(shutil.copytree(three["run"], tmp_path / "run"))
    shutil.rmtree(run / "eval", ignore_errors=True)
    assert main(["eval", str(run), str(three["data"]), "--no-plots"]) == 0
    metrics = json.loads((run / "eval" / "data" / "best" / "metrics.json").read_text())
    assert "embedding" not in metrics and not (run / "eval" / "data" / "best" / "embedding_map.npz").exists()


def test_report_shows_the_embeddings_section_with_its_map(evaluated, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(evaluated["run"]), str(evaluated["data"]), "--checkpoints", "none",
                 "--gallery", "0", "--out", str(out)]) == 0  # no --embeddings: the map eval saved
    body = embeddings_section(out)
    block = evaluated["metrics"]["embedding"]
    assert f"<th>mean_average_precision_at_r</th><td class=\"num\">{block['mean_average_precision_at_r']:.4f}" in body
    assert '<img src="data:image/png;base64,' in body and "x: the classifier" in body


def test_report_without_a_map_says_how_to_get_one(three, tmp_path, capsys):
    run = Path(shutil.copytree(three["run"], tmp_path / "run"))
    shutil.rmtree(run / "eval", ignore_errors=True)
    code, _, _ = cli(capsys, "report", run, three["data"], "--checkpoints", "none", "--gallery", "0")
    assert code == 0
    body = embeddings_section(run / "report-data.html")
    assert "not available" in body and "--embeddings" in body and "<img" not in body
    code, _, _ = cli(capsys, "report", run, three["data"], "--checkpoints", "none", "--gallery", "0", "--embeddings")
    assert code == 0
    assert "<img" in embeddings_section(run / "report-data.html")


def test_report_refuses_a_map_of_another_checkpoint_state(evaluated, tmp_path):
    run = Path(shutil.copytree(evaluated["run"], tmp_path / "run"))
    path = run / "eval" / "data" / "best" / "embedding_map.npz"
    saved = read_map(path)
    np.savez(path, **{key: saved[key] for key in ("coordinates", "labels", "mistakes", "paths")},
             meta=np.asarray(json.dumps({**saved["meta"], "checkpoint_fingerprint": "retrained"})))
    assert main(["report", str(run), str(evaluated["data"]), "--checkpoints", "none", "--gallery", "0"]) == 0
    body = embeddings_section(run / "report-data.html")
    assert "written for another state of the checkpoint" in body and "<img" not in body


def test_a_single_class_is_skipped_with_the_reason(three, tmp_path, capsys):
    one = tmp_path / "one"
    shutil.copytree(three["data"] / "disk", one / "disk")
    code, out, _ = cli(capsys, "eval", three["run"], one, "--embeddings", "--no-plots")
    assert code == 0
    assert "embedding: skipped: the evaluated images hold a single class (10 images)" in out


def test_too_few_images_per_class_are_skipped_with_the_reason():
    assert "every class has a single evaluated image" in skip_reason(object(), np.array([0, 1, 2]))
    assert "a single class (2 images)" in skip_reason(object(), np.array([1, 1]))
    assert skip_reason(object(), np.array([0, 0, 1])) == ""


def test_an_ensemble_of_several_runs_is_skipped_and_checkpoint_all_is_refused(three, capsys):
    class Ensemble:  # any scoring model with several member runs
        run_dir, members = Path("ens"), [object(), object()]

    model, reason = embedding_model(Ensemble())
    assert model is None and "ens is an ensemble of 2 runs" in reason and "evaluate a member run" in reason
    code, _, err = cli(capsys, "eval", three["run"], three["data"], "--embeddings", "--checkpoint", "all")
    assert code != 0 and "--embeddings scores one checkpoint; drop --checkpoint all" in err


def test_a_head_on_embeddings_is_scored_on_its_member_embeddings(evaluated, capsys):
    code, out, _ = cli(capsys, "head", evaluated["run"], "--kind", "centroid")
    assert code == 0, out
    head = evaluated["run"].with_name("three-head-centroid")
    code, out, _ = cli(capsys, "eval", head, evaluated["data"], "--embeddings", "--no-plots")
    assert code == 0
    block = json.loads((head / "eval" / "data" / "best" / "metrics.json").read_text())["embedding"]
    assert block["source"].startswith("member 0 (") and "embedding of member 0" in out
    for key in SCORES:  # the same model on the same images
        assert block[key] == pytest.approx(evaluated["metrics"]["embedding"][key]), key
