"""Decoding every input mode into uint8 [H, W, C] (winnow.data.imageio)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, UnidentifiedImageError

from data_factory import (corrupt_tiff, gray, rgb, save, truncated_png, twelve_bit, write_bomb_png,
                          write_rgb16_png)
from winnow.data.imageio import (ImageHeader, ImageReadError, decode_bytes, decode_file, probe, read_bytes, read_image,
                                 scale_to_uint8, to_channels)

FILL = 77
BIG = 10**6  # max_pixels that never triggers
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # PIL on the corrupt TIFF


def luma(array: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as float, the reference for RGB -> gray."""
    return array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def read_both(path: Path, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    one, three = read_image(path, in_chans=1, fill=fill), read_image(path, in_chans=3, fill=fill)
    assert one.dtype == three.dtype == np.uint8
    assert one.ndim == three.ndim == 3 and one.shape[-1] == 1 and three.shape[-1] == 3
    assert one.shape[:2] == three.shape[:2]
    return one, three


def assert_gray_repeated(one: np.ndarray, three: np.ndarray) -> None:
    """A gray source gives the same plane three times when asked for RGB."""
    np.testing.assert_array_equal(three, np.repeat(one, 3, axis=-1))


def expected_range_scaled(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return np.rint((values - values.min()) / (values.max() - values.min()) * 255).astype(np.uint8)


# --------------------------------------------------------------------- 8-bit modes


def test_mode_1_bit(tmp_path):
    bits = (np.indices((12, 10)).sum(axis=0) % 2).astype(bool)
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)
    assert Image.open(path).mode == "1"
    one, three = read_both(path)
    np.testing.assert_array_equal(one[..., 0], np.where(bits, 255, 0))
    assert_gray_repeated(one, three)


def test_mode_L(tmp_path):
    values = gray(12, 10, seed=1)
    path = save(tmp_path / "gray.png", values)
    assert Image.open(path).mode == "L"
    one, three = read_both(path)
    np.testing.assert_array_equal(one[..., 0], values)
    assert_gray_repeated(one, three)


def test_mode_RGB(tmp_path):
    values = rgb(12, 10, seed=2)
    path = save(tmp_path / "color.png", values)
    one, three = read_both(path)
    np.testing.assert_array_equal(three, values)
    pil_gray = np.asarray(Image.fromarray(values).convert("L")).astype(int)
    assert np.abs(one[..., 0].astype(int) - pil_gray).max() <= 1
    assert np.abs(one[..., 0] - luma(values)).max() <= 0.5 + 1e-6


def test_mode_RGBA_composited_over_fill(tmp_path):
    color = rgb(12, 10, seed=3)
    alpha = np.zeros((12, 10), np.uint8)
    alpha[:4] = 255  # opaque
    alpha[4:8] = 128  # half
    path = save(tmp_path / "rgba.png", np.dstack([color, alpha]))
    assert Image.open(path).mode == "RGBA"
    one, three = read_both(path, fill=FILL)
    a = alpha[..., None] / 255.0
    expected = color * a + FILL * (1 - a)
    assert np.abs(three.astype(float) - expected).max() <= 0.5 + 1e-6
    np.testing.assert_array_equal(three[:4], color[:4])
    assert (three[8:] == FILL).all(), "fully transparent pixels must become the fill level"
    assert (one[8:] == FILL).all()
    assert np.abs(one[..., 0].astype(float) - luma(expected)).max() <= 1.0


def test_mode_LA_composited_over_fill(tmp_path):
    values = gray(12, 10, seed=4)
    alpha = np.full((12, 10), 255, np.uint8)
    alpha[6:] = 0
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([values, alpha]), mode="LA").save(path)
    assert Image.open(path).mode == "LA"
    one, three = read_both(path, fill=FILL)
    np.testing.assert_array_equal(one[:6, :, 0], values[:6])
    assert (one[6:] == FILL).all()
    assert_gray_repeated(one, three)


def _palette_image(indices: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    palette = np.zeros((256, 3), np.uint8)
    palette[:4] = [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]]
    image = Image.new("P", indices.shape[::-1])
    image.putdata(indices.ravel().tolist())
    image.putpalette(palette.ravel().tolist())
    return image, palette


def test_mode_P_without_transparency(tmp_path):
    indices = np.arange(12 * 10).reshape(12, 10) % 4
    image, palette = _palette_image(indices)
    path = tmp_path / "palette.png"
    image.save(path)
    assert Image.open(path).mode == "P" and "transparency" not in Image.open(path).info
    one, three = read_both(path, fill=FILL)
    np.testing.assert_array_equal(three, palette[indices])
    assert np.abs(one[..., 0] - luma(palette[indices])).max() <= 0.5 + 1e-6


def test_mode_P_with_transparency_becomes_fill(tmp_path):
    indices = np.arange(12 * 10).reshape(12, 10) % 4
    image, palette = _palette_image(indices)
    path = tmp_path / "palette_t.png"
    image.save(path, transparency=0)  # palette entry 0 is fully transparent
    assert "transparency" in Image.open(path).info
    one, three = read_both(path, fill=FILL)
    transparent = indices == 0
    assert (three[transparent] == FILL).all()
    assert (one[transparent] == FILL).all()
    np.testing.assert_array_equal(three[~transparent], palette[indices][~transparent])


def test_mode_CMYK_jpeg(tmp_path):
    # 16x16 uniform blocks (aligned to JPEG's 8x8 blocks) keep compression error small
    inks = np.array([[0, 0, 0, 0], [255, 0, 0, 0], [0, 128, 0, 64], [30, 60, 90, 20]], np.uint8)
    block = np.kron(np.arange(4).reshape(2, 2), np.ones((16, 16), int))
    cmyk = inks[block]
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(cmyk, mode="CMYK").save(path, quality=98, subsampling=0)
    assert Image.open(path).mode == "CMYK"
    one, three = read_both(path)
    c, m, y, k = (inks[:, i].astype(float) for i in range(4))
    expected = np.stack([(255 - c) * (255 - k), (255 - m) * (255 - k), (255 - y) * (255 - k)], -1) / 255
    for b in range(4):
        rows, cols = np.nonzero(block == b)
        centre = three[rows.min() + 8, cols.min() + 8].astype(float)
        assert np.abs(centre - expected[b]).max() <= 6, (b, centre, expected[b])
        assert abs(one[rows.min() + 8, cols.min() + 8, 0] - luma(centre)) <= 1
    assert three.shape == (32, 32, 3)


# --------------------------------------------------------------------- high depth


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_scaled_by_real_range(tmp_path, suffix):
    values = twelve_bit()
    path = tmp_path / f"deep{suffix}"
    if suffix == ".png":
        Image.fromarray(values).save(path)
    else:
        tifffile.imwrite(path, values)
    assert Image.open(path).mode.startswith("I;16")
    one, three = read_both(path)
    assert one[values == 4095].min() == 255, "4095 must map to 255 (real range, not /65535)"
    assert one[values == 0].max() == 0
    np.testing.assert_array_equal(one[..., 0], expected_range_scaled(values))
    assert len(np.unique(one)) > 64, "values must not be clipped at 255"
    assert_gray_repeated(one, three)


def test_mode_I_32_bit(tmp_path):
    values = (np.arange(12 * 10).reshape(12, 10) * 1000 - 20_000).astype(np.int32)
    path = tmp_path / "int32.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I"
    one, three = read_both(path)
    np.testing.assert_array_equal(one[..., 0], expected_range_scaled(values))
    assert_gray_repeated(one, three)


def test_mode_F_float_tiff(tmp_path):
    values = np.linspace(-1.5, 2.5, 12 * 10, dtype=np.float32).reshape(12, 10)
    values[3, 3] = np.nan
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "F"
    one, three = read_both(path)
    finite = np.isfinite(values)
    expected = np.rint((values - np.nanmin(values)) / (np.nanmax(values) - np.nanmin(values)) * 255)
    np.testing.assert_array_equal(one[..., 0][finite], expected[finite].astype(np.uint8))
    assert one[3, 3, 0] == 0, "non-finite pixels map to the low end"
    assert_gray_repeated(one, three)


def test_scale_to_uint8_edge_cases():
    assert (scale_to_uint8(np.full((3, 3), np.nan)) == 0).all()
    assert scale_to_uint8(np.array([[5.0, 5.0]])).tolist() == [[0, 0]]
    assert scale_to_uint8(np.array([[np.inf, 1.0, 3.0]])).tolist() == [[0, 0, 255]]


def test_tiff_that_pil_rejects_falls_back_to_tifffile(tmp_path):
    values = np.linspace(0, 10, 12 * 10).reshape(12, 10).astype(np.float16)
    path = tmp_path / "half.tif"
    tifffile.imwrite(path, values)
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)
    one, three = read_both(path)
    np.testing.assert_array_equal(one[..., 0], expected_range_scaled(values.astype(np.float64)))
    assert_gray_repeated(one, three)
    assert probe(path, max_pixels=BIG) == ImageHeader(10, 12, "tiff:float16")


def test_gray_alpha_16_bit_tiff_via_tifffile(tmp_path):
    values = twelve_bit()
    path = tmp_path / "gray_alpha16.tif"
    tifffile.imwrite(path, np.dstack([values, np.full_like(values, 65535)]), photometric="minisblack",
                     planarconfig="contig", extrasamples=["unassalpha"])
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)
    one, three = read_both(path)
    np.testing.assert_array_equal(one[..., 0], expected_range_scaled(values))
    assert_gray_repeated(one, three)


def _rgb12() -> np.ndarray:
    values = twelve_bit()
    return np.dstack([values, values[::-1], values[:, ::-1]])


def test_16_bit_rgb_tiff_scaled_by_real_range(tmp_path):
    values = _rgb12()
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, values, photometric="rgb")
    three = read_image(path, in_chans=3)
    assert three.max() == 255
    expected = np.stack([expected_range_scaled(values[..., c]) for c in range(3)], -1)
    assert np.abs(three.astype(int) - expected).max() <= 1


def test_16_bit_planar_rgb_tiff(tmp_path):
    values = _rgb12()
    path = tmp_path / "planar16.tif"
    tifffile.imwrite(path, np.moveaxis(values, -1, 0), photometric="rgb", planarconfig="separate")
    three = read_image(path, in_chans=3)
    expected = np.stack([expected_range_scaled(values[..., c]) for c in range(3)], -1)
    assert np.abs(three.astype(int) - expected).max() <= 1


def test_16_bit_rgb_png_is_refused_clearly(tmp_path):
    """Pillow keeps only the high byte of 16-bit colour PNGs: refuse rather than decode wrongly."""
    values = _rgb12()
    path = write_rgb16_png(tmp_path / "rgb16.png", values)
    for call in (lambda: read_image(path, in_chans=3), lambda: probe(path, max_pixels=BIG)):
        with pytest.raises(ImageReadError, match="16-bit colour PNG.*save it as a 16-bit TIFF") as error:
            call()
        assert error.value.reason == "unsupported"


def test_planar_8_bit_rgb_tiff_via_tifffile_layout(tmp_path):
    """tifffile returns [C, H, W] for planar data; it must come back as [H, W, C]."""
    values = rgb(12, 10, seed=5)
    path = tmp_path / "planar8.tif"
    tifffile.imwrite(path, np.moveaxis(values, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(path, in_chans=3), values)


# --------------------------------------------------------------------- EXIF


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_honoured(tmp_path, orientation):
    values = np.zeros((16, 32), np.uint8)
    values[:, 16:] = 255  # left half dark, right half bright
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif{orientation}.jpg"
    Image.fromarray(values).save(path, exif=exif.tobytes(), quality=95)
    one = read_image(path, in_chans=1)
    assert one.shape == (32, 16, 1), "the decoded image must be rotated by the EXIF orientation"
    top, bottom = one[:12].mean(), one[-12:].mean()
    if orientation == 6:  # rotate 90 degrees clockwise to display: the left edge goes to the top
        assert top < 40 and bottom > 215
    else:  # 8: rotate 90 degrees counter-clockwise: the left edge goes to the bottom
        assert top > 215 and bottom < 40
    decoded = decode_file(path)
    assert decoded.source.size == (32, 16), "the file's own image keeps its stored orientation"


def test_upright_image_pixels_are_the_files(tmp_path):
    values = rgb(9, 13)
    exif = Image.Exif()
    exif[0x0112] = 1  # upright: nothing to turn
    path = tmp_path / "upright.png"
    Image.fromarray(values).save(path, exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(path, in_chans=3), values)


# --------------------------------------------------------------------- probe and errors


def test_probe_reads_header(tmp_path):
    path = save(tmp_path / "wide.png", rgb(20, 30))
    assert probe(path, max_pixels=BIG) == ImageHeader(width=30, height=20, mode="RGB")
    deep = tmp_path / "deep.tif"
    tifffile.imwrite(deep, twelve_bit(7, 5))
    header = probe(deep, max_pixels=BIG)
    assert (header.width, header.height) == (5, 7) and header.mode.startswith("I;16")


def _reason(call, *args, **kwargs) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        call(*args, **kwargs)
    return info.value


def test_probe_missing(tmp_path):
    path = tmp_path / "nope.png"
    error = _reason(probe, path, max_pixels=BIG)
    assert error.reason == "missing" and error.path == str(path) and str(path) in str(error)


def test_probe_folder_named_like_an_image_is_missing(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    assert _reason(probe, path, max_pixels=BIG).reason == "missing"
    assert _reason(read_image, path, in_chans=1).reason == "missing"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_reason(probe, path, max_pixels=BIG).reason), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome == ["missing"], "opening a named pipe must not wait for a writer"


def test_probe_zero_bytes(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    error = _reason(probe, path, max_pixels=BIG)
    assert error.reason == "empty" and str(path) in str(error)


def test_probe_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    error = _reason(probe, path, max_pixels=BIG)
    assert error.reason == "not_an_image" and str(path) in str(error)
    assert f"cannot identify image file {str(path)!r}" in error.detail, "the detail names the file, not a handle"
    decoded = _reason(read_image, path, in_chans=1)
    assert decoded.reason == "not_an_image", "the decode gives the scan's reason (prediction jobs scan nothing first)"
    assert f"cannot identify image file {str(path)!r}" in decoded.detail


def test_decode_checks_pixels_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(path)
    error = _reason(read_image, path, in_chans=1, max_pixels=300 * 200 - 1)
    assert error.reason == "too_large" and "300x200 pixels exceeds max_image_pixels=59999" in error.detail
    assert read_image(path, in_chans=1, max_pixels=300 * 200).shape == (200, 300, 1)
    assert read_image(path, in_chans=1).shape == (200, 300, 1), "no limit unless one is given"


def test_decode_checks_pixels_of_tiff_read_by_tifffile(tmp_path):
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, np.zeros((3, 40, 50), dtype=np.uint16), photometric="rgb", planarconfig="separate")
    error = _reason(read_image, path, in_chans=3, max_pixels=40 * 50 - 1)
    assert error.reason == "too_large" and "50x40 pixels" in error.detail, "the size fields, not the planar shape"
    assert _reason(probe, path, max_pixels=40 * 50 - 1).reason == "too_large"
    assert read_image(path, in_chans=3, max_pixels=40 * 50).shape == (40, 50, 3)


def test_probe_corrupt_tiff(tmp_path):
    path = corrupt_tiff(tmp_path / "broken.tif")
    assert _reason(probe, path, max_pixels=BIG).reason == "corrupt"
    assert _reason(read_image, path, in_chans=1).reason == "corrupt"


def test_truncated_png_passes_probe_but_read_raises_corrupt(tmp_path):
    path = truncated_png(tmp_path / "cut.png")
    assert probe(path, max_pixels=BIG).width == 40  # only the header is read
    error = _reason(read_image, path, in_chans=3)
    assert error.reason == "corrupt" and str(path) in str(error)


def test_truncated_tiff_read_raises_corrupt(tmp_path):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, twelve_bit(40, 40))
    path = tmp_path / "cut.tif"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert _reason(read_image, path, in_chans=1).reason == "corrupt"


def test_probe_too_large(tmp_path):
    path = save(tmp_path / "big.png", gray(20, 30))
    assert probe(path, max_pixels=600).width == 30  # exactly at the limit is fine
    error = _reason(probe, path, max_pixels=599)
    assert error.reason == "too_large"
    assert "max_image_pixels" in str(error) and "30x20" in str(error)


def test_probe_too_large_tiff_fallback(tmp_path):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((20, 30), np.float16))  # read by the tifffile fallback
    assert _reason(probe, path, max_pixels=100).reason == "too_large"


def test_probe_decompression_bomb_is_too_large(tmp_path):
    path = write_bomb_png(tmp_path / "bomb.png", side=20_000)  # 4e8 pixels claimed by a 100-byte file
    assert _reason(probe, path, max_pixels=10_000).reason == "too_large"


def test_to_channels_rules():
    plane = gray(4, 5)
    np.testing.assert_array_equal(to_channels(plane, 1)[..., 0], plane)
    np.testing.assert_array_equal(to_channels(plane, 3), np.repeat(plane[..., None], 3, -1))
    color = rgb(4, 5)
    np.testing.assert_array_equal(to_channels(color, 3), color)
    with pytest.raises(ValueError, match="in_chans=4"):
        to_channels(color, 4)


def _files_of_every_kind(tmp_path: Path) -> list[Path]:
    rgb16 = tmp_path / "rgb16.tif"
    tifffile.imwrite(rgb16, (rgb(12, 10).astype(np.uint16) * 257), photometric="rgb")
    return [save(tmp_path / "gray.png", gray()), save(tmp_path / "rgb.jpg", rgb(16, 16)),
            save(tmp_path / "palette.png", rgb(), mode="P"), save(tmp_path / "twelve.tif", twelve_bit()), rgb16]


def test_decode_bytes_gives_the_pixels_of_the_file(tmp_path):
    for path in _files_of_every_kind(tmp_path):
        data = path.read_bytes()
        assert np.array_equal(decode_bytes(data, name=path.name).pixels, decode_file(path).pixels), path.name
        assert np.array_equal(read_bytes(data, name=path.name, in_chans=3, fill=FILL),
                              read_image(path, in_chans=3, fill=FILL)), path.name


def test_decode_bytes_gives_the_reasons_of_decode_file(tmp_path):
    cut, bomb = truncated_png(tmp_path / "cut.png"), write_bomb_png(tmp_path / "bomb.png")
    cases = {"empty": b"", "not_an_image": b"hello, not an image", "corrupt": cut.read_bytes(),
             "too_large": bomb.read_bytes()}
    for reason, data in cases.items():
        error = _reason(decode_bytes, data, name="upload 3", max_pixels=BIG)
        assert error.reason == reason and "upload 3" in str(error), (reason, str(error))
    assert _reason(decode_bytes, corrupt_tiff(tmp_path / "bad.tif").read_bytes(), name="x.tif").reason == "corrupt"
