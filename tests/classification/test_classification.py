import numpy as np
import pytest

from cvapps.classification import Classification, classification_metrics, top_k_results


def test_metrics_on_a_hand_computed_case():
    # 4 images, 3 classes. Truth: 0, 1, 2, 2.
    # argmax per row: 0 (right), 2 (wrong: truth 1), 2 (right), 1 (wrong: truth 2).
    probabilities = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.3, 0.6],
            [0.2, 0.1, 0.7],
            [0.1, 0.5, 0.4],
        ]
    )
    truth = np.array([0, 1, 2, 2])
    metrics = classification_metrics(probabilities, truth, ("a", "b", "c"))
    assert metrics["top1"] == 0.5  # 2 of 4 right
    assert metrics["top5"] == 1.0  # with 3 classes, top-5 covers everything
    # confusion rows = truth, columns = predicted
    assert metrics["confusion"] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    # class c: predicted 2 times (rows 1, 2), right once -> precision 1/2; 2 true c, 1 found -> recall 1/2
    assert metrics["per_class"]["c"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    # class b: predicted once (row 3), wrong -> precision 0; its one image was missed -> recall 0
    assert metrics["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "support": 1}


def test_top_k_results_are_sorted_and_named():
    [result] = top_k_results(np.array([[0.1, 0.6, 0.3]]), ("cat", "dog", "fox"), 2, ["x.jpg"])
    assert result.class_names == ("dog", "fox")
    assert result.class_ids == (1, 2)
    assert result.top() == ("dog", 0.6)
    assert result.to_dict()[0] == {"class_id": 1, "class_name": "dog", "score": 0.6}


def test_classification_validates_its_fields():
    with pytest.raises(ValueError, match="same length"):
        Classification((1, 2), ("a",), (0.5, 0.4))
    with pytest.raises(ValueError, match="descending"):
        Classification((1, 2), ("a", "b"), (0.1, 0.4))


def test_build_classifier_stores_class_names_and_checks_them():
    from cvapps.classification import build_classifier
    from cvapps.models import model_info
    from cvapps.nn.backbone import Backbone

    backbone = Backbone(family="compact", size="xs", image_size=32)
    model = build_classifier(backbone, 3, ["a", "b", "c"])
    assert model.output_shape == (None, 3)
    assert model_info(model).class_names == ("a", "b", "c")
    assert model_info(model).image_size == 32
    with pytest.raises(ValueError, match="num_classes must be an integer of at least 2"):
        build_classifier(backbone, 1)
    with pytest.raises(ValueError, match="2 class_names given for num_classes=3"):
        build_classifier(backbone, 3, ["a", "b"])
    with pytest.raises(ValueError, match="level must be one of"):
        build_classifier(backbone, 3, level="P9")


def test_trained_model_classifies_paths_and_arrays_alike(tiny_classifier, tmp_path):
    from PIL import Image

    from cvapps import classify

    bright = np.full((40, 50, 3), 230, np.uint8)
    dark = np.full((40, 50, 3), 20, np.uint8)
    Image.fromarray(bright).save(tmp_path / "bright.png")
    by_path = classify([tmp_path / "bright.png"], model=tiny_classifier, top_k=2)
    by_array = classify([bright, dark], model=str(tiny_classifier), top_k=1)
    assert by_path[0].class_names[0] == "bright"
    assert by_path[0].source.endswith("bright.png")
    assert [r.class_names[0] for r in by_array] == ["bright", "dark"]
    assert by_path[0].scores[0] == pytest.approx(by_array[0].scores[0], abs=1e-5)


def test_classify_rejects_bad_arguments(tiny_classifier):
    from cvapps import classify

    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        classify(np.zeros((8, 8, 3), np.uint8), model=tiny_classifier, top_k=0)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\) RGB"):
        classify([np.zeros((8, 8), np.uint8)], model=tiny_classifier)


def test_evaluate_matches_classes_by_name_not_order(tiny_classifier):
    from cvapps.classification import evaluate_classifier
    from cvapps.classification.data import ClassificationData
    from cvapps.models import load_model

    model = load_model(tiny_classifier)
    # The data lists classes in the opposite order to the model ("bright", "dark").
    images = np.stack([np.full((32, 32, 3), v, np.uint8) for v in (10, 20, 240, 250)])
    data = ClassificationData(images, np.array([0, 0, 1, 1]), ("dark", "bright"))
    metrics = evaluate_classifier(model, data)
    assert metrics["top1"] == 1.0
    with pytest.raises(ValueError, match=r"class 'zebra' in the data is not among the model's 2 classes"):
        evaluate_classifier(model, ClassificationData(images, np.array([0, 0, 1, 1]), ("dark", "zebra")))


def test_cifar10_model_reaches_its_card_accuracy(real_data):
    """The shipped CIFAR-10 model on the 10,000 CIFAR-10 test images, as its card states."""
    from cvapps.classification import evaluate_classifier
    from cvapps.classification.data import load_classification
    from cvapps.models import load_model, model_card, model_info, shipped_models

    if "cifar10" not in shipped_models():
        pytest.skip("no shipped cifar10 model in models/")
    model = load_model("cifar10")
    data = load_classification(real_data / "cifar10" / "test", model_info(model).image_size, split="test")
    assert len(data) == 10000
    metrics = evaluate_classifier(model, data)
    card = model_card("cifar10")["metrics"]
    assert metrics["top1"] >= card["top1"] - 0.002


@pytest.mark.skipif(__import__("importlib").util.find_spec("jax") is None, reason="JAX is not installed")
def test_training_runs_under_jax_without_tensorflow_and_loads_here(tmp_path):
    """The GPU machine has JAX but no TensorFlow: train there, load the model here."""
    import os
    import subprocess
    import sys

    from cvapps.models import load_model

    x = np.concatenate([np.full((8, 16, 16, 3), 20, np.uint8), np.full((8, 16, 16, 3), 230, np.uint8)])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.repeat([0, 1], 8), x_test=x, y_test=np.repeat([0, 1], 8))
    code = f"""
import sys, importlib.abc
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError("No module named 'tensorflow'")
sys.meta_path.insert(0, NoTensorFlow())
from cvapps.classification import train_classifier
train_classifier({str(tmp_path / "d.npz")!r}, {str(tmp_path / "m.keras")!r}, size="xs", image_size=32, epochs=1,
                 batch_size=8, checkpoint_dir={str(tmp_path / "run")!r}, verbose=0)
import keras; print(keras.backend.backend(), "tensorflow" in sys.modules)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["jax", "False"]
    model = load_model(tmp_path / "m.keras")  # TensorFlow backend here
    assert model.predict_on_batch(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 2)


def test_rerun_skips_finished_phases(tmp_path):
    """A rerun of the same command resumes: finished phases are not trained again."""
    from conftest import make_shapes_dataset

    from cvapps.classification import train_classifier

    data = make_shapes_dataset(tmp_path / "data", per_class=6)
    arguments = dict(
        size="xs",
        image_size=32,
        epochs=1,
        fine_tune_epochs=1,
        fine_tune_from="P5",
        batch_size=4,
        checkpoint_dir=tmp_path / "run",
        verbose=0,
    )
    first = train_classifier(data, tmp_path / "a.keras", **arguments)
    assert (tmp_path / "run" / "main_done.weights.h5").is_file()
    assert (tmp_path / "run" / "fine_tune_done.weights.h5").is_file()
    second = train_classifier(data, tmp_path / "b.keras", **arguments)
    assert second.history == first.history  # read back from the logs, nothing retrained
    assert second.seconds < first.seconds


def test_flip_averaging_is_the_mean_of_both_views(tmp_path):
    from cvapps.classification import build_classifier, with_flip_averaging
    from cvapps.models import load_model, model_info, save_model
    from cvapps.nn.backbone import Backbone
    from cvapps.toolbox.explain import explain

    model = build_classifier(Backbone(family="compact", size="xs", image_size=32), 3, ["a", "b", "c"])
    averaged = with_flip_averaging(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    # p(x) = (f(x) + f(x mirrored)) / 2
    expected = (model.predict_on_batch(x) + model.predict_on_batch(x[:, :, ::-1])) / 2
    np.testing.assert_allclose(averaged.predict_on_batch(x), expected, atol=1e-5)
    save_model(averaged, tmp_path / "tta.keras")
    loaded = load_model(tmp_path / "tta.keras")
    info = model_info(loaded)
    assert info.class_names == ("a", "b", "c") and info.settings["tta"] == "flip"
    np.testing.assert_allclose(loaded.predict_on_batch(x), expected, atol=1e-5)
    report = explain(loaded)  # the shared single-view model runs twice: weights counted once, work twice
    assert report.mismatches == [] and report.total_params == loaded.count_params()
    assert report.total_macs == 2 * explain(model).total_macs
    with pytest.raises(ValueError, match="already averages over flips"):
        with_flip_averaging(loaded)


def test_cifar10_airbench_reaches_its_card_accuracy(real_data):
    """The flip-averaged airbench model on the 10,000 CIFAR-10 test images, as its card states."""
    from cvapps.classification import evaluate_classifier
    from cvapps.classification.data import load_classification
    from cvapps.models import load_model, model_card, model_info

    model = load_model("cifar10_airbench")
    assert model_info(model).settings["tta"] == "flip"
    data = load_classification(real_data / "cifar10" / "test", model_info(model).image_size, split="test")
    metrics = evaluate_classifier(model, data)
    assert metrics["top1"] >= model_card("cifar10_airbench")["metrics"]["top1"] - 0.002
