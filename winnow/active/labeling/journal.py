"""The labels journal: one JSON line per answer, skip or undo, appended and fsynced before the reply.

The journal is the truth; `labels.csv` is rewritten from it after every event (atomically), so a
killed server loses at most the image on screen. Several labellers (or several servers) may append
to one journal: each event names its labeller, and answers are kept per (path, labeller).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from winnow.runs.atomic import atomic_write_text

ACTIONS = ("answer", "skip", "undo")
LABEL_COLUMNS = ("path", "label", "labeller", "time")


@dataclass(frozen=True)
class Event:
    """One journal line: `labeller` answered `path` with `label`, skipped it, or undid their last event."""

    labeller: str
    action: str
    path: str = ""
    label: str = ""
    time: float = 0.0


def replay(events: list[Event]) -> dict[tuple[str, str], Event]:
    """The standing answer or skip of each (path, labeller) after `events`, in journal order.

    A repeated answer replaces the earlier one (one row per image and labeller); `undo` takes back
    the labeller's latest standing answer or skip, so repeated undos walk back further.
    """
    stacks: dict[str, list[Event]] = {}
    for event in events:
        stack = stacks.setdefault(event.labeller, [])
        if event.action == "undo":
            if stack:
                stack.pop()
        else:
            stack[:] = [e for e in stack if e.path != event.path] + [event]
    return {(e.path, e.labeller): e for stack in stacks.values() for e in stack}


def disagreements(standing: dict[tuple[str, str], Event]) -> dict[str, dict[str, str]]:
    """Paths whose labellers gave different labels: {path: {labeller: label}} (skips left out)."""
    by_path: dict[str, dict[str, str]] = {}
    for (path, labeller), event in standing.items():
        if event.action == "answer":
            by_path.setdefault(path, {})[labeller] = event.label
    return {path: votes for path, votes in sorted(by_path.items()) if len(set(votes.values())) > 1}


def labels_csv(standing: dict[tuple[str, str], Event]) -> str:
    """The labels file's text: one row per answered (path, labeller), in answer order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    answers = sorted((e for e in standing.values() if e.action == "answer"), key=lambda e: e.time)
    writer.writerows([e.path, e.label, e.labeller, f"{e.time:.3f}"] for e in answers)
    return buffer.getvalue()


class Journal:
    """The append-only journal beside `labels` (`<labels>.journal`), and `labels` rewritten from it.

    Args:
        labels: The labels CSV (columns path, label, labeller, time).
    """

    def __init__(self, labels: str | Path) -> None:
        self.labels = Path(labels)
        self.path = self.labels.with_name(self.labels.name + ".journal")
        self._lock = threading.Lock()
        self._repair()

    def _repair(self) -> None:
        """Cut a torn last line (a write killed mid-line) so the next append starts on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as file:
                file.truncate(data.rfind(b"\n") + 1)

    def events(self) -> list[Event]:
        """Every event in the journal, oldest first.

        Raises:
            ValueError: A line other than a torn last one is not a journal event.
        """
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").split("\n")
        events = []
        for number, line in enumerate(lines[:-1], 1):  # the part after the last newline is torn or empty
            try:
                record = json.loads(line)
                events.append(Event(**record))
            except (json.JSONDecodeError, TypeError) as error:
                raise ValueError(f"{self.path} line {number}: expected a journal event, got {line[:80]!r}; "
                                 f"fix or delete that line") from error
        return events

    def standing(self) -> dict[tuple[str, str], Event]:
        """The standing answers and skips, per (path, labeller)."""
        return replay(self.events())

    def record(self, event: Event) -> dict[tuple[str, str], Event]:
        """Append `event` (fsynced), rewrite the labels CSV atomically, and return the standing answers."""
        if event.action not in ACTIONS:
            raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {event.action!r}")
        line = json.dumps({**event.__dict__, "time": event.time or time.time()}) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                fcntl.flock(file, fcntl.LOCK_EX)  # another server on the same file waits for this line
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
                standing = self.standing()
                atomic_write_text(self.labels, labels_csv(standing))
        return standing
