"""Scale-out: a real redis-server, real `winnow worker` subprocesses, the HTTP front over a real socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import redis

from winnow.cli.main import main
from winnow.serve import BackgroundServer, Client, ModelHolder, ServedModel, ServerError, ServeSettings, create_app
from winnow.serve.celery_app import CelerySettings
from winnow.serve.front import QueueFront
from winnow.serve.registry import ModelRegistry
from winnow.serve.server import free_port

from test_serve import SETTINGS, metric

NAME, VISIBILITY, RESEND = "t", 2.0, 1.0
QUEUE = f"winnow.{NAME}"
# A holds each task 1 s in its batcher (one thread, waiting for more images than a task of the front's brings),
# so a kill -9 finds it mid-task
WORKERS = {"A@test": ["--threads", "1", "--max-wait-ms", "1000", "--max-batch-size", "16"],
           "B@test": ["--threads", "2"]}
TIMEOUTS = ["--task-timeout", "1.5", "--visibility-timeout", str(VISIBILITY), "--restore-interval", "0.25"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    port = free_port()
    server = subprocess.Popen(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                              stdout=subprocess.DEVNULL)
    url, client = f"redis://127.0.0.1:{port}/0", redis.Redis(port=port)
    _until(lambda: _pings(client), "redis-server did not start")
    yield url
    server.terminate()
    server.wait()


@pytest.fixture(scope="module")
def runs(serve_runs):
    return serve_runs


@pytest.fixture(scope="module")
def cluster(broker, runs, tmp_path_factory):
    """Workers A (standby: not consuming; slow batches) and B of deployment NAME serving version `first`,
    and the HTTP front before them."""
    assert main(["deploy", str(runs["first"]), "--broker", broker, "--name", NAME]) == 0
    env, logs = {**os.environ, "PYTHONPATH": str(ROOT)}, tmp_path_factory.mktemp("workers")
    workers = {host: subprocess.Popen([sys.executable, "-m", "winnow.cli.main", "worker", "--broker", broker,
                                       "--name", NAME, "--device", "cpu", "--hostname", host, "--max-batch-size", "4",
                                       *TIMEOUTS, *options], env=env, cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=open(logs / f"{host}.log", "w"))
               for host, options in WORKERS.items()}
    registry = ModelRegistry(redis.Redis.from_url(broker), NAME)
    _until(lambda: len(registry.workers()) == 2, "the workers did not load the model", timeout=60)
    front = QueueFront(CelerySettings(broker=broker, name=NAME, task_timeout_s=1.5, visibility_timeout_s=VISIBILITY))
    front.celery.control.cancel_consumer(QUEUE, destination=["A@test"], reply=True)
    app = create_app(ServeSettings(**{**SETTINGS, "request_timeout_s": 15, "admin_token": "t0k"}), ModelHolder(), front)
    with BackgroundServer(app) as url:
        yield {"logs": logs, "url": url, "workers": workers, "registry": registry, "front": front, "broker": broker}
    for process in workers.values():  # a kill: what they ran is checked, their warm shutdown is not
        process.kill()
        process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def _until(condition, message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.05)


def test_the_front_answers_like_the_embedded_server(cluster, runs):
    app = create_app(ServeSettings(**SETTINGS), ModelHolder(ServedModel.load(runs["first"], device="cpu")))
    with BackgroundServer(app) as embedded, Client(embedded) as local, Client(cluster["url"]) as remote:
        expected, served = local.predict(runs["images"][:4]), remote.predict(runs["images"][:4])
        assert remote.ready()["version"] == served[0]["version"]
        with pytest.raises(ServerError, match="not_an_image") as error:
            remote.predict(b"hello, not an image")
    assert error.value.status == 422
    assert [p["decision"] for p in served] == [p["decision"] for p in expected]
    assert [(p["model"], p["version"]) for p in served] == [(p["model"], p["version"]) for p in expected]
    probs = lambda answers: np.array([list(p["probabilities"].values()) for p in answers])  # noqa: E731
    np.testing.assert_allclose(probs(served), probs(expected), atol=1e-5)


def test_the_front_gathers_concurrent_requests_into_tasks_and_a_bad_image_fails_only_its_own(cluster, runs):
    front = QueueFront(CelerySettings(broker=cluster["broker"], name=NAME, max_wait_ms=300, task_images=8))
    app = create_app(ServeSettings(**{**SETTINGS, "request_timeout_s": 15}), ModelHolder(), front)
    bodies = [path.read_bytes() for path in runs["images"][:4]] + [b"hello, not an image"]
    expected = Client(cluster["url"]).predict(runs["images"][:4])
    with BackgroundServer(app) as url, Client(url) as http, ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: _answer_or_error(http, body), bodies))
        tasks = metric(url, "winnow_tasks_total")
    assert [a[0]["decision"] for a in answers[:4]] == [p["decision"] for p in expected]
    assert isinstance(answers[4], ServerError) and answers[4].status == 422 and "not_an_image" in str(answers[4])
    assert 1 <= tasks < len(bodies)  # gathered: fewer tasks than requests


def _answer_or_error(http: Client, body: bytes) -> list[dict] | ServerError:
    try:
        return http.predict(body)
    except ServerError as error:
        return error


def test_deploy_swaps_every_worker_and_rollback_returns(cluster, runs, capsys):
    registry, broker = cluster["registry"], cluster["broker"]
    first = registry.live().version
    assert main(["deploy", str(runs["second"]), "--broker", broker, "--name", NAME]) == 0
    second = registry.live().version
    assert second != first
    _until(lambda: set(registry.workers().values()) == {second}, "the workers did not swap")
    with Client(cluster["url"]) as client:
        answers = [client.predict(path)[0] for path in runs["images"]]
        assert {(a["model"], a["version"]) for a in answers} == {("second", second)}
        assert main(["deploy", "--list", "--broker", broker, "--name", NAME]) == 0
        listing = capsys.readouterr().out
        assert listing.index(second) < listing.index(first) and "worker A@test: " + second in listing
        assert main(["deploy", "--rollback", "--broker", broker, "--name", NAME]) == 0
        _until(lambda: set(registry.workers().values()) == {first}, "the workers did not roll back")
        assert {client.predict(path)[0]["version"] for path in runs["images"]} == {first}
    assert all(process.poll() is None for process in cluster["workers"].values())  # no restart
    with pytest.raises(ServerError, match="use_deploy.*winnow deploy"):
        Client(cluster["url"], token="t0k").swap(runs["second"])  # the front has no model to swap


def test_a_killed_workers_task_is_redelivered(cluster, runs):
    """kill -9 A while it holds an unacknowledged task: B gets it after the visibility timeout."""
    client, workers = redis.Redis.from_url(cluster["broker"]), cluster["workers"]
    control = cluster["front"].celery.control
    control.cancel_consumer(QUEUE, destination=["B@test"], reply=True)
    control.add_consumer(QUEUE, destination=["A@test"], reply=True)
    image = runs["images"][0].read_bytes()
    with Client(cluster["url"]) as http, ThreadPoolExecutor(4) as pool:
        start = time.monotonic()
        futures = [pool.submit(_timed, http, image) for _ in range(4)]
        _until(lambda: client.hlen("unacked") > 0, "worker A took no task")
        control.add_consumer(QUEUE, destination=["B@test"], reply=True)
        workers["A@test"].send_signal(signal.SIGKILL)
        workers["A@test"].wait(5)
        latencies = [future.result() for future in futures]  # every accepted request succeeds
    assert max(latencies) >= VISIBILITY, latencies  # the redelivered ones waited for the visibility timeout
    assert max(latencies) < VISIBILITY + 5, latencies
    print(f"redelivery delay: {max(latencies):.2f} s with a {VISIBILITY} s visibility timeout; "
          f"all 4 requests answered in {time.monotonic() - start:.2f} s")


def test_a_task_lost_between_pop_and_unacked_is_sent_again(cluster, runs):
    """The kombu race (celery/celery#7950), made deterministic: the task leaves the queue list and is never
    recorded as unacknowledged, so no visibility timeout brings it back; the front sends it again."""
    client, control, lost = redis.Redis.from_url(cluster["broker"]), cluster["front"].celery.control, "winnow.lost"
    front = QueueFront(CelerySettings(broker=cluster["broker"], name="lost", resend_after_s=RESEND))
    app = create_app(ServeSettings(**{**SETTINGS, "request_timeout_s": 10}), ModelHolder(), front)
    with BackgroundServer(app) as url, Client(url) as http, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_timed, http, runs["images"][0].read_bytes())
        _until(lambda: client.llen(lost) == 1, "the front sent no task")  # no worker consumes winnow.lost yet
        message = json.loads(client.rpop(lost))  # what a worker killed right after its BRPOP takes with it
        control.add_consumer(lost, destination=["B@test"], reply=True)
        try:
            latency = answer.result()
        finally:
            control.cancel_consumer(lost, destination=["B@test"], reply=True)
        assert message["headers"]["task"] == "winnow.predict_many"
        assert RESEND <= latency < RESEND + 3, latency
        assert metric(url, "winnow_resends_total") == 1
        assert metric(url, "winnow_requests_total") == 1  # one request, one answer (200): nothing new to see
    assert client.hlen("unacked") == 0 and client.llen(lost) == 0


def test_resend_after_is_checked(broker, capsys):
    with pytest.raises(ValueError, match="resend_after_s must be None or a number > 0"):
        CelerySettings(broker=broker, resend_after_s=0)
    front = QueueFront(CelerySettings(broker=broker, resend_after_s=20))
    with pytest.raises(ValueError, match=r"resend_after_s \(20 s, --resend-after\) must be shorter than the request"):
        create_app(ServeSettings(request_timeout_s=15), ModelHolder(), front)
    assert main(["serve", "--broker", broker, "--request-timeout", "5", "--resend-after", "5"]) == 2
    assert "must be shorter than the request timeout (5.0 s, --request-timeout)" in capsys.readouterr().err
    assert "no task is sent again: --resend-after 3620 s" in QueueFront(CelerySettings(broker=broker)).resend_plan(30)


def test_a_worker_that_cannot_load_its_model_exits(broker, runs, tmp_path, capsys):
    assert main(["worker", "--broker", broker, "--device", "bogus"]) == 2
    assert "device='bogus' is not a device" in capsys.readouterr().err
    gone = Path(shutil.copytree(runs["first"], tmp_path / "gone"))
    ModelRegistry(redis.Redis.from_url(broker), "broken").publish(gone)
    shutil.rmtree(gone)  # the live version's run folder is unreadable by the worker
    command = [sys.executable, "-m", "winnow.cli.main", "worker", "--broker", broker, "--name", "broken", "--device",
               "cpu", "--hostname", "broken@test"]
    worker = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert worker.returncode == 2, worker.stderr
    assert "broken@test: error: cannot load the live model" in worker.stderr and str(gone) in worker.stderr
    assert "ready." not in worker.stderr  # it took no task


def _timed(http: Client, image: bytes) -> float:
    start = time.monotonic()
    assert http.predict(image)[0]["decision"]
    return time.monotonic() - start


def test_bad_broker_and_deploy_input_are_clear_errors(broker, capsys, tmp_path):
    assert main(["deploy", "--list", "--broker", "http://127.0.0.1:6379"]) == 2
    assert "not a Redis URL" in capsys.readouterr().err
    assert main(["worker", "--broker", f"redis://127.0.0.1:{free_port()}/0"]) == 2
    assert "cannot reach the broker" in capsys.readouterr().err
    assert main(["deploy", "--rollback", "--broker", broker, "--name", "empty"]) == 2
    assert "no earlier version" in capsys.readouterr().err
    assert main(["deploy", str(tmp_path), "--broker", broker, "--name", "empty"]) == 2
    assert "not found in" in capsys.readouterr().err  # not a run folder: nothing published
    assert ModelRegistry(redis.Redis.from_url(broker), "empty").live() is None
    assert main(["serve", "some-run", "--broker", broker]) == 2
    assert "drop RUN" in capsys.readouterr().err
    with pytest.raises(ValueError, match="visibility_timeout_s .* must be longer"):
        CelerySettings(broker=broker, task_timeout_s=10, visibility_timeout_s=5)
