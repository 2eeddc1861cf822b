"""`ModelRegistry`: which run each named deployment serves, kept in Redis so every worker agrees.

A deployment `name` (e.g. "chromosome") has a hash of published versions (version -> run folder, checkpoint),
a history list whose last entry is the live version, and a pub/sub channel told at every change. Versions
are the weights' checksum (`weights_version`), so the same file published twice is the same version.
Workers report the version they run in a hash (`deploy --list` shows it).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from winnow.inference.predictor import resolve_checkpoint
from winnow.serve.model import weights_version

BROKER_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class Deployment:
    """One published version: the run folder every worker can read, its checkpoint and checksum version."""

    version: str
    run: str
    checkpoint: str = "best"
    published: float = 0.0


def check_broker_url(url: str) -> str:
    """`url` when it is a Redis URL; ValueError saying what is expected otherwise."""
    if not isinstance(url, str) or not url.startswith(BROKER_SCHEMES):
        raise ValueError(f"--broker {url!r} is not a Redis URL; expected one starting with "
                         f"{', '.join(BROKER_SCHEMES)}, e.g. redis://127.0.0.1:6379/0")
    return url


def connect(url: str) -> redis.Redis:
    """A Redis client of the broker, checked with a ping; ValueError when it cannot be reached."""
    client = redis.Redis.from_url(check_broker_url(url), socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ValueError(f"cannot reach the broker at {url}: {error}; start redis-server there "
                         "or pass the right --broker URL") from error
    return client


class ModelRegistry:
    """The versions of deployment `name` in the Redis of `client`.

    Args:
        client: A Redis client (`connect(url)`).
        name: Deployment name; workers and fronts of one name share its versions.
    """

    def __init__(self, client: redis.Redis, name: str = "default") -> None:
        self.client, self.name = client, name
        prefix = f"winnow:registry:{name}"
        self.versions_key, self.history_key = f"{prefix}:versions", f"{prefix}:history"
        self.workers_key, self.channel = f"{prefix}:workers", prefix

    def publish(self, run_dir: str | Path, *, checkpoint: str = "best") -> Deployment:
        """Make the run live: record its version (checksum of the checkpoint) and tell the workers."""
        run = Path(run_dir).resolve()
        path = resolve_checkpoint(run, checkpoint)
        entry = Deployment(weights_version(path), str(run), checkpoint, time.time())
        with self.client.pipeline() as pipe:
            pipe.hset(self.versions_key, entry.version, json.dumps(asdict(entry)))
            pipe.rpush(self.history_key, entry.version)
            pipe.publish(self.channel, entry.version)
            pipe.execute()
        return entry

    def live(self) -> Deployment | None:
        """The live version, or None before the first `publish`."""
        version = self.client.lindex(self.history_key, -1)
        return None if version is None else self._entry(version)

    def history(self) -> list[Deployment]:
        """Every version made live, oldest first (the last is live)."""
        return [self._entry(v) for v in self.client.lrange(self.history_key, 0, -1)]

    def rollback(self) -> Deployment:
        """Make the version live before the current one live again; ValueError when there is none."""
        if self.client.llen(self.history_key) < 2:
            raise ValueError(f"deployment {self.name!r} has no earlier version to roll back to; "
                             "publish one with `winnow deploy RUN`")
        self.client.rpop(self.history_key)
        entry = self.live()
        self.client.publish(self.channel, entry.version)
        return entry

    def report(self, worker: str, version: str | None) -> None:
        """A worker says which version it runs now."""
        self.client.hset(self.workers_key, worker, version or "")

    def workers(self) -> dict[str, str]:
        """Worker name -> the version it last reported."""
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.workers_key).items()}

    def _entry(self, version: bytes | str) -> Deployment:
        key = version.decode() if isinstance(version, bytes) else version
        return Deployment(**json.loads(self.client.hget(self.versions_key, key)))
