"""The table behind `winnow runs`: one row per run folder (in a search folder, with its trial and value)."""

from __future__ import annotations

import csv
from pathlib import Path

from winnow.runs.files import read_json
from winnow.runs.layout import ENSEMBLE_FILE, SUMMARY_FILE, TRIALS_FILE, dataset_name

COLUMNS = ("name", "model", "data", "epochs", "best", "best_epoch", "test_acc", "time", "status")
TRIAL_COLUMNS = ("trial", "objective")  # added for the run folders of a search (`winnow search`)


def run_rows(root: str | Path) -> list[dict[str, str]]:
    """Rows for every run folder (summary.json) and ensemble or head folder (ensemble.json) under `root`, newest first.

    In a search folder (one with trials.csv) each trial's run also gets its trial number and objective value.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"runs folder {root} does not exist; train a model first or pass --dir")
    files = [*root.glob(f"*/{SUMMARY_FILE}"), *root.glob(f"*/{ENSEMBLE_FILE}")]
    rows = [_row(read_json(path, what="summary")) if path.name == SUMMARY_FILE
            else _ensemble_row(path.parent.name, read_json(path, what="ensemble"))
            for path in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)]
    trials = _trials_by_folder(root / TRIALS_FILE)
    if trials:
        for row in rows:
            number, value = trials.get(row["name"], ("-", "-"))
            row.update(trial=number, objective=value)
    return rows


def _trials_by_folder(path: Path) -> dict[str, tuple[str, str]]:
    """Run folder name -> (trial number, objective value) from a search's trials.csv ({} without one)."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {Path(row["run"]).name: (row["number"], _value(row["value"])) for row in rows if row.get("run")}


def _value(text: str) -> str:
    try:
        return f"{float(text):.4f}"
    except ValueError:
        return text or "-"


def _row(summary: dict) -> dict[str, str]:
    best = summary.get("best_metric")
    test = summary.get("test") or {}
    data = ",".join(dataset_name(d) for d in summary.get("data", []))
    return {
        "name": summary["name"], "model": summary["model"], "data": data,
        "epochs": f"{summary['epochs_done']}/{summary['epochs']}",
        "best": f"{summary['select_metric']}={best:.4f}" if best is not None else "-",
        "best_epoch": str(summary.get("best_epoch") or "-"),
        "test_acc": f"{test['test_accuracy']:.4f}" if "test_accuracy" in test else "-",
        "time": f"{summary.get('elapsed_s', 0):.0f}s", "status": summary["status"],
    }


def _ensemble_row(name: str, ensemble: dict) -> dict[str, str]:
    """An ensemble (mean, vote, stack) or a head on embeddings (method svm, its kind in the fit report)."""
    method = ensemble.get("method", "?")
    kind = ((ensemble.get("fit") or {}).get("report") or {}).get("classifier")
    members = ensemble.get("members", [])
    return {"name": name, "model": f"head:{kind}" if kind else f"ensemble:{method}", "data": "-", "epochs": "-",
            "best": "-", "best_epoch": "-", "test_acc": "-", "time": "-",
            "status": f"{len(members)} member{'s' if len(members) != 1 else ''}"}


def format_table(rows: list[dict[str, str]]) -> str:
    """Plain aligned text table (with the trial columns when the rows have them)."""
    if not rows:
        return "no runs found"
    columns = (*(c for c in TRIAL_COLUMNS if c in rows[0]), *COLUMNS)
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
