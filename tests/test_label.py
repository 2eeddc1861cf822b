"""`winnow label`: the journal's replay, bad input, and the page driven by keys in headless Chromium.

Chromium is driven over its DevTools protocol with aiohttp's websocket client; the server is a real
`winnow label` process, killed with SIGKILL mid-way and restarted.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pytest
from PIL import Image

from winnow.active.labeling import (Event, Journal, LabelSettings, NearestLabelled, classes_of, create_app,
                                    disagreements, read_queue, replay)
from winnow.cli.label import nearest_labelled
from winnow.cli.main import main
from winnow.embeddings.extract import EmbeddingSet
from winnow.serve import BackgroundServer
from winnow.serve.server import free_port

from chromium import CHROMIUM, skip_without_chromium

CLASSES = "cat,dog,owl"


@pytest.fixture
def to_label(tmp_path) -> Path:
    """A to_label.csv of five 32px images (paths relative to the CSV) with the model's guesses."""
    rng = np.random.default_rng(0)
    (tmp_path / "pool").mkdir()
    rows = []
    for rank in range(1, 6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "pool" / f"{rank}.png")
        rows.append([rank, f"pool/{rank}.png", 0.5, "margin", "dog" if rank % 2 else "cat", 0.61])
    with (tmp_path / "to_label.csv").open("w", newline="") as file:
        csv.writer(file).writerows([["rank", "path", "score", "reason", "predicted", "confidence"], *rows])
    return tmp_path / "to_label.csv"


def labels_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


# ---- journal replay -------------------------------------------------------------------------------------------


def test_replay_undo_walks_back_one_event_at_a_time():
    events = [Event("ann", "answer", "a", "cat"), Event("ann", "skip", "b"), Event("ann", "answer", "c", "dog"),
              Event("ann", "undo"), Event("ann", "undo")]
    assert {key: e.label for key, e in replay(events).items()} == {("a", "ann"): "cat"}
    assert replay(events + [Event("ann", "undo"), Event("ann", "undo")]) == {}  # undo on nothing is a no-op


def test_replay_keeps_one_answer_per_image_and_labeller_the_last():
    events = [Event("ann", "answer", "a", "cat", 1), Event("ann", "answer", "b", "owl", 2),
              Event("ann", "answer", "a", "dog", 3)]
    standing = replay(events)
    assert {key: e.label for key, e in standing.items()} == {("a", "ann"): "dog", ("b", "ann"): "owl"}
    # undo takes back the re-answer of a, not b, and a's earlier answer is not resurrected
    assert {key: e.label for key, e in replay(events + [Event("ann", "undo")]).items()} == {("b", "ann"): "owl"}


def test_two_labellers_disagreeing_are_both_kept_and_reported(tmp_path):
    journal = Journal(tmp_path / "labels.csv")
    for event in [Event("ann", "answer", "a", "cat"), Event("bob", "answer", "a", "dog"),
                  Event("ann", "answer", "b", "owl"), Event("bob", "answer", "b", "owl"), Event("bob", "skip", "c")]:
        journal.record(event)
    rows = labels_rows(tmp_path / "labels.csv")
    assert sorted((r["path"], r["labeller"], r["label"]) for r in rows) == [
        ("a", "ann", "cat"), ("a", "bob", "dog"), ("b", "ann", "owl"), ("b", "bob", "owl")]
    assert disagreements(journal.standing()) == {"a": {"ann": "cat", "bob": "dog"}}


def test_a_torn_last_journal_line_is_cut_and_a_bad_middle_line_is_refused(tmp_path):
    journal = Journal(tmp_path / "labels.csv")
    journal.record(Event("ann", "answer", "a", "cat"))
    with journal.path.open("a") as file:
        file.write('{"labeller": "ann", "act')  # a write killed mid-line
    journal = Journal(tmp_path / "labels.csv")
    journal.record(Event("ann", "answer", "b", "dog"))
    assert [e.path for e in journal.events()] == ["a", "b"]
    journal.path.write_text(journal.path.read_text() + "not json\n" + journal.path.read_text())
    with pytest.raises(ValueError, match=r"labels.csv.journal line 3: expected a journal event"):
        journal.events()


# ---- bad input ------------------------------------------------------------------------------------------------


def test_a_missing_csv_or_image_is_refused_by_name(to_label, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"nope.csv: no such file; expected to_label.csv"):
        read_queue(tmp_path / "nope.csv")
    (tmp_path / "pool" / "3.png").unlink()
    with pytest.raises(ValueError, match=r"1 image\(s\) do not exist, e.g. pool/3.png"):
        read_queue(to_label)
    assert main(["label", str(to_label), "--report"]) == 2
    assert "pool/3.png" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--classes: expected distinct names"):
        classes_of([], "a,b,a")
    with pytest.raises(ValueError, match="no predicted or suggested label to take the classes from; pass --classes"):
        classes_of([], None)


def test_report_prints_the_disagreements(to_label, capsys):
    journal = Journal(to_label.with_name("labels.csv"))
    journal.record(Event("ann", "answer", "pool/1.png", "cat"))
    journal.record(Event("bob", "answer", "pool/1.png", "dog"))
    journal.record(Event("bob", "answer", "pool/2.png", "dog"))
    assert main(["label", str(to_label), "--report"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "pool/1.png\tann=cat\tbob=dog", f"1 image(s) with disagreeing labels in {to_label.with_name('labels.csv')}"]


def test_a_class_beyond_the_list_an_unknown_index_and_a_missing_token_are_refused(to_label):
    items = read_queue(to_label)
    settings = LabelSettings(items, classes_of(items, None), to_label.with_name("labels.csv"), "ann", token="t0k")
    assert settings.classes == ["cat", "dog"]  # from the model's guesses when --classes is not given
    with BackgroundServer(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/api/state").status_code == 401
        headers = {"X-Label-Token": "t0k"}
        bad = client.post("/api/answer", json={"labeller": "ann", "index": 0, "label": "owl"}, headers=headers)
        assert bad.status_code == 422 and "expected one of cat, dog" in bad.json()["detail"]
        assert client.post("/api/answer", json={"labeller": "ann", "index": 5, "label": "cat"},
                           headers=headers).status_code == 404
        assert client.get("/api/state?token=t0k").json()["done"] == 0
    assert not to_label.with_name("labels.csv").exists()


def test_review_csv_shows_the_suggested_label(tmp_path, to_label):
    review = tmp_path / "review.csv"
    review.write_text("rank,path,issue,label,suggested_label,suggested_probability,score,detail\n"
                      "1,pool/2.png,label,cat,owl,0.9,0.8,p low\n2,pool/4.png,outlier,dog,,,3.1,z 3.1\n")
    items = read_queue(review)
    assert (items[0].guess, items[0].confidence, items[0].note) == ("owl", "0.9", "label: given cat")
    assert (items[1].guess, items[1].note) == ("", "outlier: given dog")
    assert classes_of(items, None) == ["cat", "dog", "owl"]  # the suggested and the given labels


# ---- the page in headless Chromium ----------------------------------------------------------------------------


class DevTools:
    """A minimal DevTools-protocol client over one page's websocket (commands in, their results out)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket, self.next_id = socket, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.socket.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.socket.receive(timeout=10)).data)
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    async def evaluate(self, expression: str):
        return (await self.call("Runtime.evaluate", expression=expression, returnByValue=True))["result"].get("value")

    async def wait_for(self, expression: str, expected, timeout: float = 8.0):
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value == expected:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"{expression} stayed {value!r}, expected {expected!r}")

    async def press(self, key: str) -> None:
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key)


def start_label_server(to_label: Path, port: int) -> subprocess.Popen:
    # `winnow label`'s own parser and run, without `winnow`'s other commands (they load torch: seconds)
    entry = ("import argparse, sys; from winnow.cli import label; parser = argparse.ArgumentParser(); "
             "label.add_parser(parser.add_subparsers()); sys.exit(label.run(parser.parse_args(sys.argv[1:])))")
    command = [sys.executable, "-c", entry, "label", str(to_label), "--classes", CLASSES,
               "--port", str(port), "--labeller", "ann"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=1)
            return server
        except httpx.TransportError:
            if server.poll() is not None:
                raise AssertionError(server.stderr.read().decode()[-2000:])
            time.sleep(0.1)
    server.kill()
    raise AssertionError("winnow label did not start within 15 s")


def page_socket(port: int) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json()
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("chromium's DevTools did not answer within 15 s")


async def label_with_keys(socket_url: str, url: str, restart) -> None:
    progress = "document.getElementById('progress').textContent"
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url, max_msg_size=0) as socket:
        tools = DevTools(socket)
        await tools.call("Page.navigate", url=url)
        await tools.wait_for(progress, "0 / 5")
        assert await tools.evaluate("document.getElementById('image').naturalWidth") in (0, 32)
        await tools.wait_for("document.getElementById('image').naturalWidth", 32)
        assert "model: dog (0.61)" in await tools.evaluate("document.getElementById('guess').textContent")
        await tools.press("9")  # only three classes: refused on the page, nothing written
        await tools.wait_for("document.getElementById('error').textContent", "no class on key 9")
        for key, shown in [("1", "1 / 5"), ("2", "2 / 5"), ("u", "1 / 5"), ("3", "2 / 5"), ("s", "3 / 5"),
                           ("u", "2 / 5"), ("2", "3 / 5")]:
            await tools.press(key)
            await tools.wait_for(progress, shown)
        restart()  # SIGKILL and start again; the page reloads and resumes at the first unanswered image
        await tools.call("Page.reload")
        await tools.wait_for(progress, "3 / 5")
        assert await tools.evaluate("document.body.dataset.index") == "3"
        for key, shown in [("1", "4 / 5"), ("3", "5 / 5")]:
            await tools.press(key)
            await tools.wait_for(progress, shown)
        await tools.wait_for("document.getElementById('guess').textContent", "all done")


def test_label_five_images_with_keys_kill_the_server_and_resume(to_label, tmp_path):
    skip_without_chromium()
    port, devtools_port = free_port(), free_port()
    servers = [start_label_server(to_label, port)]

    def restart() -> None:
        servers[-1].send_signal(signal.SIGKILL)
        servers[-1].wait(timeout=10)
        rows = labels_rows(to_label.with_name("labels.csv"))
        assert [(r["path"], r["label"]) for r in rows] == [("pool/1.png", "cat"), ("pool/2.png", "owl"),
                                                            ("pool/3.png", "dog")]
        servers.append(start_label_server(to_label, port))

    # chromium.headless_flags less its --virtual-time-budget: this browser stays up while it is driven
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", f"--remote-debugging-port={devtools_port}", "about:blank"]
    browser = subprocess.Popen([str(CHROMIUM), *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(label_with_keys(page_socket(devtools_port), f"http://127.0.0.1:{port}/", restart))
    finally:
        browser.kill()
        browser.wait(timeout=10)
        servers[-1].kill()
        servers[-1].wait(timeout=10)
    rows = labels_rows(to_label.with_name("labels.csv"))
    assert sorted((r["path"], r["label"], r["labeller"]) for r in rows) == [
        ("pool/1.png", "cat", "ann"), ("pool/2.png", "owl", "ann"), ("pool/3.png", "dog", "ann"),
        ("pool/4.png", "cat", "ann"), ("pool/5.png", "owl", "ann")]  # each answer exactly once, the undone ones gone
    journal = to_label.with_name("labels.csv.journal").read_text().splitlines()
    assert len(journal) == 9  # 7 keys before the kill, 2 after: nothing lost, nothing doubled


# ---- nearest labelled images ----------------------------------------------------------------------------------


def test_nearest_labelled_matches_a_naive_cosine_loop(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(12, 5))
    paths = [str(tmp_path / f"{i}.png") for i in range(12)]
    labels = ["a" if i % 3 == 0 else "b" if i % 3 == 1 else "" for i in range(12)]
    nearest = NearestLabelled(vectors, paths, labels, k=3)
    for query in (0, 2, 7):
        cosine = {i: vectors[i] @ vectors[query] / np.linalg.norm(vectors[i]) / np.linalg.norm(vectors[query])
                  for i in range(12) if labels[i] and i != query}
        expected = sorted(cosine, key=lambda i: -cosine[i])[:3]
        found = nearest(Path(paths[query]))
        assert [n.file for n in found] == [Path(paths[i]) for i in expected]
        np.testing.assert_allclose([n.cosine for n in found], [cosine[i] for i in expected], rtol=1e-5)
    assert nearest(tmp_path / "elsewhere.png") == []


def test_the_page_shows_the_nearest_labelled_images_of_the_embeddings_files(to_label, tmp_path):
    pool = sorted((tmp_path / "pool").glob("*.png"))
    labelled = EmbeddingSet(np.eye(5, dtype=np.float32)[[0, 1]], [str(pool[3]), str(pool[4])], ["cat", "dog"], ["", ""])
    unlabelled = EmbeddingSet(np.array([[1, 0.2, 0, 0, 0]], np.float32), [str(pool[0])], [""], [""])
    files = [str(labelled.save(tmp_path / "all.npz")), str(unlabelled.save(tmp_path / "pool.npz"))]
    items = read_queue(to_label)
    settings = LabelSettings(items, ["cat", "dog"], tmp_path / "labels.csv", "ann", None, nearest_labelled(files))
    with BackgroundServer(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        shown = client.get("/api/state").json()["item"]["neighbours"]
        assert [n["label"] for n in shown] == ["cat", "dog"] and shown[0]["cosine"] == pytest.approx(0.981, abs=1e-3)
        assert client.get("/neighbour/0/0").content == pool[3].read_bytes()
        assert client.get("/neighbour/0/2").status_code == 404
    other = EmbeddingSet(np.ones((1, 3), np.float32), [str(pool[1])], ["cat"], [""]).save(tmp_path / "other.npz")
    with pytest.raises(ValueError, match=r"--neighbours: expected files of one model \(one dimension\)"):
        nearest_labelled([files[0], str(other)])


def test_two_servers_on_one_labels_file_lose_no_answer(to_label):
    """Two labellers, each on their own server, answering at once: both journals are one file, flock-serialised."""
    items, labels = read_queue(to_label), to_label.with_name("labels.csv")
    apps = [create_app(LabelSettings(items, ["cat", "dog"], labels, name)) for name in ("ann", "bob")]
    with BackgroundServer(apps[0]) as first, BackgroundServer(apps[1]) as second:
        def label_all(url: str, name: str) -> None:
            with httpx.Client(base_url=url) as client:
                for index in range(5):
                    answer = {"labeller": name, "index": index, "label": "cat" if name == "ann" else "dog"}
                    assert client.post("/api/answer", json=answer).status_code == 200
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(label_all, [first, second], ["ann", "bob"]))
        assert len(httpx.get(f"{first}/api/disagreements").json()) == 5
    rows = labels_rows(labels)
    assert sorted((r["labeller"], r["path"]) for r in rows) == sorted(
        (name, f"pool/{i}.png") for name in ("ann", "bob") for i in range(1, 6))
    assert len(labels.with_name("labels.csv.journal").read_text().splitlines()) == 10
