"""Named training recipes: plain YAML config files a user can copy and edit (`--recipe NAME`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winnow.config import load_yaml

RECIPE_DIR = Path(__file__).resolve().parent
RECIPES: dict[str, Path] = {
    "baseline": RECIPE_DIR / "baseline.yaml",
    "longtail": RECIPE_DIR / "longtail.yaml",
    "finegrained": RECIPE_DIR / "finegrained.yaml",
    "fewshot": RECIPE_DIR / "fewshot.yaml",
}


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """Config values of a named recipe or of a YAML file path."""
    if name_or_path in RECIPES:
        return load_yaml(RECIPES[name_or_path])
    if Path(name_or_path).suffix in (".yaml", ".yml"):
        return load_yaml(name_or_path)
    raise ValueError(f"unknown recipe {name_or_path!r}; valid recipes: {', '.join(RECIPES)} or a path to a .yaml file")
