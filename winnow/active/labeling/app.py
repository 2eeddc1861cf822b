"""`create_app(settings)`: the FastAPI app of `winnow label` (a page, its images and a small JSON API).

Routes: `GET /` (the page), `GET /image/{index}`, `GET /neighbour/{index}/{rank}` (a labelled neighbour),
`GET /api/state?labeller=`, `POST /api/answer` (`{"labeller", "index", "label"}`, label null to skip),
`POST /api/undo` (`{"labeller"}`) and `GET /api/disagreements`. With a token set, every route needs it
(`?token=` or `X-Label-Token`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from winnow.active.labeling.journal import Event, Journal, disagreements
from winnow.active.labeling.neighbours import Neighbour
from winnow.active.labeling.queue import Item


@dataclass
class LabelSettings:
    """What the page labels: the images, the classes (keys 1-9 in order), the labels CSV and the default labeller.

    `neighbours(file)`, when given, finds the labelled images shown beside each image (NearestLabelled).
    """

    items: list[Item]
    classes: list[str]
    labels: Path
    labeller: str = "labeller"
    token: str | None = None
    neighbours: Callable[[Path], list[Neighbour]] | None = None
    journal: Journal = field(init=False)

    def __post_init__(self) -> None:
        self.journal = Journal(self.labels)


class Answer(BaseModel):
    labeller: str
    index: int
    label: str | None = None  # None: skip


class Undo(BaseModel):
    labeller: str


def state(settings: LabelSettings, labeller: str, standing: dict | None = None) -> dict:
    """The labeller's progress and the first image they have not answered or skipped (None when done)."""
    standing = settings.journal.standing() if standing is None else standing
    seen = [(item.path, labeller) in standing for item in settings.items]
    index = seen.index(False) if False in seen else None
    item = None if index is None else settings.items[index]
    return {"labeller": labeller, "classes": settings.classes, "total": len(seen), "done": sum(seen),
            "index": index, "item": None if item is None else
            {"path": item.path, "guess": item.guess, "confidence": item.confidence, "note": item.note,
             "neighbours": [{"label": n.label, "cosine": round(n.cosine, 3)} for n in _neighbours(settings, item)]}}


def _neighbours(settings: LabelSettings, item: Item) -> list[Neighbour]:
    return [] if settings.neighbours is None else settings.neighbours(item.file)


def _item(settings: LabelSettings, index: int) -> Item:
    if not 0 <= index < len(settings.items):
        raise HTTPException(404, f"index: expected 0..{len(settings.items) - 1}, got {index}")
    return settings.items[index]


def create_app(settings: LabelSettings) -> FastAPI:
    """The labelling app over `settings` (no globals: tests build several)."""

    def check_token(request: Request) -> None:
        if settings.token is None:
            return
        given = request.query_params.get("token") or request.headers.get("x-label-token") or ""
        if not secrets.compare_digest(given.encode(), settings.token.encode()):
            raise HTTPException(401, "token: expected the token printed by `winnow label` (?token=...)")

    app = FastAPI(title="winnow label", dependencies=[Depends(check_token)])
    page = files("winnow.active.labeling").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page.replace("__LABELLER__", settings.labeller)

    @app.get("/image/{index}")
    def image(index: int) -> FileResponse:
        return FileResponse(_item(settings, index).file)

    @app.get("/neighbour/{index}/{rank}")
    def neighbour(index: int, rank: int) -> FileResponse:
        found = _neighbours(settings, _item(settings, index))
        if not 0 <= rank < len(found):
            raise HTTPException(404, f"rank: image {index} has {len(found)} labelled neighbours, got {rank}")
        return FileResponse(found[rank].file)

    @app.get("/api/state")
    def get_state(labeller: str = "") -> dict:
        return state(settings, labeller or settings.labeller)

    @app.post("/api/answer")
    def answer(body: Answer) -> dict:
        item = _item(settings, body.index)
        if body.label is not None and body.label not in settings.classes:
            raise HTTPException(422, f"label: expected one of {', '.join(settings.classes)} (or null to skip), "
                                     f"got {body.label!r}")
        event = Event(body.labeller, "skip" if body.label is None else "answer", item.path, body.label or "",
                      time.time())
        return state(settings, body.labeller, settings.journal.record(event))

    @app.post("/api/undo")
    def undo(body: Undo) -> dict:
        return state(settings, body.labeller, settings.journal.record(Event(body.labeller, "undo", time=time.time())))

    @app.get("/api/disagreements")
    def get_disagreements() -> dict:
        return disagreements(settings.journal.standing())

    return app
