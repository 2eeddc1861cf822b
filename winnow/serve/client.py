"""`winnow.serve.Client`: predict, health and swap against a `winnow serve` server (httpx)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx


class ServerError(RuntimeError):
    """A 4xx/5xx answer: `status`, `reason` (e.g. "too_large") and the server's detail."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status, self.reason, self.detail = status, reason, detail


class Client:
    """A client of one server.

    Args:
        url: e.g. "http://127.0.0.1:8000".
        token: Admin bearer token (for `swap`).
        timeout: Seconds per request.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.token = token

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def predict(self, images: list[str | Path | bytes] | str | Path | bytes, *,
                as_base64: bool = False) -> list[dict[str, Any]]:
        """Per image: decision, probabilities, model and version (multipart upload, or base64 JSON)."""
        blobs = [self._bytes(i) for i in (images if isinstance(images, list) else [images])]
        if as_base64:
            response = self.http.post("/v1/predict", json={"images": [base64.b64encode(b).decode() for b in blobs]})
        else:
            response = self.http.post("/v1/predict", files=[("files", (f"image{i}", b)) for i, b in enumerate(blobs)])
        return self._json(response)["predictions"]

    def health(self) -> dict[str, Any]:
        return self._json(self.http.get("/healthz"))

    def ready(self) -> dict[str, Any]:
        """The live model and version; raises `ServerError` (503) while none is warmed up."""
        return self._json(self.http.get("/readyz"))

    def swap(self, run_dir: str | Path, *, checkpoint: str = "best") -> dict[str, Any]:
        """Load `run_dir` on the server, warm it, make it live; returns its model and version."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self._json(self.http.post("/admin/model", json={"run": str(run_dir), "checkpoint": checkpoint},
                                         headers=headers, timeout=None))

    @staticmethod
    def _bytes(image: str | Path | bytes) -> bytes:
        return image if isinstance(image, bytes) else Path(image).read_bytes()

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.is_error:
            raise ServerError(response.status_code, body.get("error", "error"), body.get("detail", response.text))
        return body
