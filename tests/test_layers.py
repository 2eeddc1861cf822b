"""The package's structure: a light face, and a layers contract that names every package."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import winnow

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "winnow.training", "winnow.models")


def loaded_after(statement: str) -> dict:
    """Run `statement` in a fresh interpreter; return which heavy modules it loaded and its printed value."""
    code = (f"import sys, json\n{statement}\n"
            f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], 'value': VALUE}}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_winnow_loads_no_torch_and_knows_its_version():
    outcome = loaded_after("import winnow\nVALUE = winnow.__version__")
    assert outcome["heavy"] == []
    assert outcome["value"] == winnow.__version__ and outcome["value"].count(".") == 2


@pytest.mark.parametrize("module", ["winnow.metrics", "winnow.metrics.report", "winnow.metrics.plots",
                                    "winnow.metrics.checks", "winnow.runs.layout", "winnow.runs.files",
                                    "winnow.runs.listing"])
def test_ground_floor_modules_load_no_torch(module):
    assert loaded_after(f"import {module}\nVALUE = None")["heavy"] == []


def test_provenance_names_versions_without_importing_torch():
    outcome = loaded_after("from winnow.runs.provenance import provenance\nVALUE = provenance()")
    assert outcome["heavy"] == []
    assert outcome["value"]["winnow_version"] == winnow.__version__
    assert outcome["value"]["torch"] and outcome["value"]["timm"]


def test_lazy_attributes_resolve_to_the_library_objects():
    from winnow.config import Config
    from winnow.loading import load
    from winnow.training.trainer import Run, train

    assert (winnow.Config, winnow.load, winnow.Run, winnow.train) == (Config, load, Run, train)
    assert {"Config", "Run", "load", "train"} <= set(dir(winnow))


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        winnow.trian  # noqa: B018


def contract_layers() -> list[list[str]]:
    """The layers contract of pyproject.toml: per layer, its package names (optional ones unwrapped)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [[name.strip().strip("()") for name in layer.split("|")] for layer in layers]


def test_layers_contract_names_every_package_once():
    named = [name for layer in contract_layers() for name in layer]
    assert len(named) == len(set(named))
    packages = {p.parent.name for p in (ROOT / "winnow").glob("*/__init__.py")}
    modules = {p.stem for p in (ROOT / "winnow").glob("*.py") if p.stem != "__init__"}
    missing = sorted((packages | modules) - set(named))
    assert not missing, f"add {missing} to the layers contract in pyproject.toml at their height"


def test_layers_leave_room_for_the_packages_to_come():
    named = {name for layer in contract_layers() for name in layer}
    assert {"embeddings", "audit", "active", "pu", "serve"} <= named
    heights = {name: height for height, layer in enumerate(contract_layers()) for name in layer}
    assert heights["cli"] == 0
    assert heights["serve"] < heights["loading"] < heights["ensembles"] < heights["inference"] < heights["training"]
    assert heights["metrics"] > heights["tasks"] and heights["runs"] > heights["metrics"]
