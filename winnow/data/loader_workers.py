"""How many loader worker processes a training run uses: config `workers`, whose default is ``auto``.

``auto`` counts the cores this process may use (its CPU affinity, shared by the processes that torchrun
started on this machine) and:

- with a CUDA model, gives the loader all of them but one (at most 8): the model runs on the GPU, and
  the main process needs one core to feed it;
- with a CPU model, uses no worker process on up to 4 cores, else a quarter of them (at most 4). The
  forward and backward passes already run on every core; loader processes take cores from them. On
  the 2-core machine of `bench/pipeline.py` (Q-band, resnet18, 64 px, cache on, 3 runs each), loading
  in the main process kept 1.005-1.079 of model-only speed, 2 worker processes 0.912-0.981.
"""

from __future__ import annotations

import os

AUTO = "auto"
MAX_CUDA_WORKERS = 8
MAX_CPU_WORKERS = 4
CPU_ONLY_MAX_CORES = 4  # up to this many cores a CPU model loads in its own process


def usable_cores() -> int:
    """Cores this process may run on, shared among the local processes torchrun started."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cores // max(1, local_processes))


def resolve_workers(workers: int | str, *, cuda: bool, cores: int | None = None) -> int:
    """Loader worker processes: `workers` when it is a count, else the ``auto`` rule above.

    Args:
        workers: A count (0: load in the main process) or "auto".
        cuda: Whether the model trains on a CUDA device.
        cores: Usable cores (default: `usable_cores()`).
    """
    if isinstance(workers, int) and not isinstance(workers, bool):
        if workers < 0:
            raise ValueError(f"workers: expected 'auto' or a count >= 0, got {workers}")
        return workers
    if workers != AUTO:
        raise ValueError(f"workers: expected 'auto' or a count >= 0 such as 0 or 4, got {workers!r}")
    cores = usable_cores() if cores is None else cores
    if cuda:
        return min(MAX_CUDA_WORKERS, max(1, cores - 1))
    return 0 if cores <= CPU_ONLY_MAX_CORES else min(MAX_CPU_WORKERS, cores // 4)


def parse_workers(text: str) -> int | str:
    """A `--workers` command-line value: a count such as "0" or "4", or "auto" (checked where it is used)."""
    return int(text) if text.strip().isdigit() else text
