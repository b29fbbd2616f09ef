"""Truncated and oversized images: refused by name by default, decoded on request, left out of
data sets up front (named, then counted) instead of failing later in a batch or an evaluation."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from cvapps.core import sources
from cvapps.core.sources import (
    check_image,
    get_allow_truncated,
    get_max_pixels,
    iter_frames,
    read_image,
    set_allow_truncated,
    set_max_pixels,
)


@pytest.fixture(autouse=True)
def default_read_options(monkeypatch):
    """Every test starts (and ends) with the defaults: no truncated reads, the 50 MP cap."""
    monkeypatch.delenv("CVAPPS_ALLOW_TRUNCATED", raising=False)
    monkeypatch.delenv("CVAPPS_MAX_PIXELS", raising=False)
    set_allow_truncated(None)
    set_max_pixels(None)
    yield
    set_allow_truncated(None)
    set_max_pixels(None)


def noisy(width=120, height=90, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def truncated_jpeg(path, keep=0.6, width=120, height=90, seed=0):
    """A JPEG missing its last bytes, as a half-finished download leaves it; returns the whole
    file's pixels as decoded."""
    buffer = io.BytesIO()
    Image.fromarray(noisy(width, height, seed)).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def big_png(path, width=2000, height=1000):
    """2 megapixels of one grey: a few KB on disk, 6 MB decoded."""
    Image.new("L", (width, height), 90).save(path)
    return path


# --- truncated ---------------------------------------------------------------------------------


def test_truncated_jpeg_is_refused_by_name_with_the_way_out(tmp_path):
    truncated_jpeg(tmp_path / "cut.jpg")
    for read in (read_image, check_image):
        with pytest.raises(ValueError, match=r"cut\.jpg: .*truncated.*pass --allow-truncated to decode what is there"):
            read(tmp_path / "cut.jpg")


def test_allow_truncated_decodes_what_is_there_and_puts_pillow_back(tmp_path):
    pixels = truncated_jpeg(tmp_path / "cut.jpg")
    set_allow_truncated(True)
    assert get_allow_truncated()
    image = read_image(tmp_path / "cut.jpg")
    assert image.shape == (90, 120, 3)
    assert (image[:16] == pixels[:16]).all() and (image[-8:] != pixels[-8:]).any()  # the top is there
    assert check_image(tmp_path / "cut.jpg") == (120, 90)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # on only during our reads, not left on
    set_allow_truncated(False)
    with pytest.raises(ValueError, match="--allow-truncated"):
        read_image(tmp_path / "cut.jpg")


def test_environment_variable_allows_truncated(tmp_path, monkeypatch):
    truncated_jpeg(tmp_path / "cut.jpg")
    monkeypatch.setenv("CVAPPS_ALLOW_TRUNCATED", "1")
    assert read_image(tmp_path / "cut.jpg").shape == (90, 120, 3)
    set_allow_truncated(False)  # the setter wins over the environment
    with pytest.raises(ValueError, match="--allow-truncated"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(TypeError, match="True, False or None"):
        set_allow_truncated("yes")


def test_decoding_threads_see_the_setting(tmp_path):
    for k in range(6):
        truncated_jpeg(tmp_path / f"{k}.jpg", seed=k)
    refused = list(iter_frames(tmp_path, workers=2))
    assert all(frame.image is None and "--allow-truncated" in frame.error for frame in refused)
    set_allow_truncated(True)
    frames = list(iter_frames(tmp_path, workers=3, prefetch=2))
    assert len(frames) == 6 and all(frame.error is None and frame.image.shape == (90, 120, 3) for frame in frames)


def test_cli_flag_sets_it_for_the_command(tmp_path):
    from click.testing import CliRunner

    from cvapps.cli import cli

    assert "--allow-truncated" in CliRunner().invoke(cli, ["--help"]).output
    result = CliRunner().invoke(cli, ["--allow-truncated", "models", "--json"])
    assert result.exit_code == 0, result.output
    assert get_allow_truncated()
    CliRunner().invoke(cli, ["models", "--json"])  # without the flag: back to the environment's default
    assert not get_allow_truncated()


def test_other_formats_cut_short_still_fail_with_a_message(tmp_path):
    Image.fromarray(noisy()).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"a\.png: .*truncated.*--allow-truncated"):
        check_image(tmp_path / "a.png")
    set_allow_truncated(True)
    assert read_image(tmp_path / "a.png").shape == (90, 120, 3)


def test_trailing_bytes_after_the_end_marker_are_not_truncation(tmp_path):
    Image.fromarray(noisy()).save(tmp_path / "a.jpg")
    with open(tmp_path / "a.jpg", "ab") as file:
        file.write(b"camera trailer" * 10)
    assert check_image(tmp_path / "a.jpg") == (120, 90)


# --- pixel cap ---------------------------------------------------------------------------------


def test_pixel_cap_refuses_before_decoding_and_says_how_to_raise_it(tmp_path, monkeypatch):
    path = big_png(tmp_path / "huge.png")
    assert path.stat().st_size < 50_000
    assert get_max_pixels() == 50_000_000
    set_max_pixels(1_000_000)
    for read in (read_image, check_image):
        with pytest.raises(
            ValueError, match=r"huge\.png: 2000x1000 is 2\.0 megapixels, over the limit of 1 megapixels"
        ):
            read(path)
    with pytest.raises(ValueError, match="CVAPPS_MAX_PIXELS=2000000"):
        read_image(path)
    assert read_image(path, max_pixels=3_000_000).shape == (1000, 2000, 3)  # one read may raise it
    set_max_pixels(0)  # no cap
    assert read_image(path).shape == (1000, 2000, 3)
    set_max_pixels(None)
    monkeypatch.setenv("CVAPPS_MAX_PIXELS", "1000000")
    assert get_max_pixels() == 1_000_000
    [frame] = iter_frames(path)
    assert frame.image is None and "over the limit" in frame.error
    monkeypatch.setenv("CVAPPS_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="CVAPPS_MAX_PIXELS='lots': expected a whole number"):
        get_max_pixels()
    with pytest.raises(ValueError, match="whole number >= 0"):
        set_max_pixels(-5)


def test_large_jpeg_is_decoded_reduced_when_the_target_size_is_known(tmp_path):
    Image.new("RGB", (1600, 1200), (10, 200, 30)).save(tmp_path / "big.jpg")
    assert read_image(tmp_path / "big.jpg").shape == (1200, 1600, 3)
    small = read_image(tmp_path / "big.jpg", reduce_to=200)  # 1/4 scale still covers 200 x 200
    assert small.shape == (300, 400, 3) and np.abs(small.reshape(-1, 3).mean(0) - (10, 200, 30)).max() < 6
    assert read_image(tmp_path / "big.jpg", reduce_to=(1000, 700)).shape == (1200, 1600, 3)  # no scale fits
    with pytest.raises(ValueError, match="over the limit of 1 megapixels"):
        read_image(tmp_path / "big.jpg", max_pixels=1_000_000)
    assert read_image(tmp_path / "big.jpg", max_pixels=1_000_000, reduce_to=500).shape == (600, 800, 3)
    Image.new("RGB", (1600, 1200)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", reduce_to=200).shape == (1200, 1600, 3)  # only JPEGs reduce


def test_pillow_bomb_limit_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    path = big_png(tmp_path / "bomb.png", 600, 600)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 360 000 > 2 x the limit: Pillow's error
    for read in (read_image, check_image):
        with pytest.raises(ValueError, match=r"bomb\.png: image too large to decode safely"):
            read(path)


# --- loaders -----------------------------------------------------------------------------------


def test_classification_loader_names_truncated_files_and_reads_them_when_allowed(tmp_path):
    from cvapps.classification.data import load_classification

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for k in range(3):
            Image.fromarray(noisy(40, 30, k)).save(tmp_path / name / f"{k}.jpg")
    truncated_jpeg(tmp_path / "dogs" / "cut.jpg")
    data = load_classification(tmp_path, image_size=32, workers=2)
    assert len(data) == 6 and len(data.skipped) == 1 and "cut.jpg" in data.skipped[0]
    assert "--allow-truncated" in data.skipped[0]
    set_allow_truncated(True)  # the loader's thread pool sees it
    assert len(load_classification(tmp_path, image_size=32, workers=2)) == 7


def make_pairs(root, count=3, size=32):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(count):
        Image.fromarray(noisy(size, size, k)).save(root / "images" / f"{k}.jpg", quality=95)
        mask = np.zeros((size, size), np.uint8)
        mask[4:20, 4:20] = 255
        Image.fromarray(mask).save(root / "masks" / f"{k}.png")
    return root


def test_segmentation_loader_leaves_out_truncated_and_oversized_pairs_up_front(tmp_path, monkeypatch):
    from cvapps.segmentation.data import load_segmentation

    root = make_pairs(tmp_path / "d", count=3)
    truncated_jpeg(root / "images" / "cut.jpg", width=32, height=32)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "masks" / "cut.png")
    big_png(root / "images" / "big.png", 1200, 1000)
    Image.new("L", (1200, 1000)).save(root / "masks" / "big_mask.png")
    big_png(root / "masks" / "2.png", 1200, 1000)  # an oversized mask for a small image
    set_max_pixels(1_000_000)
    data = load_segmentation(root)
    assert len(data) == 2
    text = "\n".join(data.problems)
    assert "cut.jpg: unreadable image" in text and "--allow-truncated" in text
    assert "big.png: 1200x1000 is 1.2 megapixels, over the limit" in text
    assert "2.png: unreadable mask (1200x1000 is 1.2 megapixels, over the limit" in text
    assert data.problems[-1].endswith(
        "3 of 5 image/mask pairs left out because a file could not be read or used (each named above)"
    )
    set_allow_truncated(True)
    assert "cut.jpg" in {p.name for p in load_segmentation(root).paths}


def test_segmentation_loader_survives_a_pillow_bomb(tmp_path, monkeypatch):
    from cvapps.segmentation.data import load_segmentation

    root = make_pairs(tmp_path / "d", count=2)
    big_png(root / "masks" / "1.png", 600, 600)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    data = load_segmentation(root, class_names=("background", "square"))
    assert len(data) == 1 and any("1.png: unreadable mask (image too large" in p for p in data.problems)


def test_truncated_scope_is_counted_across_threads(monkeypatch):
    set_allow_truncated(True)
    with sources.truncated_scope():
        with sources.truncated_scope():
            assert ImageFile.LOAD_TRUNCATED_IMAGES is True
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the outer read is still going
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
