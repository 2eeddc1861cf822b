"""`winnow serve` over a real socket: uvicorn on a free port in a thread, httpx clients, tiny trained runs."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import winnow
from winnow.serve import (BackgroundServer, Batcher, Client, ModelHolder, ServedModel, ServerError, ServeSettings,
                          create_app)
from winnow.serve.batcher import ModelChanged, model_instances
from winnow.serve.gathering import Gatherer

TOKEN = "test-token"
SETTINGS = dict(max_batch_size=8, max_wait_ms=30, max_body_bytes=300_000, max_images=4, max_image_pixels=100_000,
                device="cpu")


@pytest.fixture(scope="module")
def runs(serve_runs) -> dict[str, Path]:
    return serve_runs


@pytest.fixture(scope="module")
def server(runs):
    holder = ModelHolder(ServedModel.load(runs["first"], device="cpu"))
    app = create_app(ServeSettings(admin_token=TOKEN, **SETTINGS), holder)
    with BackgroundServer(app) as url:
        yield url


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def metric(url: str, name: str) -> float:
    """Sum of a metric's samples named exactly `name` in /metrics."""
    text = httpx.get(f"{url}/metrics").text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_predictions_equal_offline_predict_multipart_and_base64(server, runs):
    offline = winnow.load(runs["first"], device="cpu").predict(runs["images"])
    with Client(server) as client:
        single = client.predict(runs["images"][0])
        many = client.predict(runs["images"][:4])
        many_b64 = client.predict(runs["images"][:4], as_base64=True)
        assert client.health() == {"status": "alive"}
        assert client.ready()["version"] == single[0]["version"]
    assert len(single) == 1 and len(many) == 4 and many == many_b64
    assert [p["decision"] for p in many] == offline.predicted[:4]
    served = np.array([[p["probabilities"][c] for c in offline.classes] for p in many])
    np.testing.assert_allclose(served, offline.probabilities[:4], atol=1e-5)  # calibration.json applied
    assert single[0]["model"] == "first" and len(single[0]["version"]) == 12


def test_bad_images_fail_alone_in_a_concurrent_burst(server, runs):
    good = runs["images"][0].read_bytes()
    bad = {"not_an_image": b"hello, not an image", "empty": b"", "truncated": good[: len(good) // 2],
           "too_large": png(np.zeros((400, 400), np.uint8))}
    expected = {"not_an_image": 422, "empty": 422, "truncated": 422, "too_large": 413}
    burst = [("good", good)] * 12 + list(bad.items()) * 2
    with Client(server) as client, ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda item: _outcome(client, item[1]), burst))
    for (kind, _), outcome in zip(burst, outcomes):
        if kind == "good":
            assert outcome[0] == "decision", outcome
        else:
            assert outcome[:2] == (expected[kind], kind), (kind, outcome)


def _outcome(client: Client, data: bytes) -> tuple:
    try:
        return ("decision", client.predict(data)[0]["decision"])
    except ServerError as error:
        return (error.status, error.reason, error.detail)


def test_limits_are_413_415_and_explained(server, runs):
    image = runs["images"][0].read_bytes()
    with Client(server) as client:
        with pytest.raises(ServerError, match="too_many_images.*limit is 4"):
            client.predict([image] * 5)
        with pytest.raises(ServerError, match="body_too_large.*300000") as error:
            client.predict(png(np.random.default_rng(0).integers(0, 255, (600, 600), np.uint8)))
        assert error.value.status == 413
    response = httpx.post(f"{server}/v1/predict", content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "multipart" in response.json()["detail"]
    response = httpx.post(f"{server}/v1/predict", json={"images": ["%%%"]})
    assert response.status_code == 422 and response.json()["error"] == "bad_json"


def test_concurrent_requests_are_batched(server, runs):
    batches, images = metric(server, "winnow_batch_size_count"), metric(server, "winnow_batch_size_sum")
    with Client(server) as client, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda path: client.predict(path), runs["images"] * 6))
    batches = metric(server, "winnow_batch_size_count") - batches
    images = metric(server, "winnow_batch_size_sum") - images
    assert images == 30 and batches < 30 / 2, (images, batches)  # more than 2 requests per batch on average


def test_metrics_expose_the_names(server, runs):
    Client(server).predict(runs["images"][0])
    text = httpx.get(f"{server}/metrics").text
    for name in ("winnow_requests_total", "winnow_request_latency_seconds_bucket", "winnow_batch_size_bucket",
                 "winnow_queue_depth", "winnow_model_info", "winnow_model_swaps_total"):
        assert name in text
    assert 'winnow_requests_total{status="200"}' in text and 'model="first"' in text


def test_admin_needs_the_token(server, runs):
    with pytest.raises(ServerError, match="bad_token") as error:
        Client(server, token="wrong").swap(runs["second"])
    assert error.value.status == 401
    with pytest.raises(ServerError, match="bad_run.*not a winnow run folder"):
        Client(server, token=TOKEN).swap(runs["images"][0].parent)
    app = create_app(ServeSettings(**SETTINGS), ModelHolder(ServedModel.load(runs["first"], device="cpu")))
    with BackgroundServer(app) as url, pytest.raises(ServerError, match="disabled.*WINNOW_ADMIN_TOKEN") as error:
        Client(url, token=TOKEN).swap(runs["second"])
    assert error.value.status == 403


def test_a_request_past_its_timeout_is_a_503(runs):
    app = create_app(ServeSettings(**{**SETTINGS, "request_timeout_s": 0}),
                     ModelHolder(ServedModel.load(runs["first"], device="cpu")))
    with BackgroundServer(app) as url, pytest.raises(ServerError, match="timeout.*retry later") as error:
        Client(url).predict(runs["images"][0])
    assert error.value.status == 503


def test_swap_under_load_fails_no_request_and_names_the_version(runs):
    holder = ModelHolder(ServedModel.load(runs["first"], device="cpu"))
    app = create_app(ServeSettings(admin_token=TOKEN, **SETTINGS), holder)
    versions = {ServedModel.load(run, device="cpu").version: run.name for run in (runs["first"], runs["second"])}
    with BackgroundServer(app) as url, Client(url, token=TOKEN) as client, ThreadPoolExecutor(6) as pool:
        load = [pool.submit(lambda: [client.predict(runs["images"][:2]) for _ in range(15)]) for _ in range(5)]
        swapped = [client.swap(runs["second"]), client.swap(runs["first"]), client.swap(runs["second"])]
        answers = [p for future in load for response in future.result() for p in response]
        assert client.ready()["model"] == "second" and metric(url, "winnow_model_swaps_total") == 3
    assert [s["model"] for s in swapped] == ["second", "first", "second"]
    assert len(answers) == 150 and all(versions[p["version"]] == p["model"] for p in answers)
    assert {p["model"] for p in answers} == {"first", "second"}


def test_bad_settings_are_refused_with_the_name():
    with pytest.raises(ValueError, match="max_batch_size"):
        ServeSettings(max_batch_size=0)


def test_a_job_decoded_for_other_preprocessing_is_refused_not_mis_scored(runs):
    model = ServedModel.load(runs["first"], device="cpu")
    batcher = Batcher(ModelHolder(model), max_batch_size=4, max_wait_ms=0, max_queue=4).start()
    try:
        images = torch.zeros((1, *model.input_shape))
        assert batcher.submit(images, model.input_key).result(timeout=10)[0]["model"] == "first"
        with pytest.raises(ModelChanged, match="send it again"):
            batcher.submit(images, ("other preprocessing",)).result(timeout=10)
    finally:
        batcher.stop()


def test_two_model_instances_score_every_job_like_one(runs):
    model = ServedModel.load(runs["first"], device="cpu")
    images = [torch.rand((1, *model.input_shape), generator=torch.Generator().manual_seed(i)) for i in range(24)]
    answers, threads = {}, set()
    for instances in (1, 2):
        batcher = Batcher(ModelHolder(model), max_batch_size=2, max_wait_ms=1, max_queue=64, instances=instances,
                          on_batch=lambda size, seconds: threads.add(threading.current_thread().name)).start()
        try:
            futures = [batcher.submit(image, model.input_key) for image in images]
            answers[instances] = [future.result(timeout=30)[0]["probabilities"] for future in futures]
        finally:
            batcher.stop()
        assert not any(thread.is_alive() for thread in batcher._threads)
    for one, two in zip(answers[1], answers[2]):
        assert one == pytest.approx(two, abs=1e-5)
    assert {"winnow-batcher-0", "winnow-batcher-1"} <= threads


def test_model_instances_setting_is_checked():
    with pytest.raises(ValueError, match="model_instances"):
        ServeSettings(model_instances=0)


def test_gatherer_groups_within_the_size_and_keeps_what_does_not_fit_for_the_next_group():
    items: queue.Queue = queue.Queue()
    for item in (["a"], ["b", "c"], ["d", "e", "f"], ["g"] * 5, ["h"], None, ["after the stop"]):
        items.put(item)
    gatherer = Gatherer(items, max_size=4, max_wait_s=0.05)
    assert gatherer.next_group() == [["a"], ["b", "c"]]  # 3 images; the next (3 more) would pass 4
    assert gatherer.next_group() == [["d", "e", "f"]]
    assert gatherer.next_group() == [["g"] * 5]  # larger than max_size: a group of its own
    assert gatherer.next_group() == [["h"]]  # the STOP came while gathering: carried to the next call
    assert gatherer.next_group() is None  # ... and not lost there


def test_model_instances_auto_is_two_on_a_cpu_and_one_on_a_gpu():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert model_instances("auto", torch.device("cpu")) == 2
        assert model_instances("auto", torch.device("cuda", 0)) == 1
        torch.set_num_threads(1)  # one core: one instance, nothing to split
        assert model_instances("auto", torch.device("cpu")) == 1
        assert model_instances("3", torch.device("cpu")) == 3
        assert model_instances(1, torch.device("cuda", 0)) == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", ""])
def test_model_instances_refuses_what_is_not_auto_or_a_count(bad):
    with pytest.raises(ValueError, match=r"--model-instances: expected 'auto' or a whole number >= 1, got"):
        model_instances(bad, torch.device("cpu"))


def test_the_bench_lean_client_gets_the_servers_answers(server, runs):
    path = Path(__file__).resolve().parents[1] / "bench" / "lean_http.py"
    spec = importlib.util.spec_from_file_location("lean_http", path)
    lean_http = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lean_http)
    good, bad = png(np.full((32, 32), 200, np.uint8)), b"not an image"
    statuses, seconds = asyncio.run(lean_http.lean_closed_loop(server, [good, bad, good, good], 2))
    assert statuses == [200, 422, 200, 200] and seconds > 0


def test_decoding_in_the_batch_thread_answers_like_decoding_per_request(runs):
    offline = winnow.load(runs["first"], device="cpu").predict(runs["images"][:3])
    bodies = [Path(path).read_bytes() for path in runs["images"][:3]]
    settings = ServeSettings(admin_token=TOKEN, decode_in_batch=True, model_instances=2, **SETTINGS)
    with BackgroundServer(create_app(settings, ModelHolder(ServedModel.load(runs["first"], device="cpu")))) as url:
        with ThreadPoolExecutor(7) as pool:
            answers = list(pool.map(lambda body: httpx.post(f"{url}/v1/predict", files={"files": ("x", body)}),
                                    [*bodies, b"not an image", *bodies]))
    assert [a.status_code for a in answers] == [200, 200, 200, 422, 200, 200, 200]
    assert answers[3].json()["error"] == "not_an_image"
    served = np.array([[a.json()["predictions"][0]["probabilities"][c] for c in offline.classes]
                       for a in answers[:3]])
    np.testing.assert_allclose(served, offline.probabilities, atol=1e-5)
