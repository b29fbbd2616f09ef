"""Detection data: the four loaders on tiny hand-written data sets, augmentation geometry, batches."""

import json
from pathlib import Path

import numpy as np
import pytest

from cvapps.detection.augment import (
    filter_boxes,
    hflip,
    hsv_jitter,
    letterbox,
    letterbox_boxes,
    mosaic,
    random_affine,
    unletterbox_boxes,
)
from cvapps.detection.data import DetectionBatches, DetectionData, DetectionSample, split_detection
from cvapps.detection.formats import load_detection, read_yaml_names


def write_image(path, width, height, value=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------------- YOLO


def make_yolo(root, yaml_text="names:\n  0: cat\n  1: dog\n"):
    write_image(root / "images" / "train" / "a.jpg", 100, 80)
    write_image(root / "images" / "train" / "b.png", 50, 50)  # no label file: no objects
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text(
        "0 0.5 0.5 0.25 0.5\n"  # 100x80: x 50 -+ 12.5 = 37.5..62.5, y 40 -+ 20 = 20..60
        "1 0.5 0.5 abc 0.1\n"  # bad numbers: reported as a.txt:2, skipped
        "7 0.5 0.5 0.1 0.1\n"  # class 7 has no name: reported as a.txt:3, skipped
        "1 0.9 0.25 0.4 0.5\n"  # x 90 -+ 20 = 70..110 -> clipped to 100; y 20 -+ 20 = 0..40
    )
    (root / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text(yaml_text)
    return root


def test_yolo_boxes_problems_and_orphan_labels(tmp_path):
    data = load_detection(make_yolo(tmp_path))
    assert data.class_names == ("cat", "dog")
    assert [p.name for p in data.paths] == ["a.jpg", "b.png"]
    a, b = data.samples
    assert (a.width, a.height) == (100, 80)
    np.testing.assert_allclose(a.boxes, [[37.5, 20, 62.5, 60], [70, 0, 100, 40]], atol=1e-4)
    assert a.boxes.dtype == np.float32 and a.class_ids.dtype == np.int64
    assert a.class_ids.tolist() == [0, 1]
    assert b.boxes.shape == (0, 4)
    label = tmp_path / "labels" / "train" / "a.txt"
    assert any(p.startswith(f"{label}:2: ") for p in data.problems)
    assert any(p.startswith(f"{label}:3: class id 7") for p in data.problems)
    assert any(p.startswith(f"{label}:4: ") and "clipped" in p for p in data.problems)
    assert any("orphan.txt" in p and "without an image" in p for p in data.problems)
    assert len(load_detection(tmp_path, split="train")) == 2


@pytest.mark.parametrize(
    "text",
    [
        "names: [cat, 'dog']  # comment\n",
        "names:\n  - cat\n  - dog\nnc: 2\n",
        "train: images/train\nnames: {0: cat, 1: dog}\n",
        'names:\n  1: dog\n  0: "cat"\n',
    ],
)
def test_yaml_name_forms(tmp_path, text):
    (tmp_path / "d.yaml").write_text(text)
    assert read_yaml_names(tmp_path / "d.yaml")[0] == ["cat", "dog"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("names: ['a, b', \"it's\", '#1']\n", ["a, b", "it's", "#1"]),  # quoted commas, apostrophes, hashes
        ("names: ['it''s', \"say \\\"hi\\\"\"]\n", ["it's", 'say "hi"']),  # YAML's own escapes
        ("names:\n  [cat,\n   dog,\n   bird]\n", ["cat", "dog", "bird"]),  # a flow list over several lines
        ("pets: &pets\n  - cat\n  - dog\nnames: *pets\n", ["cat", "dog"]),  # an anchor and its alias
        ("names:\n  0: 'traffic light'  # comment\n  1: \"stop: sign\"\n", ["traffic light", "stop: sign"]),
        ("names:\n- cat\n- dog\n", ["cat", "dog"]),  # a block list not indented
        ("names: [1, 2]\n", ["1", "2"]),
        ("names: cat\n", None),
    ],
)
def test_yaml_is_read_as_yaml(tmp_path, text, names):
    (tmp_path / "d.yaml").write_text(text)
    assert read_yaml_names(tmp_path / "d.yaml")[0] == names


def test_yaml_keys_and_bad_yaml(tmp_path):
    (tmp_path / "d.yaml").write_text("path: .\ntrain: 'images/train 2017'\nnc: 2\nval:\nnames: [a, b]\n")
    names, keys = read_yaml_names(tmp_path / "d.yaml")
    assert names == ["a", "b"] and keys == {"path": ".", "train": "images/train 2017", "nc": "2", "val": ""}
    (tmp_path / "bad.yaml").write_text("names: [cat, dog\ntrain: x\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML .*line \d+") as error:
        read_yaml_names(tmp_path / "bad.yaml")
    assert "\n" not in str(error.value)
    (tmp_path / "list.yaml").write_text("- cat\n- dog\n")
    with pytest.raises(ValueError, match=r"list\.yaml: holds a YAML list"):
        read_yaml_names(tmp_path / "list.yaml")


def test_yolo_without_names_uses_ids_and_reports(tmp_path):
    make_yolo(tmp_path, yaml_text="path: .\n")
    data = load_detection(tmp_path)
    assert data.class_names == tuple(str(i) for i in range(8))  # ids up to 7 seen
    assert any("no class names" in p for p in data.problems)


def test_corrupt_image_is_reported_and_skipped(tmp_path):
    make_yolo(tmp_path)
    (tmp_path / "images" / "train" / "broken.jpg").write_bytes(b"not a jpeg")
    data = load_detection(tmp_path)
    assert len(data) == 2
    assert any("broken.jpg" in p for p in data.problems)


# ---------------------------------------------------------------------------------------------- VOC

VOC = """<annotation>
  <filename>{name}</filename>
  <size><width>100</width><height>80</height><depth>3</depth></size>
  <object>
    <name>raccoon</name><difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>21</ymin><xmax>40</xmax><ymax>60</ymax></bndbox>
  </object>
  <object>
    <name>cat</name><difficult>1</difficult>
    <bndbox><xmin>51</xmin><ymin>1</ymin><xmax>120</xmax><ymax>80</ymax></bndbox>
  </object>
</annotation>
"""


def test_voc_boxes_one_based_clipped_and_reported(tmp_path):
    write_image(tmp_path / "images" / "r1.jpg", 100, 80)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "r1.xml").write_text(VOC.format(name="r1.jpg"))
    data = load_detection(tmp_path)
    assert data.class_names == ("cat", "raccoon")
    sample = data.samples[0]
    # 1-based inclusive -> (xmin - 1, ymin - 1, xmax, ymax): (10, 20, 40, 60) and (50, 0, 120 -> 100, 80)
    np.testing.assert_allclose(sample.boxes, [[10, 20, 40, 60], [50, 0, 100, 80]])
    assert sample.class_ids.tolist() == [1, 0]
    assert sample.difficult.tolist() == [False, True]
    xml = tmp_path / "annotations" / "r1.xml"
    # the second <object> (the one outside the image) opens on line 8 of the XML
    assert len(data.problems) == 1 and data.problems[0].startswith(f"{xml}:8: ") and "clipped" in data.problems[0]


def test_voc_jpegimages_layout_and_bad_xml(tmp_path):
    write_image(tmp_path / "JPEGImages" / "x.jpg", 100, 80)
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "x.xml").write_text(VOC.format(name="x.jpg"))
    (tmp_path / "Annotations" / "y.xml").write_text("<annotation><object>")
    data = load_detection(tmp_path)
    assert len(data) == 1 and data.num_boxes == 2
    assert any("y.xml:1: not valid XML" in p for p in data.problems)


def billion_laughs(levels=6):
    """Entities of entities: 10**levels 'lol's from a file of a few hundred bytes (the real attack uses 9)."""
    lines = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{k} "{f"&lol{k - 1};" * 10}">' for k in range(1, levels + 1)]
    body = "\n".join(lines)
    return f'<?xml version="1.0"?>\n<!DOCTYPE annotation [\n{body}\n]>\n<annotation><filename>&lol{levels};</filename></annotation>\n'


def test_voc_refuses_entity_expansion_and_external_entities_by_name(tmp_path):
    write_image(tmp_path / "images" / "ok.jpg", 100, 80)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "ok.xml").write_text(VOC.format(name="ok.jpg"))
    (tmp_path / "annotations" / "laughs.xml").write_text(billion_laughs())
    (tmp_path / "annotations" / "small_laughs.xml").write_text(billion_laughs(4))  # under expat's own limit
    (tmp_path / "annotations" / "xxe.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n'
        "<annotation><filename>&x;</filename></annotation>\n"
    )
    data = load_detection(tmp_path)
    assert len(data) == 1 and data.num_boxes == 2
    laughs = [p for p in data.problems if "laughs.xml" in p]
    assert len(laughs) == 2 and all("refused, the XML declares entity 'lol0'" in p for p in laughs)
    assert all(p.endswith("file skipped") and len(p) < 300 for p in laughs)
    xxe = [p for p in data.problems if "xxe.xml" in p]
    assert len(xxe) == 1 and "external entity 'x' (file:///etc/hostname)" in xxe[0]


# ---------------------------------------------------------------------------------------------- COCO


def test_coco_json_xywh_and_iscrowd(tmp_path):
    write_image(tmp_path / "images" / "1.jpg", 100, 80)
    write_image(tmp_path / "images" / "2.jpg", 60, 60)
    content = {
        "images": [
            {"id": 1, "file_name": "1.jpg"},
            {"id": 2, "file_name": "2.jpg"},
            {"id": 3, "file_name": "gone.jpg"},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 18, "bbox": [10, 20, 30, 40], "iscrowd": 0},  # -> (10, 20, 40, 60)
            {"id": 6, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 80], "iscrowd": 1},  # crowd: skipped
            {
                "id": 7,
                "image_id": 2,
                "category_id": 1,
                "bbox": [50, 50, 20, 5],
                "iscrowd": 0,
            },  # -> (50, 50, 60, 55) clipped
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(content))
    data = load_detection(tmp_path)
    assert data.class_names == ("person", "dog")  # by category id
    assert len(data) == 2
    np.testing.assert_allclose(data.boxes[0], [[10, 20, 40, 60]])
    assert data.class_ids[0].tolist() == [1]
    np.testing.assert_allclose(data.boxes[1], [[50, 50, 60, 55]])
    assert any("1 iscrowd" in p for p in data.problems)
    assert any("gone.jpg" in p for p in data.problems)
    assert any("annotation 7" in p and "clipped" in p for p in data.problems)
    assert len(load_detection(tmp_path / "annotations.json")) == 2


# ---------------------------------------------------------------------------------------------- Penn-Fudan

PENN = """# Compatible with PASCAL Annotation Version 1.00
Image filename : "PennFudanPed/PNGImages/P1.png"
Image size (X x Y x C) : 100 x 80 x 3
# Top left pixel co-ordinates : (1, 1)
Bounding box for object 1 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (11, 21) - (40, 60)
Bounding box for object 2 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (oops)
"""


def test_pennfudan_pairs_by_stem_and_converts_one_based(tmp_path):
    write_image(tmp_path / "images" / "P1.jpg", 100, 80)  # the text says .png
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "P1.txt").write_text(PENN)
    data = load_detection(tmp_path)
    assert data.class_names == ("person",)
    np.testing.assert_allclose(data.boxes[0], [[10, 20, 40, 60]])  # (11-1, 21-1, 40, 60)
    assert len(data.problems) == 1 and data.problems[0].startswith(f"{tmp_path / 'annotations' / 'P1.txt'}:6: ")


def test_unknown_layout_is_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="not a detection layout"):
        load_detection(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        load_detection(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------- data set operations


def sample(name, ids, width=100, height=100):
    boxes = [[10 * k, 10, 10 * k + 20, 40] for k in range(len(ids))]
    return DetectionSample(name, width, height, np.array(boxes, np.float32).reshape(-1, 4), ids)


def test_select_classes_reindexes_and_merge_checks_names():
    data = DetectionData([sample("a.jpg", [0, 2, 1]), sample("b.jpg", [2])], ("cat", "dog", "person"))
    persons = data.select_classes(["person"])
    assert persons.class_names == ("person",)
    assert [ids.tolist() for ids in persons.class_ids] == [[0], [0]]
    np.testing.assert_allclose(persons.boxes[0], [[10, 10, 30, 40]])
    swapped = data.select_classes(["person", "cat"])
    assert swapped.class_ids[0].tolist() == [1, 0]
    pets = data.select_classes({"cat": "pet", "dog": "pet"}, drop_empty=True)
    assert pets.class_names == ("pet",) and len(pets) == 1 and pets.class_ids[0].tolist() == [0, 0]
    merged = persons.merge(DetectionData([sample("c.jpg", [0, 0])], ("person",)))
    assert len(merged) == 3 and merged.num_boxes == 4
    with pytest.raises(ValueError, match="different class names"):
        data.merge(persons)
    with pytest.raises(ValueError, match="unknown class"):
        data.select_classes(["horse"])


def test_split_is_deterministic_and_disjoint():
    data = DetectionData([sample(f"{i}.jpg", [0]) for i in range(10)], ("x",))
    train, held = split_detection(data, 0.3, seed=1)
    again = split_detection(data, 0.3, seed=1)[1]
    assert len(held) == 3 and len(train) == 7
    assert held.paths == again.paths
    assert not set(held.paths) & set(train.paths)
    with pytest.raises(ValueError):
        split_detection(data, 1.5)


# ---------------------------------------------------------------------------------------------- augmentation


def test_hflip_moves_boxes():
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, :10] = 255
    flipped, boxes = hflip(image, [[10, 5, 30, 20]])
    assert flipped[0, -1, 0] == 255 and flipped[0, 0, 0] == 0
    np.testing.assert_allclose(boxes, [[70, 5, 90, 20]])  # x1' = 100 - 30, x2' = 100 - 10


def test_letterbox_round_trip():
    image = np.zeros((60, 200, 3), np.uint8)
    boxed, scale, pad = letterbox(image, 100)
    # scale = min(100/200, 100/60) = 0.5; 200x60 -> 100x30; pad_y = (100 - 30) // 2 = 35
    assert boxed.shape == (100, 100, 3) and scale == 0.5 and pad == (0, 35)
    assert boxed[0, 0, 0] == 114 and boxed[50, 50, 0] == 0
    original = np.array([[20, 10, 120, 50]], np.float32)
    moved = letterbox_boxes(original, scale, pad)
    np.testing.assert_allclose(moved, [[10, 40, 60, 60]])
    np.testing.assert_allclose(unletterbox_boxes(moved, scale, pad), original)


def test_filter_boxes_clips_and_drops_remnants():
    boxes = [[-10, -10, 20, 20], [95, 0, 130, 50], [10, 10, 11, 30]]
    kept, ids, keep = filter_boxes(boxes, [1, 2, 3], 100, 100, min_size=2, original_areas=[900, 1750, 20])
    # box 2 keeps 5x50 = 250 of 1750 (14% >= 10%): kept; box 3 is 1 px wide: dropped
    np.testing.assert_allclose(kept, [[0, 0, 20, 20], [95, 0, 100, 50]])
    assert ids.tolist() == [1, 2] and keep.tolist() == [True, True, False]


def test_mosaic_shape_and_boxes_inside_canvas():
    rng = np.random.default_rng(0)
    images = [np.full((40 + 10 * k, 60, 3), 50 * k, np.uint8) for k in range(4)]
    boxes = [np.array([[5, 5, 55, 35]], np.float32)] * 4
    ids = [np.array([k]) for k in range(4)]
    canvas, out, out_ids = mosaic(images, boxes, ids, 64, rng)
    assert canvas.shape == (64, 64, 3) and canvas.dtype == np.uint8
    assert out.dtype == np.float32 and len(out) == len(out_ids) >= 1
    assert (out >= 0).all() and (out <= 64).all()
    assert ((out[:, 2] - out[:, 0]) >= 2).all() and ((out[:, 3] - out[:, 1]) >= 2).all()


def test_random_affine_and_hsv_keep_shapes():
    rng = np.random.default_rng(0)
    image = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    out, boxes, ids = random_affine(image, [[10, 10, 30, 20]], [3], rng, scale=(1.0, 1.0), translate=0.0)
    np.testing.assert_array_equal(out, image)  # identity map
    np.testing.assert_allclose(boxes, [[10, 10, 30, 20]])
    assert ids.tolist() == [3]
    assert hsv_jitter(image, rng).shape == image.shape


# ---------------------------------------------------------------------------------------------- batches


def test_batches_shapes_padding_and_corrupt_image(tmp_path):
    make_yolo(tmp_path)
    data = load_detection(tmp_path)
    plain = DetectionBatches(data, image_size=64, batch_size=2, workers=1)
    images, targets = plain[0]
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    assert targets.shape == (2, 2, 5)
    # a.jpg 100x80 -> scale 0.64, pad_y = (64 - 51) // 2 = 6: (37.5, 20, 62.5, 60) -> (24, 18.8, 40, 44.4)
    np.testing.assert_allclose(targets[0, 0], [0, 24, 18.8, 40, 44.4], atol=1e-4)
    assert (targets[1, :, 0] == -1).all()  # b.png has no boxes: all padding

    (tmp_path / "images" / "train" / "b.png").write_bytes(b"corrupted after loading")
    augmented = DetectionBatches(data, image_size=64, batch_size=2, augment=True, mosaic=0.5, seed=3, workers=1)
    for index in range(len(augmented)):
        images, targets = augmented[index]
        assert images.shape == (2, 64, 64, 3) and targets.shape == (2, augmented.max_boxes, 5)
        real = targets[..., 0] >= 0
        assert (targets[real][:, 1:] >= 0).all() and (targets[real][:, 1:] <= 64).all()
    assert augmented.errors and "b.png" in augmented.errors[0]


# ---------------------------------------------------------------------------------------------- unreadable images


@pytest.fixture
def read_defaults(monkeypatch):
    from cvapps.core.sources import set_allow_truncated, set_max_pixels

    monkeypatch.delenv("CVAPPS_ALLOW_TRUNCATED", raising=False)
    monkeypatch.delenv("CVAPPS_MAX_PIXELS", raising=False)
    set_allow_truncated(None)
    set_max_pixels(None)
    yield
    set_allow_truncated(None)
    set_max_pixels(None)


def cut_jpeg(path, width=100, height=80):
    """A JPEG missing its last 40% (every viewer shows the top of it)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: int(len(buffer.getvalue()) * 0.6)])
    return path


def test_truncated_jpeg_is_left_out_up_front_named_and_counted(tmp_path, read_defaults):
    from cvapps.core.sources import set_allow_truncated

    make_yolo(tmp_path)
    cut_jpeg(tmp_path / "images" / "train" / "cut.jpg")
    (tmp_path / "labels" / "train" / "cut.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    data = load_detection(tmp_path)
    assert [p.name for p in data.paths] == ["a.jpg", "b.png"]  # batches never meet it
    [named] = [p for p in data.problems if "cut.jpg" in p]
    assert "truncated" in named and "pass --allow-truncated" in named and named.endswith("Image left out.")
    assert data.problems[-1].endswith("1 of 3 images could not be read and were left out (each named above)")
    batches = DetectionBatches(data, image_size=64, batch_size=2, workers=1)
    batches[0]
    assert not batches.errors
    set_allow_truncated(True)
    assert "cut.jpg" in [p.name for p in load_detection(tmp_path).paths]


@pytest.mark.parametrize("layout", ["yolo", "voc", "coco", "pennfudan"])
def test_every_layout_leaves_out_oversized_and_bomb_images(tmp_path, monkeypatch, read_defaults, layout):
    from PIL import Image

    from cvapps.core.sources import set_max_pixels

    images = tmp_path / "images"
    write_image(images / "ok.jpg", 100, 80)
    Image.new("L", (1100, 1000)).save(images / "big.png")  # 1.1 MP over a 1 MP cap, a few KB on disk
    Image.new("L", (2000, 2000)).save(images / "bomb.png")  # over Pillow's own limit set below
    names = ["ok.jpg", "big.png", "bomb.png"]
    if layout == "yolo":
        (tmp_path / "labels").mkdir()
        (tmp_path / "data.yaml").write_text("names: [thing]\n")
    elif layout == "voc":
        (tmp_path / "annotations").mkdir()
        for name in names:
            (tmp_path / "annotations" / f"{Path(name).stem}.xml").write_text(VOC.format(name=name))
    elif layout == "coco":
        content = {
            "images": [{"id": k, "file_name": name} for k, name in enumerate(names)],
            "annotations": [],
            "categories": [{"id": 1, "name": "thing"}],
        }
        (tmp_path / "annotations.json").write_text(json.dumps(content))
    else:
        (tmp_path / "annotations").mkdir()
        for name in names:
            (tmp_path / "annotations" / f"{Path(name).stem}.txt").write_text(f'Image filename : "{name}"\n')
    set_max_pixels(1_000_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_500_000)  # 4 MP > 2 x that: Pillow's DecompressionBombError
    data = load_detection(tmp_path)
    assert [p.name for p in data.paths] == ["ok.jpg"]
    text = "\n".join(data.problems)
    assert (
        "big.png: 1100x1000 is 1.1 megapixels, over the limit of 1 megapixels" in text and "CVAPPS_MAX_PIXELS" in text
    )
    assert "bomb.png: image too large to decode safely" in text
    assert data.problems[-1].endswith("2 of 3 images could not be read and were left out (each named above)")


def test_batches_put_late_failures_into_the_data_problems(tmp_path):
    make_yolo(tmp_path)
    data = load_detection(tmp_path)
    (tmp_path / "images" / "train" / "b.png").write_bytes(b"broken after loading")
    batches = DetectionBatches(data, image_size=64, batch_size=2, workers=1)
    batches[0]
    assert batches.errors and any("b.png" in p and "Replaced by another image" in p for p in data.problems)


def fake_detector(monkeypatch, class_names=("cat", "dog")):
    """evaluate_detector's model and detect() replaced: every image gets the boxes it was labelled with."""
    import types

    import cvapps.detection.evaluate as evaluate
    import cvapps.runtime
    from cvapps.detection.predict import Detections

    model = types.SimpleNamespace(info=types.SimpleNamespace(class_names=class_names, settings={}))
    monkeypatch.setattr(cvapps.runtime, "open_model", lambda *args, **kwargs: model)
    labelled = {}

    def detect(image, model, **options):
        boxes, ids = labelled.get(image.shape[:2], (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
        return [Detections(boxes, np.full(len(ids), 0.9, np.float32), ids, class_names)]

    monkeypatch.setattr(evaluate, "detect", detect)
    return labelled


def test_evaluation_of_a_set_with_a_truncated_jpeg_drops_it_and_scores_the_rest(tmp_path, monkeypatch, read_defaults):
    from cvapps.detection import evaluate_detector

    make_yolo(tmp_path)
    cut_jpeg(tmp_path / "images" / "train" / "cut.jpg", 60, 40)
    (tmp_path / "labels" / "train" / "cut.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    labelled = fake_detector(monkeypatch)
    data = load_detection(tmp_path)
    for sample in data.samples:
        labelled[(sample.height, sample.width)] = (sample.boxes, sample.class_ids)
    metrics = evaluate_detector("fake", data)
    assert metrics["map50"] == 1.0 and metrics["problems"] == []
    (tmp_path / "images" / "train" / "b.png").write_bytes(b"broken after loading")
    metrics = evaluate_detector("fake", data)
    assert metrics["map50"] == 1.0 and len(metrics["problems"]) == 2
    assert "b.png" in metrics["problems"][0] and metrics["problems"][1].startswith("1 of 2 images could not be read")


def test_cli_eval_detect_warns_about_a_truncated_jpeg_and_writes_the_report(tmp_path, monkeypatch, read_defaults):
    from click.testing import CliRunner

    from cvapps.cli import cli

    make_yolo(tmp_path / "d")
    cut_jpeg(tmp_path / "d" / "images" / "train" / "cut.jpg")
    fake_detector(monkeypatch)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["eval", "detect", str(tmp_path / "d"), "--model", "fake", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "cut.jpg" in result.output and "--allow-truncated" in result.output
    assert json.loads(report.read_text())["num_images"] == 2


# ---------------------------------------------------------------------------------------------- real data


def test_real_coco128(real_data):
    data = load_detection(real_data / "coco128")
    # 128 images, 126 with label files (000000000250 and 000000000508 have none), 2 label files
    # without images (000000000656: 3 boxes, 000000000659: 9) -> 941 - 12 = 929 boxes
    assert len(data) == 128 and len(data.class_names) == 80 and data.class_names[0] == "person"
    assert 929 <= data.num_boxes <= 941
    assert sum("without an image" in p for p in data.problems) == 2
    persons = data.select_classes(["person"])
    assert persons.num_boxes == data.class_counts()["person"] > 0


def test_real_raccoon(real_data):
    data = load_detection(real_data / "raccoon")
    assert len(data) == 200 and data.num_boxes == 217 and data.class_names == ("raccoon",)


def test_real_pennfudan_merged_with_coco_persons(real_data):
    penn = load_detection(real_data / "pennfudan")
    assert len(penn) == 170 and penn.num_boxes == 423 and not penn.problems
    people = load_detection(real_data / "coco128").select_classes(["person"]).merge(penn)
    assert len(people) == 298
    images, targets = DetectionBatches(penn, image_size=128, batch_size=2, workers=1)[0]
    assert images.shape == (2, 128, 128, 3) and (targets[..., 0] >= -1).all()
