"""Epoch samplers: which images an epoch draws, with a seed per draw; shardable across ranks.

A strategy (registered by name in `SAMPLERS`) turns a seeded generator into one epoch's
index sequence. `EpochSampler` seeds it per epoch (so epochs are reproducible and
resumable), pairs every position with an augmentation seed, shards the epoch across ranks
and can switch from `random` to the named strategy at a given epoch. Build one with
`build_sampler`; log what an epoch will look like with `describe_mix`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Sampler

from winnow.constraints import InvalidParameterError, Interval, check_known_keys, check_value

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")


def epoch_seed_base(seed: int, epoch: int) -> int:
    """A 62-bit base for the per-position augmentation seeds of one epoch.

    Hashed from (seed, epoch), so epochs do not share seeds however long they are.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]) % 2**62
EPOCH_SEED_STRIDE = 1_000_003  # epoch e of run seed s draws from a generator seeded s * stride + e


class Strategy(ABC):
    """How one epoch's image indices are drawn from a seeded generator.

    Args:
        targets: class index per image, in `[0, num_classes)`.
        num_classes: number of classes (some may have no images).
        batch_size: images per batch on each rank.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}  # valid sampler_params and their defaults
    block: int = 1  # consecutive positions that stay together on one rank when sharding

    def __init__(self, targets: torch.Tensor, num_classes: int, *, batch_size: int) -> None:
        self.targets, self.batch_size = targets, batch_size
        self.counts = torch.bincount(targets, minlength=num_classes)

    def epoch_length(self, world_size: int) -> int:
        """Positions in one epoch over all ranks, before padding."""
        return len(self.targets)

    @abstractmethod
    def draw(self, generator: torch.Generator, length: int) -> torch.Tensor:
        """The epoch's `length` image indices (`length` comes from `epoch_length`)."""

    @abstractmethod
    def class_mix(self) -> np.ndarray:
        """Expected share of each class among the epoch's draws."""

    def describe(self) -> str:
        """Name with its parameters, e.g. `m_per_class(m=4)`."""
        params = ", ".join(f"{key}={getattr(self, key)}" for key in self.defaults)
        return f"{self.name}({params})" if params else self.name


def _normalised(weights: torch.Tensor) -> np.ndarray:
    weights = weights.double().numpy()
    return weights / weights.sum()


class Permutation(Strategy):
    """Every image once per epoch, shuffled."""

    name = "random"

    def draw(self, generator: torch.Generator, length: int) -> torch.Tensor:
        return torch.randperm(length, generator=generator)

    def class_mix(self) -> np.ndarray:
        return _normalised(self.counts)


class ClassWeighted(Strategy):
    """Draws with replacement; each class's share is proportional to `class_weights()`."""

    @abstractmethod
    def class_weights(self) -> torch.Tensor:
        """Float64 weight per class, 0 for classes without images."""

    def image_weights(self) -> torch.Tensor:
        """Float64 draw weight per image: its class weight shared among the class's images."""
        per_class = self.class_weights() / self.counts.clamp(min=1).double()
        return per_class[self.targets]

    def draw(self, generator: torch.Generator, length: int) -> torch.Tensor:
        return torch.multinomial(self.image_weights(), length, replacement=True, generator=generator)

    def class_mix(self) -> np.ndarray:
        return _normalised(self.class_weights())


class Balanced(ClassWeighted):
    """Every class equally likely."""

    name = "balanced"

    def class_weights(self) -> torch.Tensor:
        return (self.counts > 0).double()


class SqrtFrequency(ClassWeighted):
    """Class probability proportional to the square root of its size."""

    name = "sqrt"

    def class_weights(self) -> torch.Tensor:
        return self.counts.double().sqrt()


class RepeatFactor(Strategy):
    """LVIS-style repeat factors: image of class c repeats `r_c = max(1, sqrt(t / f_c))` times.

    `f_c` is the class's share of the images. Each epoch rounds every image's factor up or
    down at random (keeping its mean), shuffles the repeated list and takes its first
    `num_samples` positions, so rare-class images come `r_c` times as often as images of
    classes at or above the frequency threshold `t`.
    """

    name = "repeat_factor"
    defaults = {"t": 0.1}

    def __init__(self, targets: torch.Tensor, num_classes: int, *, batch_size: int, t: float) -> None:
        super().__init__(targets, num_classes, batch_size=batch_size)
        self.t = check_value("sampler_params t (repeat_factor frequency threshold)", t,
                             [Interval(Real, 0, None, closed="neither")],
                             hint="classes rarer than t are repeated, e.g. t: 0.1")
        frequency = self.counts.double() / len(targets)
        self.class_factors = torch.where(self.counts > 0, (t / frequency).sqrt().clamp(min=1.0), 0.0)

    def draw(self, generator: torch.Generator, length: int) -> torch.Tensor:
        factors = self.class_factors[self.targets]
        whole = factors.floor()
        extra = torch.rand(len(factors), generator=generator, dtype=torch.float64) < factors - whole
        repeated = torch.repeat_interleave(torch.arange(len(factors)), (whole + extra).long())
        return repeated[torch.randperm(len(repeated), generator=generator)[:length]]

    def class_mix(self) -> np.ndarray:
        return _normalised(self.counts * self.class_factors)


class MPerClass(Strategy):
    """Each batch holds `m` images of each of `batch_size / m` distinct classes.

    Classes are picked uniformly per batch. A class's images are visited in reshuffled
    passes (no image twice in one batch); classes with fewer than `m` images are sampled
    with replacement. An epoch has as many whole batches per rank as a `random` epoch
    leaves after dropping the last incomplete batch (at least one).
    """

    name = "m_per_class"
    defaults = {"m": 4}

    def __init__(self, targets: torch.Tensor, num_classes: int, *, batch_size: int, m: int) -> None:
        super().__init__(targets, num_classes, batch_size=batch_size)
        self.classes = self.counts.nonzero().flatten()
        _check_m(m, batch_size=batch_size, present=len(self.classes))
        self.m, self.per_batch, self.block = m, batch_size // m, batch_size
        by_class = torch.argsort(targets, stable=True).split(self.counts[self.classes].tolist())
        self.members = dict(zip(self.classes.tolist(), by_class))

    def epoch_length(self, world_size: int) -> int:
        per_rank = -(-len(self.targets) // world_size)
        return max(1, per_rank // self.batch_size) * world_size * self.batch_size

    def draw(self, generator: torch.Generator, length: int) -> torch.Tensor:
        chosen = self._choose_classes(length // self.batch_size, generator).flatten()
        picks = torch.empty(len(chosen), self.m, dtype=torch.long)
        sizes = torch.bincount(chosen, minlength=len(self.counts))[self.classes].tolist()
        slots_by_class = torch.argsort(chosen, stable=True).split(sizes)
        for label, slots in zip(self.classes.tolist(), slots_by_class):
            picks[slots] = self._class_picks(label, len(slots), generator)
        return picks.flatten()

    def _choose_classes(self, batches: int, generator: torch.Generator) -> torch.Tensor:
        """`[batches, per_batch]` distinct classes per batch, uniformly."""
        scores = torch.rand(batches, len(self.classes), generator=generator)
        return self.classes[scores.topk(self.per_batch, dim=1).indices]

    def _class_picks(self, label: int, slots: int, generator: torch.Generator) -> torch.Tensor:
        """`[slots, m]` images of one class for its `slots` places in the epoch."""
        members = self.members[label]
        if len(members) < self.m:
            return members[torch.randint(len(members), (slots, self.m), generator=generator)]
        per_pass = len(members) // self.m
        passes = -(-slots // per_pass)
        order = torch.rand(passes, len(members), generator=generator).argsort(dim=1)
        return members[order[:, : per_pass * self.m].reshape(-1, self.m)[:slots]]

    def class_mix(self) -> np.ndarray:
        return _normalised(self.counts > 0)


def _check_m(m: Any, *, batch_size: int, present: int) -> None:
    valid = [d for d in range(1, batch_size + 1) if batch_size % d == 0 and batch_size // d <= present]
    hint = f"valid m for batch_size={batch_size} and {present} classes with images: {', '.join(map(str, valid))}"
    check_value("sampler_params m (images per class in a batch)", m, [_POSITIVE_INT], hint=hint)
    if batch_size % m:
        raise InvalidParameterError(f"sampler_params m={m} must divide batch_size={batch_size} "
                                    f"(each batch holds batch_size / m classes); {hint}, or change batch_size")
    if batch_size // m > present:
        raise InvalidParameterError(f"m_per_class with m={m} needs batch_size / m = {batch_size // m} classes "
                                    f"per batch, but only {present} classes have images; {hint}")


SAMPLERS: dict[str, type[Strategy]] = {
    "random": Permutation,
    "balanced": Balanced,
    "sqrt": SqrtFrequency,
    "repeat_factor": RepeatFactor,
    "m_per_class": MPerClass,
}


AUTO = "auto"  # `sampler: auto`: `sqrt` on imbalanced training data, `random` on balanced data
IMBALANCE_THRESHOLD = 0.1  # class shares this far (total variation) from uniform count as imbalanced


def class_imbalance(targets: list[int], num_classes: int) -> float:
    """Total variation distance between the class shares of `targets` and uniform shares.

    0 for balanced classes; it approaches 1 when one class holds nearly every image. Classes without
    images count (a class missing from the training data is imbalance too). Examples: 24 classes of
    238 images but one of 45 give 0.04; 5 classes of 207, 88, 33, 20 and 3 images give 0.39.
    """
    counts = torch.bincount(_targets_tensor(targets, num_classes), minlength=num_classes).double()
    return float(0.5 * (counts / counts.sum() - 1.0 / num_classes).abs().sum())


def resolve_sampler(name: str, targets: list[int], num_classes: int) -> str:
    """`name`, or for "auto" the sampler the measured imbalance calls for: `sqrt` at
    `class_imbalance` >= 0.1 (bench/generalization.py: it helps imbalanced sets), else `random`."""
    if name != AUTO:
        return name
    return "sqrt" if class_imbalance(targets, num_classes) >= IMBALANCE_THRESHOLD else "random"


def build_strategy(name: str, targets: list[int], num_classes: int, *, batch_size: int,
                   params: dict | None = None) -> Strategy:
    """Look up a sampler by name ("auto": `resolve_sampler`) and build its strategy, checking inputs and `params`."""
    name = resolve_sampler(name, targets, num_classes) if name == AUTO else name
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {', '.join([AUTO, *sorted(SAMPLERS)])}")
    strategy = SAMPLERS[name]
    _check_positive_int("batch_size", batch_size)
    return strategy(_targets_tensor(targets, num_classes), num_classes, batch_size=batch_size,
                    **_with_defaults(name, strategy.defaults, params))


def _with_defaults(name: str, defaults: dict[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """`params` merged over the sampler's `defaults`, refusing names it does not take."""
    takes = ", ".join(f"{key} (default {value})" for key, value in defaults.items())
    hint = f"sampler {name!r} takes {takes}" if takes else f"sampler {name!r} takes no sampler_params"
    return {**defaults, **check_known_keys("sampler_params", params, defaults, hint=hint)}


def _targets_tensor(targets: list[int], num_classes: int) -> torch.Tensor:
    _check_positive_int("num_classes", num_classes)
    tensor = torch.as_tensor(targets, dtype=torch.long)
    if tensor.ndim != 1 or len(tensor) == 0:
        raise ValueError(f"targets must be a non-empty list of class indices, got shape {tuple(tensor.shape)}")
    bad = ((tensor < 0) | (tensor >= num_classes)).nonzero().flatten()
    if len(bad):
        first = int(bad[0])
        raise ValueError(f"targets must lie in [0, num_classes={num_classes}), got {int(tensor[first])} "
                         f"for image {first} ({len(bad)} out of range); training images need a known class")
    return tensor


def _check_positive_int(name: str, value: Any) -> None:
    check_value(name, value, [_POSITIVE_INT])


def shard(sequence: torch.Tensor, *, block: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's part of an epoch: every `world_size`-th block of `block` positions.

    The epoch is first padded (wrapping around to its start) to a whole number of blocks
    per rank, so all ranks get the same length.
    """
    per_rank = _per_rank(len(sequence), block=block, world_size=world_size)
    total = per_rank * world_size
    padded = sequence.repeat(-(-total // len(sequence)))[:total]
    return padded.view(-1, block)[rank::world_size].flatten()


def _per_rank(length: int, *, block: int, world_size: int) -> int:
    return -(-length // (block * world_size)) * block


class EpochSampler(Sampler):
    """Yields `(index, seed)` pairs; `set_epoch` picks the epoch's draw.

    Epoch `e` (0-based) draws from a generator seeded `seed * 1_000_003 + e`, so any epoch
    can be redrawn exactly; the augmentation seed of a position does not depend on `skip`.

    Args:
        strategy: draws an epoch's indices (see `SAMPLERS`).
        seed: run seed.
        rank, world_size: shard for distributed training (disjoint parts of equal length).
        initial: strategy for the epochs before `switch_epoch`.
        switch_epoch: 1-based epoch from which `strategy` replaces `initial`.
    """

    def __init__(self, strategy: Strategy, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 initial: Strategy | None = None, switch_epoch: int = 1) -> None:
        _check_positive_int("world_size", world_size)
        _check_positive_int("switch_epoch", switch_epoch)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
        if switch_epoch > 1 and initial is None:
            raise ValueError(f"switch_epoch={switch_epoch} needs an `initial` strategy for the epochs before it")
        self.strategy, self.initial, self.switch_epoch = strategy, initial, switch_epoch
        self.seed, self.rank, self.world_size, self.epoch, self.skip = seed, rank, world_size, 0, 0

    def strategy_for(self, epoch: int) -> Strategy:
        """The strategy drawing 0-based `epoch`."""
        return self.strategy if epoch + 1 >= self.switch_epoch else self.initial

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None:
        """Select the epoch's draw; `skip` drops its first positions (mid-epoch resume)."""
        positions = self._positions(epoch)
        if isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip <= positions:
            raise ValueError(f"skip must be an integer in [0, {positions}] (positions of this rank's "
                             f"epoch {epoch}), got {skip!r}; pass batches already done * batch_size")
        self.epoch, self.skip = epoch, skip

    def expected_class_mix(self, epoch: int) -> np.ndarray:
        """Expected share of each class in 0-based `epoch`."""
        return self.strategy_for(epoch).class_mix()

    def epoch_sequence(self) -> torch.Tensor:
        """The current epoch's indices over all ranks, before padding and sharding."""
        generator = torch.Generator().manual_seed(self.seed * EPOCH_SEED_STRIDE + self.epoch)
        strategy = self.strategy_for(self.epoch)
        return strategy.draw(generator, strategy.epoch_length(self.world_size))

    def epoch_indices(self) -> torch.Tensor:
        """This rank's indices for the current epoch (all positions, `skip` included)."""
        block = self.strategy_for(self.epoch).block
        return shard(self.epoch_sequence(), block=block, rank=self.rank, world_size=self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = epoch_seed_base(self.seed, self.epoch)
        indices = self.epoch_indices().tolist()
        for position in range(self.skip, len(indices)):
            yield indices[position], (base + position * self.world_size + self.rank) % 2**62

    def __len__(self) -> int:
        return self.per_rank() - self.skip

    def per_rank(self) -> int:
        """Positions of the current epoch on each rank, padding included."""
        return self._positions(self.epoch)

    def _positions(self, epoch: int) -> int:
        strategy = self.strategy_for(epoch)
        length = strategy.epoch_length(self.world_size)
        return _per_rank(length, block=strategy.block, world_size=self.world_size)


def build_sampler(name: str, targets: list[int], num_classes: int, *, batch_size: int, seed: int,
                  params: dict | None = None, switch_epoch: int | None = None, rank: int = 0,
                  world_size: int = 1) -> EpochSampler:
    """The training sampler for config `sampler`, `sampler_params` and `sampler_epoch`.

    Args:
        name: a key of `SAMPLERS`.
        targets: class index per training image.
        num_classes: number of classes.
        batch_size: images per batch on each rank.
        seed: run seed.
        params: strategy parameters (`t` for repeat_factor, `m` for m_per_class).
        switch_epoch: 1-based epoch at which `name` takes over from `random` (None: from the start).
        rank, world_size: shard for distributed training.
    """
    strategy = build_strategy(name, targets, num_classes, batch_size=batch_size, params=params)
    if switch_epoch is not None:
        _check_positive_int("switch_epoch (sampler_epoch)", switch_epoch)
    initial = None
    if switch_epoch is not None and switch_epoch > 1:
        initial = build_strategy("random", targets, num_classes, batch_size=batch_size)
    return EpochSampler(strategy, seed=seed, rank=rank, world_size=world_size, initial=initial,
                        switch_epoch=switch_epoch or 1)


def expected_class_mix(name: str, targets: list[int], num_classes: int, *, batch_size: int,
                       params: dict | None = None) -> np.ndarray:
    """Expected share of each class in one epoch of sampler `name`."""
    return build_strategy(name, targets, num_classes, batch_size=batch_size, params=params).class_mix()


def describe_mix(sampler: EpochSampler, epoch: int, *, classes: list[str] | None = None) -> str:
    """One log line: the sampler drawing 0-based `epoch` and its expected class mix.

    Example: `epoch 3: sampler balanced, expected class mix cat 50.0%, dog 50.0%`.
    """
    strategy = sampler.strategy_for(epoch)
    mix = strategy.class_mix()
    if classes is not None and len(classes) != len(mix):
        raise ValueError(f"classes must name all {len(mix)} classes, got {len(classes)} names")
    names = classes if classes is not None else [str(i) for i in range(len(mix))]
    shares = ", ".join(f"{label} {share:.1%}" for label, share in zip(names, mix))
    return f"epoch {epoch + 1}: sampler {strategy.describe()}, expected class mix {shares}"
