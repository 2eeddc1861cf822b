"""CLI flags generated from the Config fields: every key is a flag, YAML and flags share one schema."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any

import yaml

from winnow.config import Config, from_dict, load_yaml

POSITIONAL = ("data",)  # given as positional DATA arguments instead


def _parser_for(annotation: str):
    """argparse `type` for a field annotation written as a string."""
    if "dict" in annotation or "list[float]" in annotation:
        return _yaml_value  # e.g. --loss-params "{gamma: 2}" or --class-weights "[1, 2, 5]"
    if annotation.startswith("bool"):
        return None
    if annotation.startswith("int | str"):
        return lambda text: int(text) if text.isdigit() else text
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


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
        elif str(f.type).startswith("list") and "dict" not in str(f.type):
            item = int if "int" in str(f.type) else str
            group.add_argument(flag, dest=f.name, nargs="+", type=item, default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=_parser_for(str(f.type)), default=None, help=help_text)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys set on the command line."""
    names = {f.name for f in fields(Config)} - set(POSITIONAL)
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def build_config(args: argparse.Namespace, *, base: dict[str, Any] | None = None) -> Config:
    """Defaults < recipe/base < YAML file < command-line flags."""
    values = dict(base or {})
    if getattr(args, "config", None):
        values.update(load_yaml(args.config))
    if getattr(args, "data", None):
        values["data"] = list(args.data)
    values.update(flag_overrides(args))
    return from_dict(values, source=getattr(args, "config", None) or "command line")
