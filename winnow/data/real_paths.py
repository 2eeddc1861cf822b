"""Real paths of many files at once: each folder's real path is resolved once, not once per file in it.

`Path.resolve` re-resolves every component of every path (an `lstat` per component, in Python) and then
stats the file; for the thousands of files of one folder that is most of the cost of listing them. Here
a file costs one `lstat` (and a `readlink` plus one more `lstat` per link it passes through), and the
result is the same string.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MAX_LINKS = 40  # links followed for one file before handing it to Path.resolve (which reports loops)


def real_paths(paths: Iterable[str | Path]) -> list[str]:
    """`str(Path(p).resolve())` of each path, in order, with the real path of each folder looked up once.

    Outside POSIX systems (where `Path.resolve` asks the OS, not `os.path.realpath`) it is `Path.resolve`.
    """
    if os.name != "posix":
        return [str(Path(path).resolve()) for path in paths]
    folders: dict[str, str] = {}
    return [_real_path(os.fspath(path), folders) for path in paths]


def _real_path(path: str, folders: dict[str, str]) -> str:
    """The real path of one file; `folders` maps folders already seen to their real paths."""
    current = path
    for _ in range(MAX_LINKS):
        head, tail = os.path.split(current)
        if tail in ("", ".", ".."):
            break  # not a plain file name: resolve the whole path
        if head not in folders:
            folders[head] = os.path.realpath(head or os.curdir)
        candidate = os.path.join(folders[head], tail)
        try:
            if not os.path.islink(candidate):
                return candidate
            current = os.path.join(folders[head], os.readlink(candidate))  # relative links start at their folder
        except OSError:  # the link vanished meanwhile
            break
    return str(Path(path).resolve())  # the unusual cases (link loops among them) as before
