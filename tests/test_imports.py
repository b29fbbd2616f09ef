"""What importing and predicting costs: no TensorFlow on the light paths."""

import subprocess
import sys

import numpy as np
import pytest


@pytest.mark.parametrize(
    "module",
    [
        "cvapps.classification",
        "cvapps.detection",
        "cvapps.segmentation",
        "cvapps.faces",
        "cvapps.style",
        "cvapps.toolbox",
        "cvapps.core",
        "cvapps.nn",
        "cvapps.toolbox.explain",
        "cvapps.toolbox.visualise",
        "cvapps.core.kernels",
        "cvapps.cli",
        "cvapps.classification.imagenet",
        "cvapps.nn.efficientnet_lite",
        "cvapps.core.torch_weights",
    ],
)
def test_importing_an_app_module_does_not_import_tensorflow(module):
    code = (
        f"import sys, {module}; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
        "assert not bad, bad[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _run_cli_without_tensorflow(args):
    code = (
        "import sys; from click.testing import CliRunner; from cvapps.cli import cli; "
        f"r = CliRunner().invoke(cli, {args!r}); assert r.exit_code == 0, r.output; print(r.output); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_segment_and_classify_through_onnx_import_no_tensorflow(tmp_path, imagenet_cache):
    from PIL import Image

    from cvapps.models import shipped_models

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(photo)
    if "person_seg" in shipped_models():
        _run_cli_without_tensorflow(["segment", str(photo), "--runtime", "onnx", "--quiet"])
    out = _run_cli_without_tensorflow(["classify", str(photo), "--quiet"])  # the default imagenet model, cached
    assert str(photo) in out


def test_every_package_is_installed_by_pyproject():
    """setuptools lists the packages by hand (models/ installs as cvapps._models); a new one must be listed."""
    import pathlib

    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "cvapps").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


def test_no_package_exports_a_name_equal_to_one_of_its_submodules():
    """Once cvapps.style.predict is imported, cvapps.style.predict is that module; an exported function of the
    same name would be shadowed. The lazy tables and the submodule names must not overlap."""
    import importlib
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "cvapps"
    for init in root.rglob("__init__.py"):
        package = ".".join(init.parent.relative_to(root.parent).parts)
        table = getattr(importlib.import_module(package), "_EXPORTS", {})
        submodules = {p.stem for p in init.parent.glob("*.py")} | {p.name for p in init.parent.iterdir() if p.is_dir()}
        assert not set(table) & submodules, (package, set(table) & submodules)
