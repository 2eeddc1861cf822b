"""`create_app(settings, holder)`: the FastAPI app of `winnow serve`, built by a function (no globals).

Routes: `POST /v1/predict` (multipart files, or JSON `{"images": [base64, ...]}`), `GET /healthz`,
`GET /readyz`, `GET /metrics`, and `POST /admin/model` (bearer token from `WINNOW_ADMIN_TOKEN`).
Each request's images are read within the limits, decoded and validated one by one (a bad one fails
its request with 4xx and its reason), then submitted as one job to the batcher thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import contextlib
import secrets
import time
from functools import partial
from pathlib import Path

import torch
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from winnow.serve.batcher import Batcher, ModelChanged, QueueFull, Undecoded
from winnow.serve.front import QueueFront
from winnow.serve.holder import ModelHolder
from winnow.serve.images import BadImage, decode_image
from winnow.serve.metrics import ServeMetrics
from winnow.serve.model import ServedModel
from winnow.serve.settings import ServeSettings


class RequestError(Exception):
    """A request answered with `status` and a JSON `{"error": reason, "detail": ...}`."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes (Content-Length or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "body_too_large", f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body_too_large", f"the body passes the limit of {limit} bytes")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # starlette's own cache: request.form() parses it from there
    return request._body


async def uploaded_images(request: Request, settings: ServeSettings) -> list[bytes]:
    """The images of a request: multipart files, or JSON `{"images": [base64...]}` / `{"image": base64}`."""
    body = await read_body(request, settings.max_body_bytes)
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=settings.max_images + 1)
        except HTTPException as error:
            raise RequestError(413 if "Too many files" in str(error.detail) else 400, "bad_multipart",
                               str(error.detail)) from error
        blobs = [await value.read() for _, value in form.multi_items() if not isinstance(value, str)]
    elif kind.startswith("application/json"):
        blobs = _base64_images(body)
    else:
        raise RequestError(415, "unsupported_media_type", f"send multipart/form-data files or application/json "
                                                          f"with base64 images, got {kind or 'no content-type'}")
    if not blobs:
        raise RequestError(422, "no_images", "the request has no image")
    if len(blobs) > settings.max_images:
        raise RequestError(413, "too_many_images", f"{len(blobs)} images; the limit is {settings.max_images}")
    return blobs


def _base64_images(body: bytes) -> list[bytes]:
    try:
        payload = json.loads(body)
        items = payload["images"] if "images" in payload else [payload["image"]]
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise TypeError("images must be a list of strings")
        return [base64.b64decode(item, validate=True) for item in items]
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise RequestError(422, "bad_json", f'expected {{"images": ["<base64>", ...]}}: {error}') from error


def create_app(settings: ServeSettings, holder: ModelHolder, front: QueueFront | None = None) -> FastAPI:
    """The app serving `holder`'s model; it warms it and starts its batcher thread at start-up.

    Args:
        settings: Limits, batching and admin token.
        holder: The model holder (swapped by `POST /admin/model`); empty with `front`.
        front: Enqueue to Celery workers instead of running a model here (`winnow serve --broker`).
    """
    batcher = Batcher(holder, max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                      max_queue=settings.max_queue, instances=settings.model_instances)
    metrics = ServeMetrics(lambda: batcher.depth)
    batcher.on_batch = lambda size, seconds: metrics.batch_size.observe(size)
    if front is not None:
        front.check_timeout(settings.request_timeout_s)
        front.on_resend, front.on_task = metrics.resends.inc, metrics.tasks.inc
    state = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        if holder.current is not None:
            await run_in_threadpool(holder.current.warm_up, settings.max_batch_size)
            metrics.model_changed(holder.current, swapped=False)
            state["ready"] = True
        yield
        await run_in_threadpool(batcher.stop)

    app = FastAPI(title="winnow serve", lifespan=lifespan)
    app.state.metrics, app.state.batcher = metrics, batcher

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.reason, "detail": error.detail}, status_code=error.status)

    @app.middleware("http")
    async def count(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        if request.url.path == "/v1/predict":
            metrics.requests.labels(str(response.status_code)).inc()
            metrics.latency.observe(time.perf_counter() - start)
        return response

    def require_token(authorization: str | None = Header(default=None)) -> None:
        if settings.admin_token is None:
            raise RequestError(403, "admin_disabled", "admin endpoints are disabled: start the server with "
                                                      "WINNOW_ADMIN_TOKEN set to enable them")
        if not secrets.compare_digest(authorization or "", f"Bearer {settings.admin_token}"):
            raise RequestError(401, "bad_token", "send 'Authorization: Bearer <WINNOW_ADMIN_TOKEN>'")

    @app.post("/v1/predict")
    async def predict(request: Request) -> dict:
        if front is not None:
            return await _predict_remote(front, await uploaded_images(request, settings), settings)
        model = holder.current
        if not state["ready"] or model is None:
            raise RequestError(503, "not_ready", "no model is loaded and warmed up yet")
        blobs = await uploaded_images(request, settings)
        if settings.decode_in_batch:  # decoded by the batch thread, for the model that scores it
            images = Undecoded(blobs, partial(_decode_all, settings=settings))
            return {"predictions": await _predict_batched(batcher, images, None, settings)}
        images = await run_in_threadpool(partial(_decode_all, blobs, model, settings=settings))
        return {"predictions": await _predict_batched(batcher, images, model, settings)}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if front is not None:
            identity = await run_in_threadpool(front.identity)
            return JSONResponse({"status": "ready", **identity} if identity else {"status": "not_ready"},
                                status_code=200 if identity else 503)
        model = holder.current
        if not state["ready"] or model is None:
            return JSONResponse({"status": "not_ready"}, status_code=503)
        return JSONResponse({"status": "ready", **model.identity, "swaps": holder.swaps})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/model", dependencies=[Depends(require_token)])
    async def swap(request: Request) -> dict:
        if front is not None:
            raise RequestError(409, "use_deploy", "this server fronts Celery workers: publish the run to them with "
                                                  "`winnow deploy RUN --broker URL`")
        new = await _swap_to(await request.json(), holder, settings)
        metrics.model_changed(new, swapped=True)
        state["ready"] = True
        return {"status": "swapped", **new.identity, "swaps": holder.swaps}

    return app


async def _predict_batched(batcher: Batcher, images: torch.Tensor | Undecoded, model: ServedModel | None,
                           settings: ServeSettings) -> list[dict]:
    """The answers for one request's images `[n, C, S, S]` (decoded for `model`, or `Undecoded`), computed in
    the batcher's next batches."""
    try:
        future = batcher.submit(images, () if model is None else model.input_key)
    except QueueFull as error:
        raise RequestError(503, "overloaded", str(error)) from error
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), settings.request_timeout_s)
    except asyncio.TimeoutError as error:
        future.cancel()
        raise RequestError(503, "timeout", f"no result within {settings.request_timeout_s} s; "
                                           "the server is overloaded, retry later") from error
    except ModelChanged as error:
        raise RequestError(503, "model_changed", str(error)) from error


async def _swap_to(payload, holder: ModelHolder, settings: ServeSettings) -> ServedModel:
    """Load, warm and switch to the run `payload` names (`{"run": DIR, "checkpoint": "best"}`)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("run"), str):
        raise RequestError(422, "bad_json", 'expected {"run": "<run folder>", "checkpoint": "best"}')
    checkpoint = payload.get("checkpoint", "best")
    load = partial(ServedModel.load, Path(payload["run"]), checkpoint=checkpoint, device=settings.device)
    try:
        return await run_in_threadpool(holder.swap, load, warm_batch=settings.max_batch_size)
    except ValueError as error:
        raise RequestError(400, "bad_run", str(error)) from error


async def _predict_remote(front: QueueFront, blobs: list[bytes], settings: ServeSettings) -> dict:
    """The workers' answer to one request; their error dicts become the same 4xx/503 as here."""
    answer = await run_in_threadpool(partial(front.predict, blobs, max_pixels=settings.max_image_pixels,
                                             timeout=settings.request_timeout_s))
    if "error" in answer:
        raise RequestError(answer["status"], answer["error"], answer["detail"])
    return answer


def _decode_all(blobs: list[bytes], model: ServedModel, *, settings: ServeSettings) -> torch.Tensor:
    """Decode and validate every image of a request `[n, C, S, S]`; the first bad one answers the request."""
    try:
        return torch.stack([decode_image(blob, i, preprocess=model.preprocess, transform=model.transform,
                                         max_pixels=settings.max_image_pixels) for i, blob in enumerate(blobs)])
    except BadImage as error:
        raise RequestError(error.status, error.reason, str(error)) from error
