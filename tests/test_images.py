"""aigiqa.images: one reader for every image mode, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aigiqa import images
from aigiqa.errors import ImageError
from aigiqa.images import find_images, load_image, verify_image


def _rgb(h=8, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_round_trip(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (8, 6, 3)
    np.testing.assert_array_equal(out, arr)


def test_modes_become_rgb(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(8, 6) * 5
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), np.repeat(gray[:, :, None], 3, 2))

    rgba = np.dstack([_rgb(), np.full((8, 6), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgba[:, :, :3])

    wide = (gray.astype(np.uint16) * 257)
    Image.fromarray(wide).save(tmp_path / "w.png")  # 16-bit grayscale PNG
    np.testing.assert_array_equal(load_image(tmp_path / "w.png")[:, :, 0], gray)

    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (8, 6, 3)


def test_exif_orientation_applied(tmp_path):
    arr = _rgb(4, 10)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    assert load_image(tmp_path / "r.jpg").shape == (10, 4, 3)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"\x89PNG\r\n\x1a\nnot really a png", "cannot read")],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(_rgb(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match="t.png"):
        verify_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_decompression_bomb(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(_rgb(40, 40)).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(path)


def test_find_images(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.PNG"):
        Image.fromarray(_rgb()).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    found = find_images([tmp_path])
    assert [p.name for p in found] == ["a.jpg", "b.png", "c.PNG"]
    with pytest.raises(ImageError, match="no such"):
        find_images([tmp_path / "missing"])


def test_alpha_is_dropped_not_composited(tmp_path):
    rgba = np.dstack([_rgb(), np.zeros((8, 6), np.uint8)])  # fully transparent, coloured
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    np.testing.assert_array_equal(load_image(tmp_path / "t.png"), rgba[:, :, :3])
    doc = " ".join(load_image.__doc__.split())
    assert "dropped" in doc and "composited on black" not in doc  # the docstring says so
