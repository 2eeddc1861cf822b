"""`QueueFront`: what `winnow serve --broker` does instead of running a model: enqueue, then wait.

The HTTP app reads and limits a request as usual, then hands its images (base64) to the front, which
gathers the requests arriving within `max_wait_ms` of each other, up to `task_images` images, into one
`winnow.predict_many` task (JSON serialiser) to the deployment's queue, and waits for the answers with the
request timeout. Celery's cost per task is then shared by the requests of a task. The workers decode,
validate and score each request on its own; their answer is the embedded server's, bad images included.

At-least-once: kombu's Redis transport pops a task before it records it as unacknowledged, so a worker
killed in between loses it for good (celery/celery#7950): no visibility timeout brings it back. A task
still unanswered after `resend_after` is sent once more (a new task id) and the first answer of the two
wins; predictions are pure functions of the images, so a duplicate costs work, never a wrong answer.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult

from winnow.serve.celery_app import TASK_MANY, CelerySettings, make_celery
from winnow.serve.gathering import Gatherer
from winnow.serve.registry import ModelRegistry, connect

POLL_S = 0.05  # how often the front looks at both tasks' results once it has sent one again
WAITERS = 256  # tasks the front waits for at once (each holds a thread blocked on its result)


@dataclass
class _Request:
    """One request's base64 images, waiting to be gathered into a task, and its answer to come."""

    images: list[str]
    max_pixels: int
    deadline: float  # time.monotonic() after which it is answered 503 timeout
    answer: Future = field(default_factory=Future)

    def __len__(self) -> int:
        return len(self.images)


class QueueFront:
    """Sends requests to the workers of one deployment.

    Args:
        settings: The deployment (broker URL, name) the workers run, when to send a task again, and how
            requests are gathered into tasks (`task_images`, `max_wait_ms`).

    Attributes:
        on_resend: Called each time a task is sent again (the app counts them in its metrics).
        on_task: Called each time a task is sent (the first time).
    """

    def __init__(self, settings: CelerySettings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(connect(settings.broker), settings.name)
        self.celery = make_celery(settings)
        self.on_resend: Callable[[], None] = lambda: None
        self.on_task: Callable[[], None] = lambda: None
        self._pending: queue.Queue[_Request] = queue.Queue()
        self._gatherer = Gatherer(self._pending, max_size=settings.task_images, max_wait_s=settings.max_wait_ms / 1000)
        self._waiters = ThreadPoolExecutor(WAITERS, thread_name_prefix="winnow-front-wait")
        threading.Thread(target=self._send_groups, name="winnow-front-gather", daemon=True).start()

    def identity(self) -> dict[str, str] | None:
        """The live version in the registry (None before the first deploy)."""
        entry = self.registry.live()
        return None if entry is None else {"model": self.settings.name, "version": entry.version}

    def check_timeout(self, request_timeout_s: float) -> None:
        """Refuse a `resend_after_s` set explicitly that no request lives long enough to reach."""
        after = self.settings.resend_after_s
        if after is not None and after >= request_timeout_s:
            raise ValueError(f"resend_after_s ({after} s, --resend-after) must be shorter than the request timeout "
                             f"({request_timeout_s} s, --request-timeout), or no task is ever sent again; lower it "
                             "or raise the request timeout")

    def resend_plan(self, request_timeout_s: float) -> str:
        """When a task is sent again, or why never (for the front's start-up line)."""
        after = self.settings.resend_after
        if after < request_timeout_s:
            return f"a task unanswered after {after:g} s is sent again"
        return (f"no task is sent again: --resend-after {after:g} s is not below --request-timeout "
                f"{request_timeout_s:g} s, so a task lost by a killed worker is answered 503 timeout")

    def predict(self, blobs: list[bytes], *, max_pixels: int, timeout: float) -> dict:
        """One request's images -> the worker's `{"predictions": [...]}` or `{"error", "status", "detail"}`."""
        request = _Request([base64.b64encode(blob).decode() for blob in blobs], max_pixels, time.monotonic() + timeout)
        self._pending.put(request)
        return request.answer.result()  # answered by its deadline at the latest (503 timeout)

    def _send_groups(self) -> None:
        while (group := self._gatherer.next_group()) is not None:
            self._waiters.submit(self._answer_group, group)

    def _answer_group(self, group: list[_Request]) -> None:
        """Send the group as one task and give each request its answer (or the task's error to all)."""
        try:
            answers = self._call([r.images for r in group], [r.max_pixels for r in group],
                                 timeout=max(0.0, min(r.deadline for r in group) - time.monotonic()))
        # a task that raised in its worker, or a broker the task could not reach: each request of the group gets
        # the error, as one request did before gathering (the app answers it), and no waiting thread is left hanging
        except Exception as failure:
            for request in group:
                request.answer.set_exception(failure)
            return
        for request, answer in zip(group, answers):
            request.answer.set_result(answer)

    def _call(self, requests: list[list[str]], max_pixels: list[int], *, timeout: float) -> list[dict]:
        """One `winnow.predict_many` task (sent again once if unanswered after `resend_after`) -> its answers."""
        send = partial(self.celery.send_task, TASK_MANY, args=[requests, max_pixels], queue=self.settings.queue)
        results = [send()]
        self.on_task()
        winner = None
        try:
            winner = self._wait(results, send, timeout)
            if winner is None:
                return [{"error": "timeout", "status": 503, "detail": f"no worker answered within {timeout:.3g} s; "
                                                                      "start `winnow worker` or retry later"}
                        ] * len(requests)
            return winner.get()
        finally:
            for result in results:
                if result is not winner:
                    result.revoke()  # a worker that receives it later drops it
                result.forget()

    def _wait(self, results: list[AsyncResult], send: Callable[[], AsyncResult], timeout: float) -> AsyncResult | None:
        """The first answered of `results` (one sent task; a second is appended if it is resent), or None."""
        deadline, after = time.monotonic() + timeout, self.settings.resend_after
        winner = _answered(results[0], min(timeout, after))
        if winner is None and after < timeout:  # lost (or held by a dead worker): send it once more
            results.append(send())
            self.on_resend()
            winner = _first_answered(results, deadline)
        return winner


def _answered(result: AsyncResult, timeout: float) -> AsyncResult | None:
    """`result` once its worker answered (pub/sub, no polling), or None after `timeout` seconds."""
    try:
        result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        return None
    return result


def _first_answered(results: list[AsyncResult], deadline: float) -> AsyncResult | None:
    """The first of `results` a worker answered, or None at `deadline` (time.monotonic)."""
    while time.monotonic() < deadline:
        for result in results:
            if result.ready():
                return result
        time.sleep(POLL_S)
    return None
