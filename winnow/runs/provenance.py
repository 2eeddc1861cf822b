"""What produced a run: winnow version, git commit, library versions."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import timm
import torch

import winnow


def git_commit() -> str | None:
    """The commit of the winnow checkout, or None when not in a git checkout."""
    repo = Path(winnow.__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def provenance() -> dict[str, Any]:
    return {
        "winnow_version": winnow.__version__,
        "git_commit": git_commit(),
        "torch": str(torch.__version__),
        "timm": timm.__version__,
        "python": platform.python_version(),
    }
