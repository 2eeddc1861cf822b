"""`winnow serve RUN`: the run behind an HTTP API with dynamic batching (FastAPI + uvicorn).

Binds 127.0.0.1 unless `--host` says otherwise. `POST /admin/model` (swap) needs the bearer token in
the environment variable WINNOW_ADMIN_TOKEN; without it the admin endpoints are disabled.
"""

from __future__ import annotations

import argparse

from winnow.cli.options import add_flags
from winnow.serve.app import create_app
from winnow.serve.batcher import AUTO, model_instances, share_cpu_threads
from winnow.serve.celery_app import CelerySettings
from winnow.serve.front import QueueFront
from winnow.serve.holder import ModelHolder
from winnow.serve.model import ServedModel
from winnow.serve.server import serve_forever
from winnow.serve.settings import ADMIN_TOKEN_ENV, ServeSettings
from winnow.training.device import resolve_device
from winnow.training.distributed import DistInfo

LIMITS = {  # flag -> (ServeSettings field, type, help)
    "--max-batch-size": ("max_batch_size", int, "images per device batch"),
    "--max-wait-ms": ("max_wait_ms", float, "wait for more requests after the first of a batch"),
    "--max-body-bytes": ("max_body_bytes", int, "largest request body (413 above)"),
    "--max-images": ("max_images", int, "most images per request (413 above)"),
    "--max-image-pixels": ("max_image_pixels", int, "largest width x height per image (413 above)"),
    "--request-timeout": ("request_timeout_s", float, "seconds a request may wait (503 after)"),
    "--max-queue": ("max_queue", int, "most requests waiting for a batch (503 above)"),
}


def add_parser(sub) -> None:
    parser = sub.add_parser("serve", help="serve a run over HTTP with dynamic batching")
    parser.add_argument("run_dir", metavar="RUN", nargs="?", help="run folder from `winnow train` (not with --broker)")
    parser.add_argument("--broker", metavar="URL", default=None,
                        help="Redis URL: enqueue to `winnow worker`s instead of running the model here")
    parser.add_argument("--name", default="default", help="deployment name with --broker (default: default)")
    parser.add_argument("--resend-after", metavar="SECONDS", type=float, default=None,
                        help="with --broker: send a task again when no worker answered it this long (a task lost "
                             "by a killed worker); set it to the workers' --visibility-timeout + 2 x "
                             "--restore-interval (default: 3620, from the workers' defaults 3600 and 10)")
    parser.add_argument("--task-images", metavar="N", type=int, default=CelerySettings.task_images,
                        help="with --broker: most images gathered into one Celery task, from requests that arrive "
                             f"within --max-wait-ms of each other (default: {CelerySettings.task_images}; 1: a task "
                             "per request)")
    parser.add_argument("--decode-in-batch", action="store_true",
                        help="decode each request's images in the batch thread, just before its forward pass (on a "
                             "CPU with --model-instances 2: the forward pass and decoding do not contend)")
    parser.add_argument("--model-instances", metavar="N|auto", default=AUTO,
                        help="batches scored at once, each by its own thread, the torch threads split between them "
                             "on a CPU (default: auto, 2 on a CPU and 1 on a GPU)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    defaults = ServeSettings()
    for flag, (field, kind, text) in LIMITS.items():
        parser.add_argument(flag, dest=field, metavar="N", type=kind, default=getattr(defaults, field),
                            help=f"{text} (default: {getattr(defaults, field)})")
    add_flags(parser, "checkpoint", "device")


def run(args: argparse.Namespace) -> int:
    limits = {field: getattr(args, field) for field, *_ in LIMITS.values()}
    if args.broker is not None:  # the workers run the model: no instances here
        return _serve_front(args, ServeSettings.from_env(device=args.device, decode_in_batch=args.decode_in_batch,
                                                         **limits))
    if args.run_dir is None:
        raise ValueError("pass a RUN folder to serve, or --broker URL to front `winnow worker`s")
    instances = model_instances(args.model_instances, resolve_device(args.device, DistInfo()))
    settings = ServeSettings.from_env(device=args.device, decode_in_batch=args.decode_in_batch,
                                      model_instances=instances, **limits)
    model = ServedModel.load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    if settings.model_instances > 1:
        print(f"{settings.model_instances} model instances, {share_cpu_threads(settings.model_instances)} torch "
              "CPU thread(s) each")
    admin = "enabled" if settings.admin_token else f"disabled (set {ADMIN_TOKEN_ENV} to enable)"
    print(f"serving {model.name} version {model.version} on http://{args.host}:{args.port}; admin endpoints {admin}")
    serve_forever(create_app(settings, ModelHolder(model)), host=args.host, port=args.port)
    return 0


def _serve_front(args: argparse.Namespace, settings: ServeSettings) -> int:
    if args.run_dir is not None:
        raise ValueError(f"with --broker the workers run the model: drop RUN ({args.run_dir}) and publish it with "
                         "`winnow deploy RUN --broker URL`")
    # the workers' timeouts are theirs; the front's settings only say when to send a task again
    front = QueueFront(CelerySettings(broker=args.broker, name=args.name, resend_after_s=args.resend_after,
                                      task_images=args.task_images, max_wait_ms=settings.max_wait_ms))
    app = create_app(settings, ModelHolder(), front)
    print(f"front of deployment {args.name!r} over {args.broker} on http://{args.host}:{args.port}; "
          f"{front.resend_plan(settings.request_timeout_s)}")
    serve_forever(app, host=args.host, port=args.port)
    return 0
