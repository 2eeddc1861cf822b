"""`make_celery(settings)`: the Celery app of `winnow worker` and of `winnow serve --broker` (Redis broker).

Safe on GPUs by construction: a thread pool in one process per device (no fork, so CUDA is never
initialised in a forked parent), the model loaded at `worker_init` after start-up (a worker that
cannot load it exits with status 2 rather than take tasks), late acks with
prefetch 1 and `task_reject_on_worker_lost` (a task whose worker dies is delivered again), and a broker
visibility timeout longer than the longest task (a task is redelivered only when its worker is gone).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import NoReturn

from celery import Celery
from celery.signals import worker_init, worker_shutdown

from winnow.constraints import Interval, validate_params
from winnow.serve.registry import check_broker_url
from winnow.serve.worker import WorkerRuntime

TASK = "winnow.predict"  # one request (what fronts before `winnow.predict_many` sent)
TASK_MANY = "winnow.predict_many"  # the requests the front gathered, answered one by one
POSITIVE = [Interval(Integral, 1, None, closed="left")]
SECONDS = [Interval(Real, 0, None, closed="neither")]
PARAMETER_CONSTRAINTS = {"threads": POSITIVE, "max_batch_size": POSITIVE, "task_images": POSITIVE, "max_wait_ms": [Interval(Real, 0, None,
                         closed="left")], "task_timeout_s": SECONDS, "visibility_timeout_s": SECONDS,
                         "restore_interval_s": SECONDS, "registry_poll_s": SECONDS, "resend_after_s": [None, *SECONDS]}


@dataclass(frozen=True)
class CelerySettings:
    """One deployment's queue, worker and timeouts (shared by the workers and the HTTP front).

    Attributes:
        broker: Redis URL of the broker, result backend and model registry.
        name: Deployment name: its queue and registry entry.
        device: Where a worker runs its model (auto, cpu, cuda:0...).
        threads: Tasks one worker runs at once; they feed one batcher, so this bounds its batches.
        max_batch_size: Most images per device batch.
        max_wait_ms: Wait for more tasks after the first of a batch.
        task_timeout_s: Longest a task may take (decode + batch).
        visibility_timeout_s: An unacknowledged task is delivered again after this; longer than a task.
        restore_interval_s: How often workers look for such tasks.
        registry_poll_s: Longest a worker goes without checking the registry (pub/sub tells it sooner).
        resend_after_s: The front sends a task again when it has no answer after this long (None: the
            visibility timeout + 2 restore intervals, when a task a dead worker held is back in the queue).
        task_images: Most images the front gathers into one task: the requests that arrive within
            `max_wait_ms` of the first (a larger request goes alone; 1 sends every request alone). Celery's
            cost per task (message, Redis round trips, result) is then shared by the requests of a task.
    """

    broker: str
    name: str = "default"
    device: str = "auto"
    threads: int = 8
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    task_timeout_s: float = 300.0
    visibility_timeout_s: float = 3600.0
    restore_interval_s: float = 10.0
    registry_poll_s: float = 2.0
    resend_after_s: float | None = None
    task_images: int = 8

    def __post_init__(self) -> None:
        check_broker_url(self.broker)
        validate_params(asdict(self), PARAMETER_CONSTRAINTS, where="worker settings")
        if self.visibility_timeout_s <= self.task_timeout_s:
            raise ValueError(f"visibility_timeout_s ({self.visibility_timeout_s}) must be longer than task_timeout_s "
                             f"({self.task_timeout_s}), or running tasks are delivered twice; raise it")

    @property
    def queue(self) -> str:
        return f"winnow.{self.name}"

    @property
    def resend_after(self) -> float:
        """Seconds the front waits for an answer before it sends the task again."""
        if self.resend_after_s is not None:
            return self.resend_after_s
        return self.visibility_timeout_s + 2 * self.restore_interval_s


def celery_config(settings: CelerySettings) -> dict:
    """The Celery settings (`config_from_object`) derived from `settings`."""
    # a worker killed while it restores holds the restore lock: let it expire soon, not after kombu's 5 minutes
    transport = {"visibility_timeout": settings.visibility_timeout_s,
                 "unacked_restore_interval": settings.restore_interval_s, "unacked_restore_throttle": 1,
                 "unacked_mutex_expire": max(1, round(4 * settings.restore_interval_s))}
    return {"broker_url": settings.broker, "result_backend": settings.broker,
            "broker_transport_options": transport, "result_backend_transport_options": transport,
            "broker_connection_retry_on_startup": True, "task_default_queue": settings.queue,
            "task_acks_late": True, "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1,
            "worker_pool": "threads", "worker_concurrency": settings.threads, "worker_hijack_root_logger": False,
            "task_serializer": "json", "result_serializer": "json", "accept_content": ["json"],
            "result_expires": int(settings.visibility_timeout_s), "task_track_started": False}


def make_celery(settings: CelerySettings) -> Celery:
    """The app with the `winnow.predict` and `winnow.predict_many` tasks; in a worker, `worker_init` loads the model (`WorkerRuntime`)."""
    app = Celery(f"winnow-{settings.name}")
    app.config_from_object(celery_config(settings))
    state: dict = {}

    @app.task(name=TASK)
    def predict(images: list[str], max_pixels: int) -> dict:
        """Base64 images of one request -> `{"predictions": [...]}` or `{"error", "status", "detail"}`."""
        return state["runtime"].predict(images, max_pixels)

    @app.task(name=TASK_MANY)
    def predict_many(requests: list[list[str]], max_pixels: list[int]) -> list[dict]:
        """Several requests' base64 images -> one `predict` answer per request."""
        return state["runtime"].predict_many(requests, max_pixels)

    @worker_init.connect(weak=False)
    def load(sender=None, **kwargs) -> None:
        if getattr(sender, "app", None) is not app:
            return
        try:
            state["runtime"] = WorkerRuntime(settings, hostname=sender.hostname).start()
        except Exception as failure:  # any load failure: Celery would log it, then serve with no model
            exit_unloaded(sender.hostname, failure)

    @worker_shutdown.connect(weak=False)
    def stop(sender=None, **kwargs) -> None:
        if "runtime" in state:
            state.pop("runtime").stop()

    return app


def exit_unloaded(hostname: str, failure: Exception) -> NoReturn:
    """End a worker that cannot load its model, with status 2, before it consumes a task.

    Celery's signal dispatch logs and swallows an exception raised in `worker_init`, then the worker
    reports ready and takes tasks it can only answer 503 `not_ready`: better gone, so that a supervisor
    sees the failure and the other workers get the tasks. `os._exit`, not `sys.exit`: no caller on the
    way out (Celery, a CLI wrapper) can catch it, and nothing is consumed or buffered yet.
    """
    print(f"winnow worker {hostname}: error: cannot load the live model: {failure}; exiting", file=sys.stderr,
          flush=True)
    os._exit(2)
