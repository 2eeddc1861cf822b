"""Malformed TIFFs decode quietly; the run reports once how many needed the tifffile fallback."""

from __future__ import annotations

import io
import logging
import struct

import numpy as np
import tifffile

from winnow.data.imageio import collect_decode_notes, probe, read_image

STRIP_BYTE_COUNTS = 279


def malformed_rgb16_tiff(path) -> np.ndarray:
    """A 16-bit RGB TIFF (PIL would lose its depth, so tifffile reads it) whose StripByteCounts count is off by one."""
    data = (np.arange(16 * 8 * 3, dtype=np.uint16).reshape(16, 8, 3) * 100)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, rowsperstrip=4, photometric="rgb")
    raw = bytearray(buffer.getvalue())
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for entry in range(struct.unpack_from("<H", raw, ifd)[0]):
        offset = ifd + 2 + 12 * entry
        tag, _, count = struct.unpack_from("<HHI", raw, offset)
        if tag == STRIP_BYTE_COUNTS:
            struct.pack_into("<I", raw, offset + 4, count + 1)
    path.write_bytes(bytes(raw))
    return data


def test_winnow_reads_are_quiet_and_noted(tmp_path, caplog):
    paths = [tmp_path / f"spread{i}.tif" for i in range(3)]
    data = [malformed_rgb16_tiff(path) for path in paths]
    caplog.set_level(logging.INFO)
    with collect_decode_notes() as notes:
        arrays = [read_image(path, in_chans=3) for path in paths for _ in range(4)]  # read each file 4 times
        probe(paths[0], max_pixels=10**6)
    assert not [r for r in caplog.records if r.name == "tifffile"]
    assert notes.fallback == {str(p) for p in paths} and set(notes.repaired) == {str(p) for p in paths}
    summary = notes.summary()
    assert summary.startswith("3 file(s) needed the tifffile fallback reader")
    assert "repaired malformed tags in 3" in summary and "incorrect StripByteCounts count (5 != 4)" in summary
    assert arrays[0].shape == (16, 8, 3) and arrays[0].dtype == np.uint8
    assert int(np.argmax(arrays[0].reshape(-1))) == int(np.argmax(data[0].reshape(-1)))  # scaled, not garbled


def test_tifffile_messages_outside_winnow_reads_pass_through(tmp_path, caplog):
    path = tmp_path / "odd.tif"
    malformed_rgb16_tiff(path)
    caplog.set_level(logging.INFO)
    tifffile.imread(path)
    assert any("incorrect StripByteCounts count" in r.getMessage() for r in caplog.records if r.name == "tifffile")


def test_nothing_to_report_for_plain_images(tmp_path):
    from PIL import Image

    path = tmp_path / "plain.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    with collect_decode_notes() as notes:
        read_image(path, in_chans=1)
    assert notes.summary() is None and not notes.fallback


def test_training_on_malformed_tiffs_reports_once_and_logs_no_bar(tmp_path, capfd):
    import winnow

    from conftest import fast_config

    root = tmp_path / "tiffs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(8):
            malformed_rgb16_tiff(root / label / f"{label}{i}.tif")
    run = winnow.train(fast_config(tmp_path, root, epochs=1, progress=True, progress_every="10%"))
    log_text = (run.path / "train.log").read_text()
    stderr = capfd.readouterr().err
    assert "\r" not in stderr and "\r" not in log_text  # stderr is no terminal here: plain lines only
    assert log_text.count("decoding: 16 file(s) needed the tifffile fallback reader") == 1
    assert "incorrect StripByteCounts count" in log_text  # named once, in the summary
    assert "tifffile" not in stderr.replace("tifffile fallback", "").replace("tifffile repaired", "")
    assert "epoch 1/1: " in log_text and "img (100%)" in log_text  # the plain progress lines
