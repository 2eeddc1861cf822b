"""Every CLI flag, declared once: the Config fields as flags, and the flags the commands share.

Config flags are generated from the Config fields (YAML and flags share one schema). Shared flags
(`--checkpoint`, `--batch-size`, `--workers`, `--device`, `--tta`, `--confidence`...) have one
declaration and one help text in `SHARED_FLAGS`; a command adds the ones it takes with `add_flags`.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import yaml

from winnow.active.pseudo import parse_levels
from winnow.config import Config, from_dict, load_yaml
from winnow.embeddings.oversample import OVERSAMPLERS
from winnow.inference.tta import MERGES

POSITIONAL = ("data",)  # given as positional DATA arguments instead


def _parser_for(annotation: str):
    """argparse `type` for a field annotation written as a string."""
    if "dict" in annotation or "list[float]" in annotation:
        return _yaml_value  # e.g. --loss-params "{gamma: 2}" or --class-weights "[1, 2, 5]"
    if annotation.startswith("bool"):
        return None
    if annotation.startswith("int | str"):
        return lambda text: int(text) if text.isdigit() else text
    if annotation.startswith("float | str"):
        return _number_or_text  # e.g. --prior 0.4 or --prior auto
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _yaml_value(text: str) -> Any:
    return yaml.safe_load(text)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One `--kebab-case` flag per Config field; unset flags stay None (no override)."""
    group = parser.add_argument_group("config keys (also settable in --config YAML)")
    for f in fields(Config):
        if f.name in POSITIONAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else f.default_factory()
        help_text = f"(default: {default})"
        if str(f.type).startswith("bool"):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif str(f.type).startswith("list[int]"):
            group.add_argument(flag, dest=f.name, nargs="+", type=int, default=None, help=help_text)
        elif str(f.type).startswith("list[str]"):  # paths: --val A B, or --val A --val B
            group.add_argument(flag, dest=f.name, nargs="+", action="extend", default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=_parser_for(str(f.type)), default=None, help=help_text)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys set on the command line."""
    names = {f.name for f in fields(Config)} - set(POSITIONAL)
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def config_values(args: argparse.Namespace, *, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config keys the user gave: recipe/base < YAML file < DATA and flags (no defaults)."""
    values = dict(base or {})
    if getattr(args, "config", None):
        values.update(load_yaml(args.config))
    if getattr(args, "data", None):
        values["data"] = list(args.data)
    values.update(flag_overrides(args))
    return values


def build_config(args: argparse.Namespace, *, base: dict[str, Any] | None = None) -> Config:
    """Defaults < recipe/base < YAML file < command-line flags."""
    return from_dict(config_values(args, base=base), source=getattr(args, "config", None) or "command line")


DATA_HELP = ("labelled data: a folder of class folders, a split tree, a CSV manifest, or train/val/test "
             "(that split of the run)")
RUN_HELP = "run folder from `winnow train` (or an ensemble folder from `winnow ensemble`)"


@dataclass(frozen=True)
class Flag:
    """One shared flag: its option string and `add_argument` keywords (help included)."""

    option: str
    settings: dict[str, Any] = field(default_factory=dict)


SHARED_FLAGS: dict[str, Flag] = {
    "checkpoint": Flag("--checkpoint", {
        "metavar": "NAME", "default": "best",
        "help": "checkpoint: best, last, another checkpoint name (epoch0003, swa, selected...) or a .pt path "
                "(default: best)"}),
    "batch_size": Flag("--batch-size", {
        "metavar": "N", "type": int, "default": 64, "help": "images per forward pass (default: 64)"}),
    "workers": Flag("--workers", {
        "metavar": "N", "type": int, "default": 0,
        "help": "data-loading workers (default: 0, load in the main process): processes for a GPU model, "
                "threads of this process for a CPU model, whose forward pass already has every core"}),
    "device": Flag("--device", {
        "metavar": "DEVICE", "default": "auto", "help": "auto, cpu, cuda, cuda:1... (default: auto)"}),
    "tta": Flag("--tta", {
        "metavar": "VIEWS", "default": None,
        "help": "test-time augmentation: none, flips, d4 or N random views (default: the run's `tta` config key, "
                "none for ensembles and heads)"}),
    "tta_merge": Flag("--tta-merge", {
        "default": "mean", "choices": MERGES, "help": "merge TTA views by mean or geometric mean (default: mean)"}),
    "n_bootstrap": Flag("--n-bootstrap", {
        "metavar": "N", "type": int, "default": 1000, "help": "bootstrap samples of the interval (default: 1000)"}),
    "confidence": Flag("--confidence", {
        "metavar": "LEVEL", "type": float, "default": 0.95,
        "help": "coverage of the bootstrap interval (default: 0.95)"}),
    "min_support": Flag("--min-support", {
        "metavar": "N", "type": int, "default": 20,
        "help": "warn when the target's class has fewer samples than this (default: 20)"}),
    "thresholds": Flag("--thresholds", {
        "metavar": "PATH", "default": None,
        "help": "thresholds file to apply (default: RUN/thresholds.json when present)"}),
    "no_thresholds": Flag("--no-thresholds", {"action": "store_true", "help": "ignore RUN/thresholds.json"}),
    "no_calibration": Flag("--no-calibration", {"action": "store_true", "help": "ignore RUN/calibration.json"}),
    "reject_tpr": Flag("--reject-tpr", {
        "metavar": "TPR", "type": float, "default": None,
        "help": "fit a reject option: images far from every class are predicted 'unknown', the threshold set so "
                "that this share of known-class images (--reject-data) is accepted, e.g. 0.95 (default: none)"}),
    "oversample": Flag("--oversample", {
        "default": "none", "choices": list(OVERSAMPLERS),
        "help": "synthetic samples of the rarer classes, interpolated in embedding space inside each "
                "cross-validation fold's fit and the final fit (imbalanced-learn): smote, adasyn (more near hard "
                "samples), borderline (near other classes) or none (default)"}),
    "reject_data": Flag("--reject-data", {
        "metavar": "DATA", "default": None,
        "help": "labelled images of the known classes to fit the reject option on, not the fit images "
                "(default: val split of RUN)"}),
    "embeddings": Flag("--embeddings", {
        "action": "store_true", "help": "also score the model's embeddings (precision@1, R-precision, MAP@R, NMI) "
                                        "and draw their 2-D map; one more pass over the images"}),
    "levels": Flag("--levels", {
        "type": parse_levels, "default": parse_levels("0.95:1.0"), "metavar": "P:W,...",
        "help": "target precision on val and the weight of pseudo-labels above it, strictest first, "
                "e.g. 0.98:1.0,0.9:0.5 (default: 0.95:1.0)"}),
    "max_tilt": Flag("--max-tilt", {
        "type": float, "default": 2.0, "metavar": "X",
        "help": "no class keeps more than X times its training share of pseudo-labels relative to the least "
                "served class (default: 2)"}),
    "min_keep": Flag("--min-keep", {
        "type": int, "default": 10, "metavar": "N",
        "help": "every class may keep at least N pseudo-labels whatever the cap (default: 10)"}),
    "strict": Flag("--strict", {
        "action": "store_true",
        "help": "stop with an error when any image cannot be read (default: skip it, list it in a "
                "bad_files.csv beside the output and go on)"}),
}
INFERENCE_FLAGS = ("device", "batch_size", "workers", "strict")  # every job that reads images takes them
TTA_FLAGS = ("tta", "tta_merge")
OPERATING_FLAGS = ("thresholds", "no_thresholds", "no_calibration")
INTERVAL_FLAGS = ("n_bootstrap", "confidence", "min_support")
REJECT_FLAGS = ("reject_tpr", "reject_data")  # the reject option of a head on embeddings
HEAD_FLAGS = ("oversample", *REJECT_FLAGS)  # the fit of a head on embeddings
PSEUDO_FLAGS = ("levels", "max_tilt", "min_keep")  # pseudo-labels (winnow.active.pseudo)


def add_flags(parser: argparse.ArgumentParser, *names: str, help_suffix: dict[str, str] | None = None) -> None:
    """Add the shared flags `names` (keys of `SHARED_FLAGS`) to `parser`.

    Args:
        parser: The command's parser.
        names: Flags to add, in order.
        help_suffix: Text appended to a flag's help where one command accepts more (e.g. `--checkpoint all`).
    """
    unknown = sorted(set(names) - set(SHARED_FLAGS))
    if unknown:
        raise KeyError(f"unknown shared flag(s) {unknown}; declared: {sorted(SHARED_FLAGS)}")
    for name in names:
        flag = SHARED_FLAGS[name]
        settings = dict(flag.settings)
        if help_suffix and name in help_suffix:
            settings["help"] += help_suffix[name]
        parser.add_argument(flag.option, dest=name, **settings)


def settings_of(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """`{name: value}` of the parsed flags `names`, as keyword arguments of the library call."""
    return {name: getattr(args, name) for name in names}


def operating_settings(args: argparse.Namespace) -> dict[str, Any]:
    """`calibration=` and `thresholds=` arguments of `winnow.load` from the operating flags."""
    thresholds = args.thresholds if args.thresholds else not args.no_thresholds
    return {"calibration": not args.no_calibration, "thresholds": thresholds}
