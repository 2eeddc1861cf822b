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
    "staged": RECIPE_DIR / "staged.yaml",  # a `winnow pretrain` encoder: frozen, then unfrozen with center loss
}
AUTO = "auto"  # `winnow train --recipe auto`: a pilot of the candidates below picks one
DEFAULT = "default"  # the candidate that is no recipe: Config's own defaults
# Candidates of `--recipe auto` and of `winnow search`: the recipes that train from scratch
# (fewshot and staged need pretrained weights) whose loss suits the head's targets.
FROM_SCRATCH = ("baseline", "longtail", "finegrained")
LABEL_LOSSES = ("auto", "bce", "asymmetric")  # the losses that take binary and multi-label targets


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """Config values of a named recipe or of a YAML file path ("default": none, Config's defaults)."""
    if name_or_path == DEFAULT:
        return {}
    if name_or_path in RECIPES:
        return load_yaml(RECIPES[name_or_path])
    if name_or_path == AUTO:
        raise ValueError("recipe 'auto' is not a file: `winnow train --recipe auto` runs a pilot of the candidate "
                         "recipes and trains the winner; elsewhere name a recipe "
                         f"({', '.join(RECIPES)}) or a .yaml file")
    if Path(name_or_path).suffix in (".yaml", ".yml"):
        return load_yaml(name_or_path)
    raise ValueError(f"unknown recipe {name_or_path!r}; valid recipes: {', '.join(RECIPES)}, {AUTO} (train only) "
                     "or a path to a .yaml file")


def candidate_recipes(head: str) -> dict[str, dict[str, Any]]:
    """`{name: config values}` of "default" and of each recipe in FROM_SCRATCH that fits `head`.

    Args:
        head: "multiclass", "binary", "multilabel" or "multitask"; the recipes' losses (ce, ldam) need
            class-index targets, so only multiclass heads get them.
    """
    candidates = {DEFAULT: {}}
    for name in FROM_SCRATCH:
        values = load_recipe(name)
        if head == "multiclass" or values.get("loss", "auto") in LABEL_LOSSES:
            candidates[name] = values
    return candidates
