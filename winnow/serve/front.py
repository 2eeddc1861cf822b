"""`QueueFront`: what `winnow serve --broker` does instead of running a model: enqueue, then wait.

The HTTP app reads and limits a request as usual, then sends its images (base64, JSON serialiser) as one
`winnow.predict` task to the deployment's queue and waits for the answer with the request timeout. The
workers decode, validate and score; their answer is the embedded server's, bad images included.

At-least-once: kombu's Redis transport pops a task before it records it as unacknowledged, so a worker
killed in between loses it for good (celery/celery#7950): no visibility timeout brings it back. A task
still unanswered after `resend_after` is sent once more (a new task id) and the first answer of the two
wins; predictions are pure functions of the images, so a duplicate costs work, never a wrong answer.
"""

from __future__ import annotations

import base64
import time
from functools import partial
from typing import Callable

from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult

from winnow.serve.celery_app import TASK, CelerySettings, make_celery
from winnow.serve.registry import ModelRegistry, connect

POLL_S = 0.05  # how often the front looks at both tasks' results once it has sent one again


class QueueFront:
    """Sends requests to the workers of one deployment.

    Args:
        settings: The deployment (broker URL, name) the workers run, and when to send a task again.

    Attributes:
        on_resend: Called each time a task is sent again (the app counts them in its metrics).
    """

    def __init__(self, settings: CelerySettings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(connect(settings.broker), settings.name)
        self.celery = make_celery(settings)
        self.on_resend: Callable[[], None] = lambda: None

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
        images = [base64.b64encode(blob).decode() for blob in blobs]
        send = partial(self.celery.send_task, TASK, args=[images, max_pixels], queue=self.settings.queue)
        results = [send()]
        winner = None
        try:
            winner = self._wait(results, send, timeout)
            if winner is None:
                return {"error": "timeout", "status": 503, "detail": f"no worker answered within {timeout} s; "
                                                                     "start `winnow worker` or retry later"}
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
