"""Headless Debian chromium for the page tests: does a self-contained HTML page render, images and all?"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
# a script added before </body>: the page title says whether every <img> decoded
IMAGE_PROBE = ("<script>window.addEventListener('load', function () {"
               "var bad = []; var images = document.images;"
               "for (var i = 0; i < images.length; i++) {"
               "  if (!(images[i].complete && images[i].naturalWidth > 0)) bad.push(i); }"
               "document.title = bad.length ? 'IMAGES-BAD ' + bad.join(',') : 'IMAGES-OK ' + images.length;"
               "});</script>")


def skip_without_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium to run this check)")


def headless_flags(tmp_path: Path) -> list[str]:
    """Flags of a headless, offline chromium with its own throw-away profile."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]


def assert_renders(html: str, tmp_path: Path, *, n_images: int, window_size: str) -> None:
    """`html` loads in chromium with its `n_images` images decoded, and its screenshot is not blank."""
    skip_without_chromium()
    page = tmp_path / "rendered.html"
    page.write_text(html.replace("</body>", IMAGE_PROBE + "</body>"), encoding="utf-8")
    flags = headless_flags(tmp_path)
    dom = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=60, check=False)
    title = re.search(r"<title>(.*?)</title>", dom.stdout)
    assert title, dom.stderr[-2000:]
    assert title.group(1) == f"IMAGES-OK {n_images}"
    shot = tmp_path / "page.png"
    subprocess.run([str(CHROMIUM), *flags, f"--window-size={window_size}", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=60, check=True)
    with Image.open(shot) as image:
        low, high = image.convert("L").getextrema()
    assert high - low > 100  # text and images on the page, not a blank screen
