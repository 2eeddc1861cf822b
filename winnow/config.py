"""The one configuration object of a training run, its YAML form and its validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path, PurePath
from typing import Any

import yaml

from winnow.constraints import Interval, Matches, Options, check_value, validate_params
from winnow.runs.atomic import atomic_write_text

OPTIMIZERS = ("sgd", "adamw", "radam", "lookahead_radam")
SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CHANNEL_MODES = ("auto", 1, 3)
SELECT_METRICS = ("val_macro_f1", "val_accuracy", "val_balanced_accuracy", "val_loss", "val_pu_auc", "val_pu_recall")
PU_SELECT_METRICS = ("val_pu_auc", "val_pu_recall", "val_loss")  # a PU val split has no true negatives
PU_LOSSES = ("nnpu", "upu")
NORMALIZE_MODES = ("auto", "dataset", "imagenet", "none")
VERIFY_MODES = ("auto", "header", "full")
HEAD_KINDS = ("multiclass", "binary", "multilabel", "multitask")
AUGMENT_MODES = ("auto", "standard", "flips")  # winnow.data.augment_policy
TTA_MODES = ("auto", "none", "flips", "d4")  # deterministic test-time views (winnow.data.views)
PATH_LISTS = ("data", "val", "test", "unlabeled")  # keys holding a path or a list of paths

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_COUNT = Interval(Integral, 0, None, closed="left")  # a count; for the epoch keys 0 acts like None
_FRACTION = Interval(Real, 0, 1, closed="left")  # [0, 1): a share that cannot be everything
_PROBABILITY = Interval(Real, 0, 1, closed="both")
_NON_NEGATIVE = Interval(Real, 0, None, closed="left")
_POSITIVE = Interval(Real, 0, None, closed="neither")
_OPEN_UNIT = Interval(Real, 0, 1, closed="neither")
_SHARE = Interval(Real, 0, 1, closed="right")  # (0, 1]: a share that is not nothing
_POSITIVE_NUMBER = r"(\d*[1-9]\d*(\.\d+)?|0*\.\d*[1-9]\d*)"  # a decimal number > 0
_PERCENT = r"(100(\.0+)?|0*[1-9]\d?(\.\d+)?|0*\.\d*[1-9]\d*)"  # in (0, 100]
DEFAULT_PROGRESS_EVERY = "30s"
PROGRESS_EVERY = Matches(rf"\s*({_POSITIVE_NUMBER}\s*s|{_PERCENT}\s*%)\s*",
                         "a number of seconds such as '30s' or a percentage in (0, 100] such as '10%'")

PARAMETER_CONSTRAINTS: dict[str, list] = {
    # data
    "val_fraction": [_FRACTION],
    "test_fraction": [_FRACTION],
    "split_seed": [None, _COUNT],
    "skip_bad": [bool],
    "verify": [Options(VERIFY_MODES)],
    "max_image_pixels": [_POSITIVE_INT],
    "cache": [None, bool],
    "cache_memory_mb": [_POSITIVE_INT],
    "cache_dir": [None, str],
    "workers": [Options(("auto",)), _COUNT],
    # preprocessing and augmentation
    "img_size": [_POSITIVE_INT],
    "in_chans": [Options(CHANNEL_MODES)],
    "fill": [Interval(Integral, 0, 255, closed="both")],
    "autolevel": [bool],
    "automask": [bool],
    "hflip": [_PROBABILITY],
    "vflip": [_PROBABILITY],
    "augment": [Options(AUGMENT_MODES)],
    "rotate": [None, Interval(Real, 0, 180, closed="both")],
    "scale_jitter": [None, _FRACTION],
    "brightness": [None, _NON_NEGATIVE],
    "contrast": [None, _NON_NEGATIVE],
    "randaugment": [bool],
    "batch_augment": [bool],
    "random_erasing": [_PROBABILITY],
    "normalize": [Options(NORMALIZE_MODES)],
    # model
    "model": [str],
    "stem": [str],
    "head": [Options(HEAD_KINDS)],
    "positive_class": [None, str],
    "threshold": [_OPEN_UNIT],
    "pu": [bool],
    "prior": [None, _OPEN_UNIT, Options(("auto",))],
    "unlabeled": [list],  # paths, made a list in __post_init__ like data, val and test
    "tasks": [list],
    "pretrained": [None, str],
    "freeze": [None, str],
    "unfreeze_at": [None, _COUNT],
    "drop_rate": [_FRACTION],
    "embedding_dim": [None, _POSITIVE_INT],
    # loss and sampling
    "loss": [str],
    "loss_params": [dict, None],  # an empty YAML `loss_params:` reads as None; the losses take it
    "label_smoothing": [_FRACTION],
    "class_weights": [str, list],
    "class_weights_epoch": [None, _COUNT],
    "effective_beta": [_FRACTION],
    "sampler": [str],
    "sampler_params": [dict, None],
    "sampler_epoch": [None, _POSITIVE_INT],  # the sampler switch is 1-based
    "mixup": [_NON_NEGATIVE],
    "cutmix": [_NON_NEGATIVE],
    "mix_prob": [_PROBABILITY],
    # optimisation
    "epochs": [_POSITIVE_INT],
    "batch_size": [_POSITIVE_INT],
    "lr": [_POSITIVE],
    "weight_decay": [_NON_NEGATIVE],
    "momentum": [_FRACTION],
    "optimizer": [Options(OPTIMIZERS)],
    "schedule": [Options(SCHEDULES)],
    "warmup_epochs": [_COUNT],
    "milestones": [list],
    "step_gamma": [_POSITIVE],
    "grad_clip": [None, _POSITIVE],
    "accumulate": [_POSITIVE_INT],
    "ema": [bool],
    "ema_decay": [_OPEN_UNIT],
    "swa_epochs": [None, _POSITIVE_INT],
    "progressive_resize": [None, _SHARE],
    "progressive_resize_until": [_SHARE],
    "swa_lr": [None, _POSITIVE],
    "amp": [Options(AMP_MODES)],
    "channels_last": [bool],
    "compile": [bool],
    "device": [str],
    "seed": [_COUNT],  # numpy's SeedSequence refuses negative seeds
    "deterministic": [bool],
    # run folder
    "name": [None, str],
    "out": [str],
    "select_metric": [Options(SELECT_METRICS)],
    "save_every": [None, _POSITIVE_INT],
    "progress": [bool],
    "progress_every": [PROGRESS_EVERY],
    "profile": [bool],
    "tta": [Options(TTA_MODES)],
    # pretraining (`winnow pretrain`)
    "pretrain_method": [None, str],
    "pretrain_params": [dict, None],
}
"""What each Config field may hold; `validate` checks a config against it."""

PARAMETER_HINTS: dict[str, str] = {
    "in_chans": "'auto' picks 1 (grayscale) or 3 (colour) from the images",
    "fill": "it is the gray level of padding and rotated corners (0 black, 255 white)",
    "threshold": "it is the predicted probability above which a label counts as present",
    "positive_class": "class names are strings; quote a numeric one in YAML, e.g. positive_class: '1'",
    "mixup": "it is the Beta distribution's alpha, 0 disables it",
    "cutmix": "it is the Beta distribution's alpha, 0 disables it",
    "workers": "'auto' picks from the cores and the device (winnow.data.loader_workers), 0 loads images in the main process",
    "unfreeze_at": "it is the epoch (as the log counts) at which the frozen layers start training",
    "sampler_epoch": "it is the epoch (as the log counts) from which the sampler replaces random sampling",
    "class_weights_epoch": "it is the epoch (as the log counts) from which class weights apply",
    "swa_epochs": "it is how many final epochs' weights are averaged (null: no weight averaging)",
    "progressive_resize": "it is the first epochs' image side as a share of img_size (null: every epoch at img_size)",
    "progressive_resize_until": "it is the share of the epochs after which training uses the full img_size",
    "swa_lr": "it is the constant learning rate of the swa_epochs epochs (null: the schedule runs on)",
    "prior": "it is the fraction of positives among the unlabelled images, strictly between 0 and 1; "
             "`winnow train --prior auto` estimates it",
    "unlabeled": "give a folder or CSV manifest of unlabelled images, or a list of them",
    "embedding_dim": "it is the size of a projection added before the classifier, e.g. 128; leave it unset "
                     "(null) to use the backbone's pooled features",
}
"""How to fix a bad value of a field, where its range alone does not say."""


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
    workers: int | str = "auto"  # loader processes; auto: winnow.data.loader_workers
    # preprocessing and augmentation
    img_size: int = 64
    in_chans: int | str = "auto"
    fill: int = 0
    autolevel: bool = False
    automask: bool = False
    hflip: float = 0.5
    vflip: float = 0.5
    augment: str = "auto"  # presets of the four keys below (winnow.data.augment_policy); auto: from the imbalance
    rotate: float | None = None  # None: from `augment`; a value set here wins over the preset
    scale_jitter: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    randaugment: bool = False
    batch_augment: bool = False  # whole uint8 batches augmented on the device (winnow.data.batch_augment); opt-in
    random_erasing: float = 0.0
    normalize: str = "auto"
    # model
    model: str = "resnet18"
    stem: str = "default"
    head: str = "multiclass"
    positive_class: str | None = None
    threshold: float = 0.5
    pu: bool = False  # positive-unlabelled: positive_class is labelled, the other label is unlabelled
    prior: float | str | None = None  # PU class prior among the unlabelled, or "auto" (resolved by the CLI)
    unlabeled: list[str] = field(default_factory=list)  # PU: extra sources of unlabelled images (labels ignored)
    tasks: list[dict] = field(default_factory=list)
    pretrained: str | None = None
    freeze: str | None = None
    unfreeze_at: int | None = None
    drop_rate: float = 0.0
    embedding_dim: int | None = None  # a Linear projection to [B, D] between pooled features and classifier
    # loss and sampling
    loss: str = "auto"
    loss_params: dict = field(default_factory=dict)
    label_smoothing: float = 0.1  # bench/generalization.py: it helped on 4 of the 5 real sets
    class_weights: str | list[float] = "none"
    class_weights_epoch: int | None = None
    effective_beta: float = 0.999
    sampler: str = "auto"  # sqrt on imbalanced training data, random on balanced (winnow.data.samplers.resolve_sampler)
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
    swa_epochs: int | None = None  # average the weights of the last N epochs into checkpoints/swa.pt
    swa_lr: float | None = None  # constant LR during those epochs (None: keep the schedule)
    progressive_resize: float | None = None  # first epochs at this share of img_size (winnow.training.progressive_resize)
    progressive_resize_until: float = 0.75  # share of the epochs after which the full size is used
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
    tta: str = "auto"  # views that score the test split after training and eval/predict's default --tta (tta_views)
    save_every: int | None = None
    progress: bool = True
    progress_every: str = DEFAULT_PROGRESS_EVERY  # off a terminal: a plain line every 30 s, or "10%"
    profile: bool = False  # time each phase of the steps and of the run: profile.json and a table in the log
    # pretraining on unlabelled images (`winnow pretrain`; `train` ignores them)
    pretrain_method: str | None = None  # autoencoder, simclr or byol
    pretrain_params: dict = field(default_factory=dict)  # the method's settings (winnow.pretraining.methods)

    def __post_init__(self) -> None:
        for name in PATH_LISTS:
            value = check_value(name, getattr(self, name), [str, PurePath, list, tuple],
                                hint="give a manifest/folder path or a list of them")
            setattr(self, name, [str(value)] if isinstance(value, (str, PurePath)) else [str(v) for v in value])
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Config":
        return from_dict({**self.to_dict(), **changes})


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def from_dict(values: Mapping[str, Any], *, source: str = "config") -> Config:
    """Build a Config, rejecting keys it does not know.

    Args:
        values: key -> value, as in a YAML file.
        source: where the values came from, for error messages.

    Raises:
        InvalidParameterError: `values` is not a mapping, or a value is out of range.
        ValueError: a key is not a Config field (the valid keys are listed).
    """
    check_value(source, values, [Mapping], hint="write it as key: value pairs, e.g. {epochs: 30}")
    unknown = sorted(set(values) - set(field_names()))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown}. Valid keys: {', '.join(field_names())}"
        )
    return Config(**{k: _as_list(k, v) for k, v in values.items()})


def _as_list(key: str, value: Any) -> Any:
    if key in PATH_LISTS and isinstance(value, (str, Path)):
        return [str(value)]
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (validated later by `from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist; pass an existing YAML file")
    values = yaml.safe_load(path.read_text()) or {}
    check_value(f"config file {path}", values, [dict], hint="write one key: value per line at top level")
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


def tta_views(config: Config) -> str:
    """The test-time views of a run: its `tta`, where "auto" is "flips" ("none" for multi-task runs, which
    `winnow predict` scores without views)."""
    if config.tta != "auto":
        return config.tta
    return "none" if config.head == "multitask" or config.tasks else "flips"


def validate(config: Config) -> None:
    """Check every field against `PARAMETER_CONSTRAINTS`, with messages that say how to fix it.

    Raises:
        InvalidParameterError: the first field whose value is of the wrong type or out of range.
    """
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    validate_params(values, PARAMETER_CONSTRAINTS, hints=PARAMETER_HINTS)
    _check_weight_averaging(config)
    _check_pu(config)


def _check_weight_averaging(config: Config) -> None:
    """SWA settings that only make sense together (each key alone is checked by its constraint)."""
    if config.swa_epochs is None:
        if config.swa_lr is not None:
            raise ValueError(f"swa_lr is {config.swa_lr} but swa_epochs is not set; set swa_epochs (e.g. 5) "
                             "to average the last epochs, or remove swa_lr")
        return
    if config.swa_epochs > config.epochs:
        raise ValueError(f"swa_epochs must be <= epochs ({config.epochs}), got {config.swa_epochs}: it averages "
                         "the weights of the last swa_epochs epochs; lower swa_epochs or raise epochs")
    if config.ema:
        raise ValueError("ema and swa_epochs both average the weights, and averaging an average is not "
                         "supported; set ema: false (--no-ema) or swa_epochs: null")


def _check_pu(config: Config) -> None:
    """Positive-unlabelled settings that only make sense together (see `winnow.losses.pu`)."""
    if not config.pu:
        if config.prior is not None:
            raise ValueError(f"prior is {config.prior!r} but pu is false; set pu: true (--pu) for a "
                             "positive-unlabelled run, or remove prior")
        if config.unlabeled:
            raise ValueError(f"unlabeled is {config.unlabeled} but pu is false: only a positive-unlabelled run "
                             "trains on unlabelled images; add --pu --head binary --positive-class NAME --prior P, "
                             "or remove --unlabeled")
        return
    if config.head != "binary":
        raise ValueError(f"pu: true needs head: binary (labelled positives against unlabelled images), got head "
                         f"{config.head!r}; set --head binary --positive-class NAME")
    if config.prior is None:
        raise ValueError("pu: true needs prior, the fraction of positives among the unlabelled images, in (0, 1); "
                         "set e.g. --prior 0.4, or --prior auto to estimate it")
    if config.loss not in ("auto", *PU_LOSSES):
        raise ValueError(f"pu: true trains with a PU loss ({', '.join(PU_LOSSES)}; auto: nnpu), got loss "
                         f"{config.loss!r}; a PN loss would learn the unlabelled images as negatives")
    if config.select_metric not in PU_SELECT_METRICS:
        raise ValueError(f"pu: true selects best.pt on a validation split without negatives; select_metric must be "
                         f"one of {', '.join(PU_SELECT_METRICS)}, got {config.select_metric!r} "
                         "(winnow train --pu sets val_pu_auc)")
