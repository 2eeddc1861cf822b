"""Progress of long loops: a tqdm bar on a terminal, plain lines in logs; one summary line per epoch.

Off a terminal (CI, `nohup`, a redirected log) a bar would write hundreds of carriage-return
updates into the file, so `Progress` writes a plain line instead, every N seconds (`"30s"`, the
default) or every N percent of the work (`"10%"`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from tqdm import tqdm

from winnow.config import DEFAULT_PROGRESS_EVERY, PROGRESS_EVERY
from winnow.constraints import check_value

log = logging.getLogger("winnow")


@dataclass(frozen=True)
class Every:
    """When a plain progress line is due: after `seconds`, or after `fraction` of the total more."""

    seconds: float | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Every":
        """`"30s"` (every 30 seconds) or `"10%"` (every tenth of the work).

        Raises:
            InvalidParameterError: Another form, or a value that is not positive (or over 100%).
        """
        text = check_value("progress_every", text, [PROGRESS_EVERY]).strip()
        value = float(text[:-1])
        return cls(seconds=value) if text.endswith("s") else cls(fraction=value / 100)


class Progress:
    """Progress over `total` images: a bar on a terminal, a plain log line every so often elsewhere.

    Args:
        total: Images the loop will process.
        description: What runs, e.g. "epoch 3/30" or "predict".
        enabled: False silences it (tests, non-main ranks, `progress: false`).
        every: When plain lines are due off a terminal: "30s" or "10%" (see `Every.parse`).
        stream: Where the bar goes and whose `isatty()` decides the mode (default: stderr).
        clock: Seconds, monotonic (for tests).
    """

    def __init__(self, total: int, *, description: str, enabled: bool, every: str = DEFAULT_PROGRESS_EVERY,
                 stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        stream = stream if stream is not None else sys.stderr
        self.total, self.description, self.every, self.clock = total, description, Every.parse(every), clock
        self.plain = enabled and not _is_terminal(stream)
        self.bar = tqdm(total=total, desc=description, unit="img", leave=False, disable=not enabled or self.plain,
                        dynamic_ncols=True, file=stream)
        self.done, self.stats = 0, {}
        self.start = self.last_time = clock()
        self.last_done = 0

    def update(self, count: int, **stats: float) -> None:
        """`count` more images done; `stats` (e.g. loss, img_per_s) are shown beside the count."""
        self.done += count
        self.stats = stats
        if self.plain:
            if self._line_due():
                self._write_line()
            return
        self.bar.set_postfix({key: _short(key, value) for key, value in stats.items()}, refresh=False)
        self.bar.update(count)

    def close(self) -> None:
        """End the bar; off a terminal, a last line if any line was written and the end is not shown yet."""
        if self.plain and self.last_done not in (0, self.done):
            self._write_line()
        self.bar.close()

    def _line_due(self) -> bool:
        if self.every.seconds is not None:
            return self.clock() - self.last_time >= self.every.seconds
        return self.done - self.last_done >= self.every.fraction * self.total

    def _write_line(self) -> None:
        now = self.clock()
        elapsed = now - self.start
        share = self.done / self.total if self.total else 1.0
        eta = elapsed * (1 - share) / share if share > 0 else float("nan")
        stats = "".join(f"  {key} {_short(key, value)}" for key, value in self.stats.items())
        log.info("%s: %d/%d img (%.0f%%)%s  elapsed %s  eta %s", self.description, self.done, self.total,
                 100 * share, stats, _clock_text(elapsed), _clock_text(eta))
        self.last_time, self.last_done = now, self.done


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _short(key: str, value: float) -> str:
    return f"{value:.0f}" if key.startswith("img") else f"{value:.4f}"


def _clock_text(seconds: float) -> str:
    """`1:02:03` or `2:03`; `?` when unknown."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def summary_line(row: dict, *, epochs: int) -> str:
    """`epoch 3/10  train_loss 0.512  val_loss 0.430  val_macro_f1 0.871 ...`."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for key, value in row.items():
        if key != "epoch":
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)
