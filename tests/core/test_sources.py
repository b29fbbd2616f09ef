"""Sources: every image mode becomes (H, W, 3) uint8 RGB; bad files are reported, not raised."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cvapps.core.sources import (
    Frame,
    is_image_path,
    is_stream_url,
    iter_frames,
    open_source,
    read_image,
    resize_square,
    resolve_source,
)


def rgb_image(width=40, height=30, color=(200, 30, 30)):
    return Image.new("RGB", (width, height), color)


def assert_rgb(array, height, width):
    assert isinstance(array, np.ndarray)
    assert array.shape == (height, width, 3) and array.dtype == np.uint8


def test_rgb_jpeg(tmp_path):
    rgb_image().save(tmp_path / "a.jpg", quality=95)
    image = read_image(tmp_path / "a.jpg")
    assert_rgb(image, 30, 40)
    assert np.abs(image.reshape(-1, 3).mean(0) - (200, 30, 30)).max() < 6  # RGB, not BGR


def test_grayscale_png(tmp_path):
    Image.new("L", (20, 10), 77).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert_rgb(image, 10, 20)
    assert (image == 77).all()


def test_rgba_png_over_white(tmp_path):
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent
    rgba.save(tmp_path / "t.png")
    image = read_image(tmp_path / "t.png")
    assert_rgb(image, 2, 4)
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[1, 3]) == (255, 0, 0)


def test_palette_png(tmp_path):
    palette = rgb_image(8, 6, (10, 120, 240)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert palette.mode == "P"
    palette.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert_rgb(image, 6, 8)
    assert tuple(image[0, 0]) == (10, 120, 240)


def test_16_bit_png(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode.startswith("I")
    image = read_image(tmp_path / "deep.png")
    assert_rgb(image, 1, 3)
    assert image[0, :, 0].tolist() == [0, 128, 255] and (image[..., 0] == image[..., 2]).all()


def test_exif_orientation_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))  # landscape as stored: left red, right blue
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "phone.jpg")
    assert_rgb(image, 40, 20)  # portrait once oriented
    top, bottom = image[:15].reshape(-1, 3).mean(0), image[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_bad_files_reported_and_batch_continues(tmp_path):
    rng = np.random.default_rng(0)
    rgb_image().save(tmp_path / "a_good.jpg")
    (tmp_path / "bad.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noisy.save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "full.jpg").unlink()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    rgb_image().save(tmp_path / "z_good.png")

    frames = list(iter_frames(tmp_path))
    by_name = {Path(frame.source).name: frame for frame in frames}
    assert [Path(frame.source).name for frame in frames] == ["a_good.jpg", "bad.jpg", "cut.jpg", "z_good.png"]
    for name in ("bad.jpg", "cut.jpg"):
        frame = by_name[name]
        assert frame.image is None and name in frame.error
    for name in ("a_good.jpg", "z_good.png"):
        assert by_name[name].error is None
        assert_rgb(by_name[name].image, 30, 40)
    with pytest.raises(ValueError, match="bad.jpg: not an image"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="cut.jpg: unreadable image"):
        read_image(tmp_path / "cut.jpg")


def test_empty_folder_and_missing_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no images"):
        list(iter_frames(tmp_path))
    with pytest.raises(ValueError, match="no such file"):
        iter_frames(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="matches no image files"):
        resolve_source(str(tmp_path / "*.png"))


def test_glob(tmp_path):
    for name in ("b.png", "a.png", "c.jpg"):
        rgb_image(4, 4).save(tmp_path / name)
    kind, paths = resolve_source(str(tmp_path / "*.png"))
    assert kind == "images" and [p.name for p in paths] == ["a.png", "b.png"]
    frames = list(iter_frames(str(tmp_path / "*.png")))
    assert [Path(f.source).name for f in frames] == ["a.png", "b.png"]
    assert all(f.index == 0 and f.error is None for f in frames)


def test_folder_recursive_and_sorted(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("b.png", "sub/deeper/a.png", "sub/a.png", "a.PNG", "sub/readme.md"):
        path = tmp_path / name
        if path.suffix == ".md":
            path.write_text("skip me")
        else:
            rgb_image(4, 4).save(path, format="PNG")
    kind, paths = resolve_source(tmp_path)
    assert kind == "images"
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a.PNG", "b.png", "sub/a.png", "sub/deeper/a.png"]
    assert open_source(tmp_path).count() == 4
    assert len(list(iter_frames(tmp_path, prefetch=0))) == 4


def test_single_image_source(tmp_path):
    rgb_image().save(tmp_path / "one.jpg")
    (frame,) = list(iter_frames(tmp_path / "one.jpg"))
    assert isinstance(frame, Frame) and frame.source == str(tmp_path / "one.jpg") and frame.index == 0
    assert_rgb(frame.image, 30, 40)


def test_video_source(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    assert resolve_source(path) == ("video", [path])
    assert open_source(path).count() == 5
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.source == str(path) and f.error is None for f in frames)
    assert_rgb(frames[0].image, 24, 32)
    assert frames[-1].image.mean() > frames[0].image.mean()


def test_undecodable_video_yields_an_error_frame(tmp_path):
    path = tmp_path / "broken.avi"
    path.write_bytes(b"\0" * 1000)
    try:
        frames = list(iter_frames(path))
    except ValueError as error:  # some OpenCV builds refuse to open it at all
        assert "broken.avi" in str(error)
    else:
        assert len(frames) == 1 and frames[0].image is None and "broken.avi" in frames[0].error


def test_camera_index_parsing():
    # Classified only: nothing here opens a camera.
    assert resolve_source("0") == ("camera", [0])
    assert resolve_source(2) == ("camera", [2])
    assert resolve_source("12") == ("camera", [12])
    assert open_source("0").count() is None


def test_stream_urls_are_classified_not_opened(tmp_path):
    for url in (
        "rtsp://cam/live",
        "RTSPS://cam/live",
        "rtmp://cam/app/key",
        "Http://cam/video.mjpg",
        "https://cam/x?.jpg",
        "udp://239.0.0.1:1234",
        "tcp://127.0.0.1:9000",
        "playlist.M3U8",
    ):
        assert is_stream_url(url) and resolve_source(url) == ("stream", [url]), url
        source = open_source(url)
        assert source.is_stream and source.count() is None
    (tmp_path / "live.m3u8").write_text("#EXTM3U\n")  # a local HLS playlist is a stream too
    assert resolve_source(tmp_path / "live.m3u8") == ("stream", [str(tmp_path / "live.m3u8")])
    assert not is_stream_url(0) and not is_stream_url("clips/http.mp4") and not is_stream_url("ftp://host/x")
    with pytest.raises(ValueError, match=r"or a stream URL such as rtsp://host/path"):
        resolve_source(tmp_path / "missing.mp4")


def test_is_image_path():
    assert is_image_path("x/Cat.JPG") and is_image_path("a.webp")
    assert not is_image_path("clip.mp4") and not is_image_path("notes")


def test_resize_square():
    wide = np.zeros((100, 50, 3), np.uint8)
    assert resize_square(wide, 32).shape == (32, 32, 3)
    assert resize_square(np.zeros((10, 20, 3), np.uint8), 64).shape == (64, 64, 3)
    square = np.zeros((16, 16, 3), np.uint8)
    assert resize_square(square, 16) is square
    assert resize_square(np.full((8, 8, 3), 200, np.uint8), 3).dtype == np.uint8


def test_decompression_bomb_is_reported_not_raised(tmp_path, monkeypatch):
    from PIL import Image

    from cvapps.core.sources import iter_frames

    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "small.png")
    # Pillow refuses images of more than 2 * MAX_IMAGE_PIXELS pixels: 64 * 64 > 2 * 100.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    frames = list(iter_frames(tmp_path))
    assert [f.image is None for f in frames] == [True, False]
    assert "big.png: image too large to decode safely" in frames[0].error
