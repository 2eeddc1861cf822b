"""Real paths of many files (winnow.data.real_paths): the strings Path.resolve gives, found with fewer calls."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from winnow.data.real_paths import real_paths

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symbolic links as POSIX makes them")


def _tree(root: Path) -> list[Path]:
    """Files reached directly, through relative, absolute, chained, dotted and broken links, and a linked folder."""
    data = root / "data" / "class"
    data.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (data / name).write_bytes(b"x")
    (root / "linked").symlink_to(root / "data")  # a folder that is a link
    listing = root / "listing"
    listing.mkdir()
    (listing / "relative.png").symlink_to(Path("..") / "data" / "class" / "a.png")
    (listing / "absolute.png").symlink_to(data / "b.png")
    (listing / "chained.png").symlink_to("relative.png")
    (listing / "through-folder-link.png").symlink_to(root / "linked" / "class" / "a.png")
    (listing / "dotted.png").symlink_to("../linked/../data/class/b.png")
    (listing / "broken.png").symlink_to(root / "nowhere" / "c.png")
    (listing / "plain.png").write_bytes(b"x")
    return sorted(listing.iterdir()) + [root / "linked" / "class" / "a.png", data / "a.png"]


def test_same_strings_as_path_resolve(tmp_path):
    files = _tree(tmp_path)
    assert real_paths(files) == [str(path.resolve()) for path in files]
    assert real_paths(files)[0] != str(files[0]), "links are followed"


def test_relative_paths_start_at_the_working_folder(tmp_path, monkeypatch):
    files = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    relative = [path.relative_to(tmp_path) for path in files]
    assert real_paths(relative) == [str(path.resolve()) for path in relative]


def test_link_loop_is_reported_as_path_resolve_does(tmp_path):
    (tmp_path / "one.png").symlink_to("two.png")
    (tmp_path / "two.png").symlink_to("one.png")
    with pytest.raises(RuntimeError, match="loop"):
        real_paths([tmp_path / "one.png"])
