"""What produced a run: winnow version, git commit, library versions."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from winnow._version import __version__


def git_commit() -> str | None:
    """The commit of the winnow checkout, or None when not in a git checkout."""
    repo = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def provenance() -> dict[str, Any]:
    return {
        "winnow_version": __version__,
        "git_commit": git_commit(),
        "torch": _installed_version("torch"),
        "timm": _installed_version("timm"),
        "python": platform.python_version(),
    }


def _installed_version(package: str) -> str | None:
    """A package's version, without importing it here (runs/ stays light).

    Where a run or checkpoint is written the package is loaded already, and its `__version__` keeps the
    build tag (`2.14.1+cu130`) that the distribution metadata lacks.
    """
    module = sys.modules.get(package)
    if module is not None:
        return str(module.__version__)
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
