"""The search space of `winnow search`, and how a sampled point becomes a trial's config values.

Dimensions (a YAML file given with `--space` replaces any of them; `null` drops one):

    recipe: [default, baseline, longtail, finegrained]   # named recipes that fit the head kind
    lr: [0.0003, 0.01]                                    # log-uniform
    aug_strength: [0.0, 2.0]                              # uniform; scales the augmentation (below)
    img_size: [48, 64, 96]                                # around the data's median image size
    model: [resnet18, resnet34, efficientnet_b0]          # timm backbones built without weights

Precedence of a trial's values: Config defaults < the trial's recipe < the user's --config and flags <
the sampled values. A key the user fixes (e.g. `--lr 0.001`, `--recipe longtail`) is not searched.

Augmentation strength s multiplies `rotate`, `scale_jitter`, `brightness` and `contrast` (their value in
the recipe, else the `standard` preset of `winnow.data.augment_policy`: 15 degrees, 0.1, 0.1, 0.1), each
capped at `AUGMENTATION_CAPS`: s = 0 leaves flips only, s = 1 is the standard preset, s = 2 doubles it.
The default trial (winnow's default config) sits at s = 1 on imbalanced data and s = 0 on balanced data,
where `augment: auto` picks those presets. A recipe's `model: "gem:resnet18"` keeps
its family with the sampled backbone ("gem:resnet34").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from winnow.config import Config
from winnow.constraints import check_value
from winnow.data.augment_policy import STANDARD
from winnow.data.imageio import ImageReadError, probe
from winnow.recipes import DEFAULT, candidate_recipes, load_recipe

AUGMENTATION_CAPS = {"rotate": 180.0, "scale_jitter": 0.9, "brightness": 1.0, "contrast": 1.0}
DEFAULT_LR = (3e-4, 1e-2)
DEFAULT_AUG_STRENGTH = (0.0, 2.0)
DEFAULT_MODELS = ("resnet18", "resnet34", "efficientnet_b0")
SIZE_LADDER = (32, 48, 64, 96, 128, 160, 224, 288, 384)
DIMENSIONS = ("recipe", "lr", "aug_strength", "img_size", "model")
FIXED_BY = {"recipe": ("recipe",), "lr": ("lr",), "img_size": ("img_size",), "model": ("model",),
            "aug_strength": tuple(AUGMENTATION_CAPS)}  # user keys that take a dimension out of the search


@dataclass(frozen=True)
class SearchSpace:
    """The searched dimensions; None: not searched.

    Attributes:
        recipe: Recipe names (keys of `winnow.recipes.candidate_recipes`).
        lr: (low, high), sampled log-uniformly.
        aug_strength: (low, high), sampled uniformly.
        img_size: Image sizes.
        model: timm model names (backbones).
    """

    recipe: tuple[str, ...] | None = None
    lr: tuple[float, float] | None = None
    aug_strength: tuple[float, float] | None = None
    img_size: tuple[int, ...] | None = None
    model: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, list | None]:
        return {name: None if getattr(self, name) is None else list(getattr(self, name)) for name in DIMENSIONS}

    def searched(self) -> list[str]:
        return [name for name in DIMENSIONS if getattr(self, name) is not None]

    def without(self, fixed: Sequence[str]) -> SearchSpace:
        """This space less the dimensions that the user's keys `fixed` set (aug_strength: all four keys)."""
        dropped = {name: None for name, keys in FIXED_BY.items() if all(key in fixed for key in keys)}
        return SearchSpace(**{**{name: getattr(self, name) for name in DIMENSIONS}, **dropped})

    def suggest(self, trial) -> dict[str, Any]:
        """One point, drawn through an Optuna trial's `suggest_*` methods."""
        params: dict[str, Any] = {}
        if self.recipe is not None:
            params["recipe"] = trial.suggest_categorical("recipe", list(self.recipe))
        if self.lr is not None:
            params["lr"] = trial.suggest_float("lr", *self.lr, log=True)
        if self.aug_strength is not None:
            params["aug_strength"] = trial.suggest_float("aug_strength", *self.aug_strength)
        if self.img_size is not None:
            params["img_size"] = trial.suggest_categorical("img_size", list(self.img_size))
        if self.model is not None:
            params["model"] = trial.suggest_categorical("model", list(self.model))
        return params

    def contains(self, name: str, value: Any) -> bool:
        """Whether `value` is a point of dimension `name`."""
        bounds = getattr(self, name)
        if bounds is None:
            return False
        if name in ("lr", "aug_strength"):
            return bounds[0] <= value <= bounds[1]
        return value in bounds


def space_from_dict(values: Mapping[str, Any], *, base: SearchSpace, source: str = "search space") -> SearchSpace:
    """`base` with the dimensions in `values` replaced (None drops one).

    Raises:
        ValueError: An unknown dimension, or a malformed range or list (the message says which).
    """
    check_value(source, values, [Mapping], hint="write it as `dimension: values` pairs, e.g. {lr: [0.001, 0.01]}")
    unknown = sorted(set(values) - set(DIMENSIONS))
    if unknown:
        raise ValueError(f"{source}: unknown dimension(s) {unknown}; valid ones: {', '.join(DIMENSIONS)}")
    merged = {name: getattr(base, name) for name in DIMENSIONS}
    for name, value in values.items():
        merged[name] = None if value is None else _dimension(name, value, source)
    return SearchSpace(**merged)


def load_space(path: str | Path) -> dict[str, Any]:
    """The dimensions in a `--space` YAML file (checked by `space_from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"search space file {path} does not exist; pass a YAML file of dimensions, e.g. "
                         "`lr: [0.0003, 0.01]`")
    values = yaml.safe_load(path.read_text()) or {}
    check_value(f"search space file {path}", values, [dict], hint="write one `dimension: values` per line")
    return values


def _dimension(name: str, value: Any, source: str) -> tuple:
    if name in ("lr", "aug_strength"):
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
              and 0 <= value[0] <= value[1] and (name != "lr" or value[0] > 0))
        if not ok:
            raise ValueError(f"{source}: {name} must be [low, high] with 0 {'<' if name == 'lr' else '<='} low "
                             f"<= high, e.g. {list(DEFAULT_LR if name == 'lr' else DEFAULT_AUG_STRENGTH)}; "
                             f"got {value!r}")
        return tuple(float(v) for v in value)
    kind = int if name == "img_size" else str
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, kind) and v for v in value):
        raise ValueError(f"{source}: {name} must be a non-empty list of {kind.__name__}s, got {value!r}")
    if name == "recipe":
        _check_recipes(value, source)
    return tuple(dict.fromkeys(value))


def _check_recipes(names: Sequence[str], source: str) -> None:
    known = candidate_recipes("multiclass")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{source}: unknown recipe(s) {unknown} in `recipe`; candidates: {', '.join(known)}")


def default_space(*, head: str, median_size: int | None, img_size: int = Config.img_size) -> SearchSpace:
    """Every dimension: the recipes that fit `head`, lr, augmentation, sizes around `median_size`, DEFAULT_MODELS."""
    return SearchSpace(recipe=tuple(candidate_recipes(head)), lr=DEFAULT_LR, aug_strength=DEFAULT_AUG_STRENGTH,
                       img_size=sizes_around(median_size, include=img_size), model=DEFAULT_MODELS)


def sizes_around(median_size: int | None, *, include: int) -> tuple[int, ...]:
    """The SIZE_LADDER rung nearest `median_size` and its neighbours, plus `include` (the config's size)."""
    if median_size is None:
        return (include,)
    nearest = min(range(len(SIZE_LADDER)), key=lambda i: abs(SIZE_LADDER[i] - median_size))
    rungs = SIZE_LADDER[max(0, nearest - 1): nearest + 2]
    return tuple(sorted({*rungs, include}))


def median_image_size(paths: Sequence[str], *, max_files: int = 200,
                      max_pixels: int = Config.max_image_pixels) -> int | None:
    """Median of max(width, height) over up to `max_files` evenly spaced files (headers only); None if none reads."""
    step = max(1, len(paths) // max_files)
    sizes = []
    for path in list(paths)[::step][:max_files]:
        try:
            header = probe(path, max_pixels=max_pixels)
        except ImageReadError:  # the training scan reports bad files; a size sample can do without them
            continue
        sizes.append(max(header.width, header.height))
    return int(median(sizes)) if sizes else None


def trial_values(params: Mapping[str, Any], user_values: Mapping[str, Any], *, recipe: str | None = None,
                 head: str = "multiclass") -> dict[str, Any]:
    """Config values of one trial: recipe < user values < sampled params.

    Args:
        params: The sampled point (`SearchSpace.suggest`).
        user_values: The user's config values (--config file and flags), data included.
        recipe: The recipe (a name or a YAML file) when it is not searched (None: "default").
        head: The head kind, for the recipe candidates.
    """
    base = _recipe_values(params["recipe"], head) if "recipe" in params else load_recipe(recipe or DEFAULT)
    values = {**base, **user_values}
    if "lr" in params:
        values["lr"] = float(params["lr"])
    if "img_size" in params:
        values["img_size"] = int(params["img_size"])
    if "model" in params:
        values["model"] = with_family(base.get("model", _default("model")), params["model"])
    if "aug_strength" in params:
        for key, cap in AUGMENTATION_CAPS.items():
            if key not in user_values:
                start = base.get(key) if base.get(key) is not None else STANDARD[key]
                values[key] = round(min(cap, float(start) * float(params["aug_strength"])), 6)
    return values


def _recipe_values(name: str, head: str) -> dict[str, Any]:
    candidates = candidate_recipes(head)
    if name not in candidates:
        raise ValueError(f"recipe {name!r} does not fit a {head} head; candidates: {', '.join(candidates)}")
    return dict(candidates[name])


def with_family(recipe_model: str, backbone: str) -> str:
    """`backbone`, under the recipe model's family when it has one ("gem:resnet18", "resnet34" -> "gem:resnet34")."""
    family, _, rest = str(recipe_model).partition(":")
    return f"{family}:{backbone}" if rest and ":" not in backbone else backbone


def default_point(space: SearchSpace, user_values: Mapping[str, Any], *, aug_strength: float = 1.0) -> dict[str, Any]:
    """The point of `space` that is winnow's default config (first trial of a new search), where it lies in it.

    `aug_strength`: that of the default augmentation on this data (`TrialPlan.default_aug_strength`).
    """
    wanted = {"recipe": DEFAULT, "lr": user_values.get("lr", _default("lr")), "aug_strength": aug_strength,
              "img_size": user_values.get("img_size", _default("img_size")),
              "model": user_values.get("model", _default("model"))}
    return {name: value for name, value in wanted.items() if space.contains(name, value)}


def _default(key: str) -> Any:
    (found,) = [f for f in fields(Config) if f.name == key]
    return found.default if found.default is not MISSING else found.default_factory()
