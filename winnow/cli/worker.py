"""`winnow worker --broker redis://HOST:6379/0 --device cuda:0`: a Celery worker scoring one deployment.

One process per device (start one per GPU); its threads feed one batcher. It serves the version
`winnow deploy` made live and follows the registry with no restart.
"""

from __future__ import annotations

import argparse
import socket

from winnow.cli.options import add_flags
from winnow.serve.celery_app import CelerySettings, make_celery
from winnow.serve.registry import connect
from winnow.training.device import resolve_device
from winnow.training.distributed import DistInfo

TUNING = {  # flag -> (CelerySettings field, type, help)
    "--threads": ("threads", int, "tasks run at once, feeding one batcher"),
    "--max-batch-size": ("max_batch_size", int, "images per device batch"),
    "--max-wait-ms": ("max_wait_ms", float, "wait for more tasks after the first of a batch"),
    "--task-timeout": ("task_timeout_s", float, "longest a task may take, seconds"),
    "--visibility-timeout": ("visibility_timeout_s", float, "redeliver a task unacknowledged this long, seconds"),
    "--restore-interval": ("restore_interval_s", float, "how often to look for such tasks, seconds"),
}


def add_parser(sub) -> None:
    parser = sub.add_parser("worker", help="run a Celery worker that scores the deployed model")
    parser.add_argument("--broker", required=True, metavar="URL", help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--name", default="default", help="deployment name (default: default)")
    parser.add_argument("--hostname", default=None, help="worker name (default: NAME-DEVICE@host)")
    defaults = CelerySettings(broker="redis://")
    for flag, (field, kind, text) in TUNING.items():
        parser.add_argument(flag, dest=field, metavar="N", type=kind, default=getattr(defaults, field),
                            help=f"{text} (default: {getattr(defaults, field)})")
    add_flags(parser, "device")  # one worker process per device


def run(args: argparse.Namespace) -> int:
    tuning = {field: getattr(args, field) for field, *_ in TUNING.values()}
    settings = CelerySettings(broker=args.broker, name=args.name, device=args.device, **tuning)
    resolve_device(settings.device, DistInfo())  # a clear error now: a worker with no model must not start
    connect(settings.broker)  # a clear error now rather than Celery's retries
    hostname = args.hostname or f"{args.name}-{args.device.replace(':', '')}@{socket.gethostname()}"
    worker = make_celery(settings).Worker(hostname=hostname, queues=[settings.queue], loglevel="INFO")
    worker.start()
    return worker.exitcode or 0
