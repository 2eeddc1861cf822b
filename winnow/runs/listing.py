"""The table behind `winnow runs`: one row per run folder."""

from __future__ import annotations

from pathlib import Path

from winnow.runs.files import read_json
from winnow.runs.layout import SUMMARY_FILE, dataset_name

COLUMNS = ("name", "model", "data", "epochs", "best", "best_epoch", "test_acc", "time", "status")


def run_rows(root: str | Path) -> list[dict[str, str]]:
    """Rows for every run folder under `root` that has a summary.json, newest first."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"runs folder {root} does not exist; train a model first or pass --dir")
    summaries = sorted(root.glob(f"*/{SUMMARY_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [_row(read_json(path, what="summary")) for path in summaries]


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


def format_table(rows: list[dict[str, str]]) -> str:
    """Plain aligned text table."""
    if not rows:
        return "no runs found"
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
