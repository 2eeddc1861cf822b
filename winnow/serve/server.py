"""Run an app with uvicorn: in the foreground (`winnow serve`) or in a background thread (tests, bench)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_forever(app: FastAPI, *, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM finish the requests in flight)."""
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


class BackgroundServer:
    """`with BackgroundServer(app) as url:` uvicorn on a free port of 127.0.0.1 in a thread.

    Args:
        app: The app.
        start_timeout: Seconds to wait for start-up (model warm-up included).

    Raises:
        RuntimeError: The server did not start in time.
    """

    def __init__(self, app: FastAPI, *, start_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="winnow-uvicorn", daemon=True)
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start within {self.start_timeout} s")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()
