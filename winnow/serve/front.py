"""`QueueFront`: what `winnow serve --broker` does instead of running a model: enqueue, then wait.

The HTTP app reads and limits a request as usual, then sends its images (base64, JSON serialiser) as one
`winnow.predict` task to the deployment's queue and waits for the answer with the request timeout. The
workers decode, validate and score; their answer is the embedded server's, bad images included.
"""

from __future__ import annotations

import base64

from celery.exceptions import TimeoutError as CeleryTimeout

from winnow.serve.celery_app import TASK, CelerySettings, make_celery
from winnow.serve.registry import ModelRegistry, connect


class QueueFront:
    """Sends requests to the workers of one deployment.

    Args:
        settings: The deployment (broker URL, name) the workers run.
    """

    def __init__(self, settings: CelerySettings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(connect(settings.broker), settings.name)
        self.celery = make_celery(settings)

    def identity(self) -> dict[str, str] | None:
        """The live version in the registry (None before the first deploy)."""
        entry = self.registry.live()
        return None if entry is None else {"model": self.settings.name, "version": entry.version}

    def predict(self, blobs: list[bytes], *, max_pixels: int, timeout: float) -> dict:
        """One request's images -> the worker's `{"predictions": [...]}` or `{"error", "status", "detail"}`."""
        images = [base64.b64encode(blob).decode() for blob in blobs]
        result = self.celery.send_task(TASK, args=[images, max_pixels], queue=self.settings.queue)
        try:
            return result.get(timeout=timeout)
        except CeleryTimeout:
            result.revoke()
            return {"error": "timeout", "status": 503, "detail": f"no worker answered within {timeout} s; "
                                                                 "start `winnow worker` or retry later"}
        finally:
            result.forget()
