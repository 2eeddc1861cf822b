"""A fast scan of every file before training: bad inputs stop the run or are skipped and listed."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from winnow.data.imageio import (DecodeNotes, ImageHeader, ImageReadError, collect_decode_notes, is_grayscale_mode,
                                 probe, read_image)
from winnow.data.sources import Samples
from winnow.runs.atomic import atomic_write_text
from winnow.tasks.heads import label_parts

log = logging.getLogger("winnow")
SHOW_FIRST = 5
SCAN_CHUNK = 64  # files per thread hand-off of the scan; a header takes tens of microseconds on a local disk
IO_WAIT_PER_FILE_S = 0.5e-3  # a header scan goes on in threads when its first reads waited longer than this each


@dataclass
class ScanReport:
    """What the scan found: good sample indices, bad files with reasons, image modes, decoding notes."""

    good: list[int] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    modes: Counter = field(default_factory=Counter)
    decode: DecodeNotes = field(default_factory=DecodeNotes)

    def grayscale_share(self) -> float:
        gray = sum(n for mode, n in self.modes.items() if is_grayscale_mode(mode))
        return gray / max(1, sum(self.modes.values()))

    def summary(self) -> str:
        return bad_summary(self.bad)


def log_decode_notes(notes: DecodeNotes) -> None:
    """One log line for the files that needed the tifffile fallback (instead of tifffile's line per file)."""
    line = notes.summary()
    if line:
        log.info("decoding: %s", line)


def bad_summary(bad: list[tuple[str, str]]) -> str:
    """One line for `(path, reason)` pairs: `N bad file(s) {tag: count}; first: path (reason); ...`."""
    first = "; ".join(f"{path} ({reason})" for path, reason in bad[:SHOW_FIRST])
    return f"{len(bad)} bad file(s) {reason_counts(bad)}; first: {first}"


def reason_counts(bad: list[tuple[str, str]]) -> dict[str, int]:
    """`{reason tag: count}`; the tag is the part of the reason before its first colon."""
    return dict(Counter(reason.split(":")[0] for _, reason in bad))


def scan(samples: Samples, *, max_pixels: int, full: bool = False, workers: int = 8) -> ScanReport:
    """Check every file and flag paths listed twice (duplicates, or conflicting labels).

    Args:
        max_pixels: larger images are reported as possible decompression bombs.
        full: decode every file completely (catches truncated bodies), not only its header.
        workers: Threads at most; a header scan of files that read without waiting uses one (see `_probe_all`).
    """
    report = ScanReport()
    repeated = repeated_rows(samples)
    with collect_decode_notes() as notes:
        headers = _probe_all(samples.paths, max_pixels, full, workers=max(1, workers))
    report.decode = notes
    for index, (path, header) in enumerate(zip(samples.paths, headers)):
        if index in repeated:
            report.bad.append((path, repeated[index]))
        elif isinstance(header, ImageReadError):
            report.bad.append((path, f"{header.reason}: {header.detail}"))
        else:
            report.good.append(index)
            report.modes[header.mode] += 1
    return report


def _probe_all(paths: list[str], max_pixels: int, full: bool, *, workers: int) -> list[ImageHeader | ImageReadError]:
    """`_safe_probe` of every path, in order, by up to `workers` threads taking chunks of files.

    A header read of a local, cached file is Python holding the GIL: threads only add hand-offs and GIL
    contention there (8 threads on 2 cores scanned 2-3x slower than 1). They pay where reads wait on the
    disk or the network, so a header scan first reads `SCAN_CHUNK` files in this thread and keeps going
    alone unless those reads spent more than `IO_WAIT_PER_FILE_S` per file off the CPU. A local header
    read takes tens of microseconds, and even on cores shared with other jobs the thread waits about as
    long again for its turn; a network file system's round trips take a millisecond or more. A full scan
    decodes, which releases the GIL: it always uses the threads.
    """
    if full or workers == 1 or len(paths) <= SCAN_CHUNK:
        return _probe_chunks(paths, max_pixels, full, workers=workers if full else 1)
    first = [_safe_probe(paths[0], max_pixels, full)]  # untimed: the first open also imports PIL's plugins
    wall, cpu = time.perf_counter(), time.thread_time()
    first += [_safe_probe(path, max_pixels, full) for path in paths[1:SCAN_CHUNK]]
    off_cpu = (time.perf_counter() - wall) - (time.thread_time() - cpu)
    waited = off_cpu / (SCAN_CHUNK - 1) > IO_WAIT_PER_FILE_S
    return first + _probe_chunks(paths[SCAN_CHUNK:], max_pixels, full, workers=workers if waited else 1)


def _probe_chunks(paths: list[str], max_pixels: int, full: bool, *,
                  workers: int) -> list[ImageHeader | ImageReadError]:
    """`_safe_probe` of every path, in order; chunks of at least 4 per thread when `workers` > 1."""
    if workers == 1:
        return [_safe_probe(path, max_pixels, full) for path in paths]
    size = max(1, min(SCAN_CHUNK, -(-len(paths) // (4 * workers))))
    chunks = [paths[start:start + size] for start in range(0, len(paths), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        probed = pool.map(lambda chunk: [_safe_probe(path, max_pixels, full) for path in chunk], chunks)
        return [header for chunk in probed for header in chunk]


def _safe_probe(path: str, max_pixels: int, full: bool) -> ImageHeader | ImageReadError:
    try:
        header = probe(path, max_pixels=max_pixels)
        if full:
            read_image(path, in_chans=1)
        return header
    except ImageReadError as error:
        return error


def repeated_rows(samples: Samples) -> dict[int, str]:
    """`{row: reason}` for the second and later rows naming an already-seen path."""
    first: dict[str, int] = {}
    repeated = {}
    for index, path in enumerate(samples.paths):
        if path in first:
            repeated[index] = _repeat_reason(samples, first[path], index)
        first.setdefault(path, index)
    return repeated


def _repeat_reason(samples: Samples, first: int, again: int) -> str:
    """A path listed twice: "conflict" when the two rows disagree on the label, else "duplicate"."""
    where = _rows_named(samples, first, again)
    label, other = samples.labels[first], samples.labels[again]
    if label != other:
        return (f"conflict: conflicting labels {label!r} and {other!r} for one file{where}; "
                "keep the row with the right label and delete the other")
    return f"duplicate: path listed more than once{where}"


def _rows_named(samples: Samples, first: int, again: int) -> str:
    """The manifest lines of two rows, as ` (m.csv, line 2; n.csv, line 7)`; "" when not from manifests."""
    origins = [samples.origins[first], samples.origins[again]]
    return f" ({'; '.join(origins)})" if all(origins) else ""


def check_labels(samples: Samples, *, column: str = "label", multilabel: bool = False) -> None:
    """Every val/test label of `column` must exist in train; train needs two classes (one for multi-label).

    Multi-label values ("a|b") are checked label by label; empty values (unlabelled for this
    column's task) are ignored.
    """
    per_split = {split: _label_set(samples, column, split, multilabel) for split in ("train", "val", "test")}
    train_labels = per_split["train"]
    if len(train_labels) < (1 if multilabel else 2):
        raise ValueError(
            f"column {column!r}: the training split holds {len(train_labels)} class(es) {sorted(train_labels)}; "
            "a classifier needs at least two classes with images in train"
        )
    for split in ("val", "test"):
        unknown = sorted(per_split[split] - train_labels)
        if unknown:
            raise ValueError(
                f"column {column!r}: {split} holds label(s) {unknown} that are absent from train; "
                f"add training images for them or remove them from {split}"
            )


def _label_set(samples: Samples, column: str, split: str, multilabel: bool) -> set[str]:
    values = [v for v, s in zip(samples.column(column), samples.splits) if s == split and v != ""]
    return {part for v in values for part in label_parts("multilabel" if multilabel else "multiclass", v)}


def write_bad_files(bad: list[tuple[str, str]], path: Path) -> None:
    """Write `bad_files.csv` (path,reason) atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "reason"])
    writer.writerows(bad)
    atomic_write_text(path, buffer.getvalue())


def record_skipped(bad: list[tuple[str, str]], path: Path) -> list[str]:
    """List the files a job skipped in `path` (a bad_files.csv), and say so.

    Nothing skipped: a `path` left by an earlier job on the same output is removed, so that it never
    lists files of other data.

    Returns:
        The line to print (none when nothing was skipped).
    """
    if not bad:
        path.unlink(missing_ok=True)
        return []
    write_bad_files(bad, path)
    return skipped_lines(bad, path)


def skipped_lines(bad: list[tuple[str, str]], listed_in: Path) -> list[str]:
    """The line saying how many files were skipped and where they are listed; none when nothing was skipped."""
    return [f"skipped {len(bad)} unreadable file(s) {reason_counts(bad)}, listed in {listed_in}"] if bad else []


def check_readable(n_images: int, n_read: int, bad: list[tuple[str, str]], *, strict: bool) -> None:
    """Stop a job that has nothing to work on, or (`strict`) any unreadable file.

    Args:
        n_images: Images the job was given.
        n_read: Images read so far.
        bad: `(path, reason)` of the unreadable ones.
        strict: Any unreadable file is an error.

    Raises:
        ValueError: Naming the count and the first files.
    """
    if n_read == 0:
        raise ValueError(f"none of the {n_images} image(s) can be read: {bad_summary(bad)}; check the paths "
                         "and the files (a folder of another kind of data? files still being copied?)")
    if strict and bad:
        raise ValueError(f"strict: {len(bad)} of the {n_images} image(s) cannot be read: {bad_summary(bad)}; "
                         "fix or remove these files, or drop --strict to skip them (they are then listed in "
                         "bad_files.csv)")


def bad_input_message(report: ScanReport) -> str:
    return (
        f"{report.summary()}. Fix or remove these files, or pass --skip-bad to train without them "
        "(they are then listed in bad_files.csv in the run folder)"
    )
