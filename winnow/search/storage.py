"""The Optuna storage of a search: an RDB at an SQLAlchemy URL (SQLite `study.db` by default).

Light on purpose (optuna and SQLAlchemy only, no torch), so that any process can open a study's storage.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import sqlalchemy

HEARTBEAT_S, GRACE_S = 60, 300  # a trial whose process has not beaten for GRACE_S is failed and re-queued


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The study's storage at an SQLAlchemy `url`, with heartbeats (a trial whose process stopped beating is
    failed and queued again once) and, for SQLite, transactions that lock when they begin."""
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 60}} if sqlite else {}  # wait for the lock, not fail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    if sqlite:
        _lock_on_begin(storage.engine)
    return storage


def _lock_on_begin(engine) -> None:
    """Make every SQLite transaction take the write lock when it begins (BEGIN IMMEDIATE).

    Optuna claims a queued trial by reading it WAITING and writing RUNNING under SELECT ... FOR UPDATE,
    which SQLite ignores: two worker processes could both claim the first queued trial. Taking the lock
    at BEGIN makes that read and write one step (SQLAlchemy's recipe for pysqlite transactions).
    """
    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # pysqlite would otherwise BEGIN (deferred) by itself

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners would keep the old behaviour
