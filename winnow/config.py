"""The one configuration object of a training run, its YAML form and its validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from winnow.runs.atomic import atomic_write_text

OPTIMIZERS = ("sgd", "adamw", "radam", "lookahead_radam")
SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CHANNEL_MODES = ("auto", 1, 3)
SELECT_METRICS = ("val_macro_f1", "val_accuracy", "val_balanced_accuracy", "val_loss")
NORMALIZE_MODES = ("auto", "dataset", "imagenet", "none")
VERIFY_MODES = ("auto", "header", "full")
HEAD_KINDS = ("multiclass", "binary", "multilabel", "multitask")


@dataclass
class Config:
    """Every setting of a run; YAML files and CLI flags override the defaults."""

    # data
    data: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int | None = None  # None: `seed`; fix it to train several seeds on one split (ensembles)
    skip_bad: bool = False
    verify: str = "auto"
    max_image_pixels: int = 178_956_970
    cache: bool | None = None
    cache_memory_mb: int = 2048
    cache_dir: str | None = None
    workers: int = 2
    # preprocessing and augmentation
    img_size: int = 64
    in_chans: int | str = "auto"
    fill: int = 0
    autolevel: bool = False
    automask: bool = False
    hflip: float = 0.5
    vflip: float = 0.5
    rotate: float = 15.0
    scale_jitter: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.1
    randaugment: bool = False
    random_erasing: float = 0.0
    normalize: str = "auto"
    # model
    model: str = "resnet18"
    stem: str = "default"
    head: str = "multiclass"
    positive_class: str | None = None
    threshold: float = 0.5
    tasks: list[dict] = field(default_factory=list)
    pretrained: str | None = None
    freeze: str | None = None
    unfreeze_at: int | None = None
    drop_rate: float = 0.0
    # loss and sampling
    loss: str = "auto"
    loss_params: dict = field(default_factory=dict)
    label_smoothing: float = 0.0
    class_weights: str | list[float] = "none"
    class_weights_epoch: int | None = None
    effective_beta: float = 0.999
    sampler: str = "sqrt"  # won bench/recipes.py on average over the three real data sets
    sampler_params: dict = field(default_factory=dict)
    sampler_epoch: int | None = None
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    # optimisation
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_epochs: int = 1
    milestones: list[int] = field(default_factory=list)
    step_gamma: float = 0.1
    grad_clip: float | None = None
    accumulate: int = 1
    ema: bool = False
    ema_decay: float = 0.999
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    # run folder
    name: str | None = None
    out: str = "runs"
    select_metric: str = "val_macro_f1"
    save_every: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("data", "val", "test"):
            value = getattr(self, name)
            setattr(self, name, [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value])
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Config":
        return from_dict({**self.to_dict(), **changes})


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def from_dict(values: dict[str, Any], *, source: str = "config") -> Config:
    """Build a Config, rejecting keys it does not know.

    Args:
        values: key -> value, as in a YAML file.
        source: where the values came from, for error messages.
    """
    if not isinstance(values, dict):
        raise TypeError(f"{source}: expected a mapping of key: value, got {type(values).__name__}")
    unknown = sorted(set(values) - set(field_names()))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown}. Valid keys: {', '.join(field_names())}"
        )
    return Config(**{k: _as_list(k, v) for k, v in values.items()})


def _as_list(key: str, value: Any) -> Any:
    if key in ("data", "val", "test") and isinstance(value, (str, Path)):
        return [str(value)]
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (validated later by `from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist; pass an existing YAML file")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path}: expected a mapping of key: value at top level")
    from_dict(values, source=str(path))  # reject unknown keys early, naming the file
    return values


def save_yaml(config: Config, path: str | Path, *, extra: dict[str, Any] | None = None) -> None:
    """Write the resolved config (plus provenance in `extra`) atomically."""
    document = {**config.to_dict(), **({"_provenance": extra} if extra else {})}
    atomic_write_text(Path(path), yaml.safe_dump(document, sort_keys=False))


def read_saved(path: str | Path) -> Config:
    """Read a run's saved config.yaml, ignoring its provenance block."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    values.pop("_provenance", None)
    return from_dict(values, source=str(path))


def validate(config: Config) -> None:
    """Check ranges and choices, with messages that say how to fix them."""
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("schedule", config.schedule, SCHEDULES)
    _choice("amp", config.amp, AMP_MODES)
    _choice("in_chans", config.in_chans, CHANNEL_MODES)
    _choice("select_metric", config.select_metric, SELECT_METRICS)
    _choice("normalize", config.normalize, NORMALIZE_MODES)
    _choice("verify", config.verify, VERIFY_MODES)
    _choice("head", config.head, HEAD_KINDS)
    if not 0 < config.threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {config.threshold}")
    for name in ("mixup", "cutmix"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be an alpha >= 0 (0 disables it), got {getattr(config, name)}")
    if not 0 <= config.mix_prob <= 1:
        raise ValueError(f"mix_prob must be in [0, 1], got {config.mix_prob}")
    _positive("epochs", config.epochs)
    _positive("batch_size", config.batch_size)
    _positive("img_size", config.img_size)
    _positive("accumulate", config.accumulate)
    if config.lr <= 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    for name in ("val_fraction", "test_fraction"):
        value = getattr(config, name)
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if not 0 <= config.fill <= 255:
        raise ValueError(f"fill must be a gray level in [0, 255], got {config.fill}")
    if config.workers < 0:
        raise ValueError(f"workers must be >= 0, got {config.workers}")


def _choice(name: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
