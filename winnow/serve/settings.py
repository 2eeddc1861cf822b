"""`ServeSettings`: every limit and knob of `winnow serve` in one object (passed to `create_app`)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from numbers import Integral, Real

from winnow.constraints import Interval, validate_params

ADMIN_TOKEN_ENV = "WINNOW_ADMIN_TOKEN"
POSITIVE = [Interval(Integral, 1, None, closed="left")]
NON_NEGATIVE = [Interval(Real, 0, None, closed="left")]
PARAMETER_CONSTRAINTS = {"max_batch_size": POSITIVE, "max_body_bytes": POSITIVE, "max_images": POSITIVE,
                         "max_image_pixels": POSITIVE, "max_queue": POSITIVE, "max_wait_ms": NON_NEGATIVE,
                         "request_timeout_s": NON_NEGATIVE, "model_instances": POSITIVE,
                         "decode_in_batch": [bool]}


@dataclass(frozen=True)
class ServeSettings:
    """Limits, batching and auth of one server.

    Attributes:
        max_batch_size: Most images the batcher runs through the model at once.
        max_wait_ms: How long the batcher waits for more requests after the first one of a batch.
        max_body_bytes: Largest request body (413 above).
        max_images: Most images in one request (413 above).
        max_image_pixels: Largest width x height of one image (413 above: decompression bombs).
        request_timeout_s: A request waiting longer for its batch gets 503.
        max_queue: Most requests waiting for the batcher (503 above: overloaded).
        admin_token: Bearer token of the admin endpoints; None disables them.
        device: Where models loaded by `POST /admin/model` run (auto, cpu, cuda:0...).
        model_instances: Batches scored at once, each by its own thread (see `Batcher`); `winnow serve`'s
            default, "auto", is resolved by `winnow.serve.batcher.model_instances`.
        decode_in_batch: Decode a request's images in the batch thread that scores them, just before its
            forward pass, rather than in a thread of their own as they arrive (for CPUs; see `Undecoded`).
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 20 * 1024 * 1024
    max_images: int = 64
    max_image_pixels: int = 40_000_000
    request_timeout_s: float = 30.0
    max_queue: int = 1024
    admin_token: str | None = None
    device: str = "auto"
    model_instances: int = 1
    decode_in_batch: bool = False

    def __post_init__(self) -> None:
        validate_params(asdict(self), PARAMETER_CONSTRAINTS, where="serve settings")

    @classmethod
    def from_env(cls, **values) -> ServeSettings:
        """Settings with the admin token read from `WINNOW_ADMIN_TOKEN` (unset or empty: admin disabled)."""
        return cls(admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None, **values)
