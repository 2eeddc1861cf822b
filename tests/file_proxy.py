"""A file object that stands in for another: the fault-injecting files of the kill and disk-full tests."""

from __future__ import annotations

from typing import Any


class FileProxy:
    """Delegates everything to `handle`; subclasses override `write` to inject a fault."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> "FileProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.__exit__(*exc)
