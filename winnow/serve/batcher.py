"""`Batcher`: one thread that gathers concurrent jobs into device batches (dynamic batching).

A job is the decoded images of one request `[n, C, S, S]`; the thread takes the first waiting job,
waits up to `max_wait_ms` for more until `max_batch_size` images are gathered, scores them in one call
on the model the holder has at that moment, and resolves each job's `concurrent.futures.Future` with its
own rows. Images are decoded and validated before they are submitted, so one bad image never reaches a
batch. The thread uses no asyncio: a queue worker (Celery) can feed it the same way as the HTTP app.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from winnow.serve.gathering import STOP, Gatherer
from winnow.serve.holder import ModelHolder
from winnow.serve.model import ServedModel

log = logging.getLogger("winnow")


class QueueFull(RuntimeError):
    """More jobs wait than `max_queue`: the caller answers 503."""


class ModelChanged(RuntimeError):
    """A swap to a model with other preprocessing came between a job's decode and its batch: retry it."""


class Undecoded:
    """A request's image files, decoded by the batch thread that scores them (`decode(model)` -> `[n, C, S, S]`).

    On a CPU, decoding in the thread that then runs the forward pass keeps decoding from contending with a
    forward pass for the cores (`winnow serve --decode-in-batch`); on a GPU, decoding while it computes is
    better (the default: decoded per request before submitting).
    """

    def __init__(self, blobs: list[bytes], decode) -> None:
        self.blobs, self._decode = blobs, decode  # decode(blobs, model) -> [n, C, S, S]

    def __len__(self) -> int:
        return len(self.blobs)

    def decode(self, model: ServedModel) -> torch.Tensor:
        return self._decode(self.blobs, model)


@dataclass
class Job:
    images: torch.Tensor | Undecoded
    input_key: tuple = ()
    future: Future = field(default_factory=Future)


class Batcher:
    """Gathers jobs into batches of at most `max_batch_size` images and scores them on `holder`'s model.

    Args:
        holder: Where the live model is.
        max_batch_size: Images per batch (a larger job runs alone, in one call).
        max_wait_ms: Wait for more jobs after the first of a batch.
        max_queue: Jobs waiting at most (`submit` raises `QueueFull` above).
        on_batch: Called with `(images in the batch, seconds)` after each batch (metrics).
        instances: Batches scored at once, each by its own thread on the same model (Triton's model
            instances). On a CPU, N instances with 1/N of the cores' torch threads each keep the cores busy
            while requests are decoded, where one batch at a time on all threads stalls its threads beside
            the decoding (measured in the README); on a GPU keep 1.
    """

    def __init__(self, holder: ModelHolder, *, max_batch_size: int, max_wait_ms: float, max_queue: int,
                 on_batch=None, instances: int = 1) -> None:
        self.holder, self.max_batch_size, self.max_wait = holder, max_batch_size, max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._gatherer = Gatherer(self._queue, max_size=max_batch_size, max_wait_s=self.max_wait,
                                  size=lambda job: len(job.images))
        self._gathering = threading.Lock()  # one thread gathers at a time: the carried job stays in order
        self._threads = [threading.Thread(target=self._loop, name=f"winnow-batcher-{i}", daemon=True)
                         for i in range(instances)]

    @property
    def depth(self) -> int:
        """Jobs waiting for a batch."""
        return self._queue.qsize()

    def start(self) -> Batcher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Finish the batches in the queue, then end the threads."""
        for _ in self._threads:
            self._queue.put(STOP)
        for thread in self._threads:
            thread.join()

    def submit(self, images: torch.Tensor, input_key: tuple = ()) -> Future:
        """Queue a job `[n, C, S, S]` decoded for models of `input_key`; its future gives one result dict per
        image, or the model's error (`ModelChanged` when the live model takes other inputs by then)."""
        job = Job(images, input_key)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests are waiting; retry later") from None
        return job.future

    def _loop(self) -> None:
        while True:
            with self._gathering:
                jobs = self._gather()
            if jobs is None:
                return
            if jobs:
                self._run(jobs)

    def _gather(self) -> list[Job] | None:
        """The jobs of the next batch ([] when every one was cancelled), None to stop."""
        jobs = self._gatherer.next_group()
        if jobs is None:
            return None
        return [job for job in jobs if job.future.set_running_or_notify_cancel()]

    def _run(self, jobs: list[Job]) -> None:
        """Score the jobs' images in one call on the live model; each job gets its rows, or the error."""
        start = time.perf_counter()
        try:
            model = self.holder.acquire()
        except RuntimeError as error:
            return self._fail(jobs, error)
        jobs = self._decoded(jobs, model)
        stale = [job for job in jobs if job.input_key and job.input_key != model.input_key]
        self._fail(stale, ModelChanged(f"the model was swapped to {model.name} {model.version}, which preprocesses "
                                       "images otherwise, after this request was decoded; send it again"))
        jobs = [job for job in jobs if job not in stale]
        try:
            results = model.score(torch.cat([job.images for job in jobs])) if jobs else []
        except Exception as error:  # a model failure fails this batch's requests (500), never the thread
            log.exception("batch of %d jobs failed", len(jobs))
            return self._fail(jobs, error)
        finally:
            self.holder.release(model)
        offset = 0
        for job in jobs:
            job.future.set_result(results[offset:offset + len(job.images)])
            offset += len(job.images)
        if self.on_batch is not None and offset:
            self.on_batch(offset, time.perf_counter() - start)

    @staticmethod
    def _decoded(jobs: list[Job], model: ServedModel) -> list[Job]:
        """Decode the undecoded jobs for `model`; a job whose images fail gets its error, the others go on."""
        kept = []
        for job in jobs:
            if isinstance(job.images, Undecoded):
                try:
                    job.images = job.images.decode(model)
                # its own bad image (or any decode failure) answers that request, never the batch's others
                except Exception as error:
                    job.future.set_exception(error)
                    continue
            kept.append(job)
        return kept

    @staticmethod
    def _fail(jobs: list[Job], error: BaseException) -> None:
        for job in jobs:
            job.future.set_exception(error)


AUTO = "auto"
CPU_INSTANCES = 2  # bench/serve.py on 2 cores: 0.54-0.61 x offline with 1 instance, 0.76-0.94 with 2 (README)


def model_instances(requested: int | str, device: torch.device) -> int:
    """`--model-instances`: a count as given; "auto" is 1 on a GPU and 2 on a CPU with 2 torch threads or more.

    Raises:
        ValueError: Neither "auto" nor a whole number of at least 1.
    """
    if requested == AUTO:
        return 1 if device.type != "cpu" else max(1, min(CPU_INSTANCES, torch.get_num_threads()))
    try:
        count = int(requested)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or str(count) != str(requested).strip():
        raise ValueError(f"--model-instances: expected 'auto' or a whole number >= 1, got {requested!r}")
    return count


def share_cpu_threads(instances: int) -> int:
    """Give each of `instances` concurrent batches an equal share of torch's CPU threads; the share."""
    share = max(1, torch.get_num_threads() // instances)
    torch.set_num_threads(share)
    return share
