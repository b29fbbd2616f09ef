"""The light install (``pip install cvapps``, no extras): every predict path runs without Keras and
TensorFlow, and a command that needs them says which extra to install.

The tests run the CLI in a subprocess whose imports of keras, tensorflow, tf2onnx and jax fail as they
do where those packages are not installed (a ``sys.meta_path`` finder raising ``ModuleNotFoundError``).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

BLOCK = """
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("keras", "tensorflow", "tf2onnx", "jax"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NotInstalled())
"""


def _run_light(runs):
    """Run each argument list through the CLI in one light process; [(exit code, output)] per run."""
    code = BLOCK + (
        "import json; from click.testing import CliRunner; from cvapps.cli import cli\n"
        f"out = [(r.exit_code, r.output) for r in (CliRunner().invoke(cli, a) for a in {runs!r})]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_predict_paths_run_without_keras_or_tensorflow(tmp_path):
    from PIL import Image

    from cvapps.models import shipped_models

    needed = {"person", "person_seg", "wave", "faces", "cifar10"}
    if not needed <= set(shipped_models()):
        pytest.skip(f"needs the shipped models {sorted(needed)}")
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(photo)
    import skimage.data

    face = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).resize((256, 256)).save(face)
    runs = [
        ["detect", str(photo), "--quiet"],
        ["segment", str(photo), "--quiet"],
        ["classify", str(photo), "--model", "cifar10", "--quiet"],
        ["stylize", str(photo), "--style", "wave", "--output", str(tmp_path / "styled.jpg"), "--quiet"],
        ["verify", str(face), str(face)],
    ]
    for args, (code, output) in zip(runs, _run_light(runs)):
        assert code == 0, (args, output)
    assert (tmp_path / "styled.jpg").is_file()


def test_a_command_that_needs_keras_names_the_train_extra(tmp_path):
    runs = [["explain", "mnist"], ["train", "classify", str(tmp_path), "--output", str(tmp_path / "m.keras")]]
    for args, (code, output) in zip(runs, _run_light(runs)):
        assert code == 2, (args, output)
        assert f"'cvapps {args[0]}" in output or "needs" in output
        assert "pip install 'cvapps[train]'" in output, output
        assert "Traceback" not in output
