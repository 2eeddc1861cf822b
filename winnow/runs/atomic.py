"""Atomic file writes: a killed process never leaves a half-written file.

A write goes to a temporary file beside its target, named `.<target name>.<random>.tmp`, which is
renamed over the target once complete. A process killed mid-write leaves that temporary file
behind (never a truncated target); readers only ever open the real names, and
`remove_stale_temp_files` deletes the leftovers when the owner of the files starts again.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"

# Write failures the user can fix, and how; any other OSError is a bug or an unusual system
# problem and keeps its own traceback.
FIXES = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free disk space or raise your disk quota",
    errno.EROFS: "the file system is read-only: write to another folder (--out)",
    errno.EACCES: "check the folder's permissions or write to another folder (--out)",
    errno.EPERM: "check the folder's permissions or write to another folder (--out)",
}


class FileWriteError(OSError):
    """A file could not be written for a reason the user can fix (disk full, quota, permissions).

    The message names the file, the system's reason and the fix; `winnow` prints it without a
    traceback. The target file is untouched and no temporary file is left behind.

    Attributes:
        path: The file that could not be written.
        errno: The system error number (errno.ENOSPC...).
        strerror: The system's reason ("No space left on device").
    """

    def __init__(self, path: Path, error: OSError, *, next_step: str = "") -> None:
        self.path, self.cause = Path(path), error
        fix = FIXES.get(error.errno, "check the folder")
        self.message = f"could not write {path}: {error.strerror or error}; {fix}{next_step}"
        super().__init__(error.errno, error.strerror, str(path))

    def __str__(self) -> str:  # OSError's own form would drop the fix
        return self.message

    def followed_by(self, next_step: str) -> FileWriteError:
        """The same error with what to do after the fix appended, e.g. ", then resume with ..."."""
        return FileWriteError(self.path, self.cause, next_step=next_step)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it


def _file_mode(path: Path) -> int:
    """The mode the target keeps (or gets, as `open` would give it): mkstemp's 0600 would hide
    checkpoints and manifests from the other members of a lab group."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`.

    Raises:
        FileWriteError: The disk is full, a quota is exceeded or the folder is not writable;
            `path` keeps its previous content and the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise _user_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as tmp:
            write(tmp)
            tmp.flush()
            os.fchmod(tmp.fileno(), _file_mode(path))
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except OSError as error:
        Path(tmp_name).unlink(missing_ok=True)
        raise _user_error(path, error) from error
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _user_error(path: Path, error: OSError) -> OSError:
    """`error` as a FileWriteError when the user can fix it, else unchanged."""
    return FileWriteError(path, error) if error.errno in FIXES else error


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically; raises FileWriteError like `atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def is_temp_file(path: str | Path) -> bool:
    """Whether `path` is a temporary file of `atomic_write` (complete or left by a killed write)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_stale_temp_files(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Delete the temporary files a killed `atomic_write` left in `folder` for targets matching `patterns`.

    Only call this as the one process that writes those targets (e.g. `train --resume` for its
    checkpoints): a live writer's temporary file would be deleted under it.

    Args:
        folder: The folder of the targets.
        patterns: Glob patterns of target names, e.g. "last.pt", "epoch*.pt".

    Returns:
        The files removed.
    """
    removed = []
    for pattern in patterns:
        for path in Path(folder).glob(f".{pattern}.*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
