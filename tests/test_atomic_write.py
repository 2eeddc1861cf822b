"""Atomic writes keep the file modes a plain `open` would give (not mkstemp's private 0600)."""

from __future__ import annotations

import os
import stat

from winnow.runs import atomic
from winnow.runs.atomic import atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_the_umask_mode(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")  # what open() gives under this process's umask
    atomic_write(tmp_path / "atomic.txt", lambda handle: handle.write(b"x"))
    assert _mode(tmp_path / "atomic.txt") == _mode(plain) == 0o666 & ~atomic._UMASK


def test_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write(target, lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o640
