"""`train --profile`: where the wall time of a run goes, phase by phase, and what to change.

The training loop marks the end of each phase of a step (waiting for data, host-to-device copy,
forward + loss, backward, optimizer step); the epoch loop times evaluation and checkpoints; the
time before the first epoch (data preparation, verification, cache, model) is `setup`. On CUDA
each mark synchronises the device, so kernels are charged to the phase that launched them (this
costs a little speed, which is why profiling is opt-in).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

STEP_PHASES = ("data", "copy", "augment", "forward", "backward", "optimizer", "bookkeeping")
"""The phases of one training step, in the order the loop runs them."""
RUN_PHASES = ("setup", "first_batch", *STEP_PHASES, "evaluation", "checkpoint")
PHASE_LABELS = {
    "setup": "setup (data preparation, verification, cache, model)",
    "first_batch": "first batch of each epoch (workers starting)",
    "data": "waiting for data",
    "copy": "host-to-device copy",
    "augment": "batch augmentation (on the device)",
    "forward": "forward + loss",
    "backward": "backward",
    "optimizer": "optimizer step (+ EMA, schedule)",
    "bookkeeping": "loss logging, progress",
    "evaluation": "evaluation (val each epoch, test)",
    "checkpoint": "checkpoints and run files",
}


class StepClock:
    """Accumulates wall seconds per phase; `mark(phase)` charges the time since the previous mark."""

    def __init__(self, device: torch.device) -> None:
        self._synchronize = device.type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.images = 0
        self._last = time.perf_counter()

    def restart(self) -> None:
        """Start timing from now (the time since the last mark is charged to nothing)."""
        self._sync()
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def count_step(self, images: int) -> None:
        self.steps += 1
        self.images += images

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the time of the `with` block to `name`."""
        self.restart()
        yield
        self.mark(name)

    def _sync(self) -> None:
        if self._synchronize:
            torch.cuda.synchronize()


class NullClock:
    """The clock of unprofiled runs: every call does nothing, so the loop needs no `if`."""

    def restart(self) -> None:
        pass

    def mark(self, phase: str) -> None:
        pass

    def add(self, phase: str, seconds: float) -> None:
        pass

    def count_step(self, images: int) -> None:
        pass

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield


NULL_CLOCK = NullClock()


def profile_report(clock: StepClock, *, workers: int, threads: int, device: str) -> dict:
    """The profile of a run: seconds and share per phase, per-step milliseconds, the bottleneck and advice."""
    total = sum(clock.seconds.values())
    step_total = sum(clock.seconds[p] for p in STEP_PHASES)
    phases = [{"phase": name, "seconds": round(clock.seconds[name], 3),
               "share": round(clock.seconds[name] / total, 4) if total else 0.0,
               "ms_per_step": round(1000 * clock.seconds[name] / clock.steps, 2) if clock.steps else None}
              for name in RUN_PHASES if name in clock.seconds]
    bottleneck = max((p for p in phases if p["phase"] != "setup" or len(phases) == 1),
                     key=lambda p: p["seconds"], default=None)
    return {"total_s": round(total, 2), "steps": clock.steps, "images": clock.images,
            "train_img_per_s": round(clock.images / step_total, 1) if step_total else None,
            "workers": workers, "torch_threads": threads, "device": device, "phases": phases,
            "bottleneck": bottleneck["phase"] if bottleneck else None,
            "advice": advice(clock.seconds, total=total, workers=workers, device=device)}


def advice(seconds: dict[str, float], *, total: float, workers: int, device: str) -> list[str]:
    """What to change, from the phases that take more than their fair share of the run."""
    share = {name: seconds.get(name, 0.0) / total for name in RUN_PHASES} if total else {}
    tips = []
    if share.get("data", 0) + share.get("first_batch", 0) > 0.2:
        tips.append(f"the model waits for data {100 * (share['data'] + share['first_batch']):.0f}% of the time: "
                    f"raise --workers (now {workers}) if cores are idle, keep --cache on, or lower --img-size; "
                    "on a machine with few cores, loader workers and torch threads compete for them")
    if share.get("copy", 0) > 0.1 and device.startswith("cuda"):
        tips.append(f"host-to-device copies take {100 * share['copy']:.0f}%: check that batches come pinned "
                    "(workers > 0) and use a larger --batch-size")
    if share.get("setup", 0) > 0.25:
        tips.append(f"setup takes {100 * share['setup']:.0f}% of this run: later runs on the same data reuse the "
                    "decoded cache and the verification (keep --cache-dir), so short runs get cheaper")
    if share.get("evaluation", 0) > 0.25:
        tips.append(f"evaluation takes {100 * share['evaluation']:.0f}%: the val split is large next to the "
                    "training split; a smaller --val-fraction or a larger --batch-size makes it cheaper")
    compute = share.get("forward", 0) + share.get("backward", 0) + share.get("optimizer", 0)
    if compute > 0.6:
        tips.append(f"the model's own compute takes {100 * compute:.0f}%: the input pipeline keeps up; "
                    "to go faster use --amp bf16 (CPU with bf16 support) or a GPU, a smaller model or --img-size")
    return tips


def format_profile(report: dict) -> str:
    """The profile as a table for the log, bottleneck and advice below it."""
    lines = [f"profile: {report['total_s']:.1f} s, {report['steps']} training steps, "
             f"{report['train_img_per_s']} img/s in the training steps "
             f"({report['device']}, {report['workers']} workers, {report['torch_threads']} torch threads)",
             f"  {'phase':<56} {'seconds':>9} {'share':>7} {'ms/step':>9}"]
    for row in report["phases"]:
        per_step = "" if row["ms_per_step"] is None or row["phase"] not in STEP_PHASES else f"{row['ms_per_step']:.1f}"
        lines.append(f"  {PHASE_LABELS[row['phase']]:<56} {row['seconds']:>9.2f} {100 * row['share']:>6.1f}% "
                     f"{per_step:>9}")
    if report["bottleneck"]:
        lines.append(f"bottleneck: {PHASE_LABELS[report['bottleneck']]}")
    lines.extend(f"  - {tip}" for tip in report["advice"])
    return "\n".join(lines)
