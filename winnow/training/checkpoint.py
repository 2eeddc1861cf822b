"""Checkpoints: everything needed to continue training exactly, written atomically."""

from __future__ import annotations

import copy
import random
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from winnow.runs.atomic import atomic_write


def rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save a training state dict atomically (with RNG states added).

    Raises:
        FileWriteError: The disk is full or the folder is not writable; `path` keeps its previous content.
    """
    def write(handle: IO[bytes]) -> None:
        recorder = _WriteErrors(handle)
        try:
            torch.save({**state, "rng": rng_states()}, recorder)
        except RuntimeError as error:
            # torch's zip writer reports a failed write (disk full...) as a RuntimeError
            # ("unexpected pos"); re-raise the OSError itself so that atomic_write names the cause.
            if recorder.error is not None:
                raise recorder.error from error
            raise

    atomic_write(path, write)


class _WriteErrors:
    """A binary file that remembers the OSError its write raised."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()


def evaluation_weights(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The weights to evaluate from a loaded checkpoint: the EMA weights when the run kept them."""
    return checkpoint.get("eval_weights") or checkpoint["model"]


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with a clear error when it is missing or unreadable.

    Args:
        path: The `.pt` file.
        mmap: Map the file instead of reading it (for files in torch's zip format): a tensor is read when
            touched, so a job that needs only the weights skips the optimizer state. The tensors stay backed
            by the file: copy the ones kept (`owned_tensors`), since rewriting the file in place would
            pull their memory away.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; check the run folder or pass --checkpoint PATH")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap and zipfile.is_zipfile(path))
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"checkpoint {path} cannot be read ({error}); it may be from another tool") from error


def owned_tensors(weights: dict[str, Any]) -> dict[str, Any]:
    """`weights` (a state dict, `_metadata` kept) with each tensor copied into memory of its own (e.g. off a
    mapped checkpoint file)."""
    owned = copy.copy(weights)
    for name, value in owned.items():
        if isinstance(value, torch.Tensor):
            owned[name] = value.clone()
    return owned
