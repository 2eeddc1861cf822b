"""`WorkerRuntime`: the model, batcher and registry watcher inside one `winnow worker` process.

Celery's threads run the `winnow.predict_many` tasks (a few requests the front gathered; `winnow.predict`,
one request, is still answered); each decodes and validates every request's images
exactly as the HTTP server does and submits them to the process's one `Batcher`, which gathers the
concurrent tasks into device batches. A watcher thread follows the model registry (pub/sub, with a
poll as a fallback) and swaps the `ModelHolder`'s model between batches, with no restart.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import logging
import pickle
import threading
import time
from functools import partial
from typing import TYPE_CHECKING

import redis
import torch

from winnow.serve.batcher import Batcher, ModelChanged
from winnow.serve.holder import ModelHolder
from winnow.serve.images import BadImage, decode_image
from winnow.serve.model import ServedModel
from winnow.serve.registry import Deployment, ModelRegistry, connect

if TYPE_CHECKING:
    from winnow.serve.celery_app import CelerySettings

log = logging.getLogger("winnow")
MAX_IMAGE_PIXELS = 40_000_000


def error(status: int, reason: str, detail: str) -> dict:
    """A task answer the HTTP front turns into that status."""
    return {"error": reason, "status": status, "detail": detail}


class WorkerRuntime:
    """Loads the registry's live version, follows it, and answers tasks.

    Args:
        settings: The deployment's settings (broker, name, device, batching).
        hostname: This worker's name in the registry's worker list.
    """

    def __init__(self, settings: CelerySettings, *, hostname: str) -> None:
        self.settings, self.hostname = settings, hostname
        self.registry = ModelRegistry(connect(settings.broker), settings.name)
        self.holder = ModelHolder()
        self.batcher = Batcher(self.holder, max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                               max_queue=4 * settings.threads)
        self.loaded = threading.Event()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="winnow-registry", daemon=True)

    def start(self) -> WorkerRuntime:
        """Load the live version (if one is published), start the batcher and the watcher.

        Raises:
            ValueError, OSError, RuntimeError: The live version cannot be loaded here (bad run folder,
                device, memory): a worker with no model must not take tasks.
        """
        entry = self.registry.live()
        if entry is not None:
            self._load(entry)
        self.batcher.start()
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.batcher.stop()
        self.registry.client.hdel(self.registry.workers_key, self.hostname)

    def sync(self) -> None:
        """Swap to the registry's live version when it is not the one loaded (between batches)."""
        entry = self.registry.live()
        current = self.holder.current
        if entry is None or (current is not None and current.version == entry.version):
            return
        try:
            self._load(entry)
        # a bad run (unreadable, corrupt, out of device memory) keeps the worker on its model, and says why;
        # anything else escaping here would end the registry watcher and the worker would stop following deploys
        except (ValueError, OSError, RuntimeError, pickle.UnpicklingError) as failure:
            log.error("%s: cannot load version %s from %s: %s", self.hostname, entry.version, entry.run, failure)

    def _load(self, entry: Deployment) -> None:
        """Load, warm and switch to `entry`, then tell the registry."""
        load = partial(ServedModel.load, entry.run, checkpoint=entry.checkpoint, device=self.settings.device)
        model = self.holder.swap(load, warm_batch=self.settings.max_batch_size)
        log.info("%s: serving %s version %s", self.hostname, model.name, model.version)
        self.registry.report(self.hostname, model.version)
        self.loaded.set()

    def _watch(self) -> None:
        pubsub = self.registry.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.registry.channel)
        while not self._stop.is_set():
            try:
                pubsub.get_message(timeout=self.settings.registry_poll_s)
                self.sync()
            except redis.RedisError as failure:  # the broker restarts: keep the model, try again
                log.warning("%s: registry unreachable: %s", self.hostname, failure)
                self._stop.wait(self.settings.registry_poll_s)

    def predict(self, images: list[str], max_pixels: int = MAX_IMAGE_PIXELS) -> dict:
        """Base64 images of one request -> `{"predictions": [...]}` or an `error(...)` dict."""
        return self.predict_many([images], [max_pixels])[0]

    def predict_many(self, requests: list[list[str]], max_pixels: list[int]) -> list[dict]:
        """Several requests' base64 images (one task from the front) -> one answer per request, as `predict`.

        Each request is decoded and validated on its own (a bad image answers its request only) and submitted
        to the batcher as its own job, so the requests of a task are scored in the same batches.
        """
        if not self.loaded.wait(self.settings.task_timeout_s):
            return [error(503, "not_ready", f"no version of {self.settings.name!r} is deployed; run `winnow deploy`")
                    ] * len(requests)
        model = self.holder.current
        submitted = [self._submit(images, limit, model) for images, limit in zip(requests, max_pixels)]
        deadline = time.monotonic() + self.settings.task_timeout_s
        return [self._answer(job, deadline) for job in submitted]

    def _submit(self, images: list[str], max_pixels: int, model: ServedModel) -> concurrent.futures.Future | dict:
        """One request's images decoded and submitted to the batcher: its future, or the error of a bad image."""
        try:
            batch = torch.stack([decode_image(_bytes(blob, i), i, preprocess=model.preprocess,
                                              transform=model.transform, max_pixels=max_pixels)
                                 for i, blob in enumerate(images)])
        except BadImage as bad:
            return error(bad.status, bad.reason, str(bad))
        return self.batcher.submit(batch, model.input_key)

    def _answer(self, job: concurrent.futures.Future | dict, deadline: float) -> dict:
        if isinstance(job, dict):
            return job
        try:
            return {"predictions": job.result(max(0.0, deadline - time.monotonic()))}
        except ModelChanged as changed:
            return error(503, "model_changed", str(changed))
        except concurrent.futures.TimeoutError:
            return error(503, "timeout", f"{self.hostname} gave no result within {self.settings.task_timeout_s} s; "
                                         "the workers are overloaded, retry later")


def _bytes(blob: str, index: int) -> bytes:
    try:
        return base64.b64decode(blob, validate=True)
    except (binascii.Error, TypeError) as bad:
        raise BadImage(index, "not_an_image", f"the task's image is not base64: {bad}") from bad
