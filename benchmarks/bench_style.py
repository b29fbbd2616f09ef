"""Style-transfer speed in one run. Prints Markdown tables for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_style.py [--style starry_night] [--steps 100]

Measures, on this machine's CPU cores:
1. the fast style net at 256x256 and 512x512, batch 1, with onnxruntime and with Keras's compiled
   ``predict_on_batch``, beside Johnson et al.'s full-size transformation net (32-64-128 channels,
   5 full 3x3 residual blocks, built with our :func:`build_transformer` and random weights) as the peer;
2. ``stylize(photo, method="optimize")`` (Gatys et al., Adam on the pixels) seconds per image at
   256 px (longer side), and seconds per step;
3. ``cvapps webcam style`` FPS headless on ``$CVAPPS_DATA/style/videos/fox.mp4`` (640x640 frames,
   net run at --size 256, result scaled back), each runtime.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import timed  # noqa: E402


def onnx_of(keras_model, folder):
    """Export a bare keras.Model to ONNX in ``folder``; an onnxruntime predict function."""
    import warnings

    import onnxruntime

    path = Path(folder) / f"{keras_model.name}.onnx"
    keras_model.predict_on_batch(np.zeros((1, 32, 32, 3), np.float32))  # export needs a built call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        keras_model.export(str(path), format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="starry_night", help="Shipped style (or .keras) to time.")
    parser.add_argument("--steps", type=int, default=100, help="Optimisation steps per image.")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from cvapps._keras import import_keras

    import_keras()
    from cvapps.runtime import open_model
    from cvapps.style import build_transformer

    cores = os.cpu_count()
    ours_keras = open_model(args.style, task="style", runtime="keras")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        nets = [(f"cvapps {args.style} ({ours_keras.model.count_params() / 1e3:.0f} k params)", ours_keras.model)]
        peer = build_transformer(width=32, residual_blocks=5, separable=False, name="johnson_full")
        nets.append((f"Johnson et al. full net ({peer.count_params() / 1e3:.0f} k params, random)", peer))
        for label, model in nets:
            onnx = onnx_of(model, folder)
            for size in (256, 512):
                batch = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
                repeats = args.repeats if size == 256 else max(5, args.repeats // 3)
                rows.append((label, "onnxruntime", size, 1 / timed(lambda b=batch, f=onnx: f(b), repeats)))
                rows.append((label, "keras", size, 1 / timed(lambda b=batch, m=model: m.predict_on_batch(b), repeats)))
    reference = {size: fps for label, runtime, size, fps in rows if label.startswith("cvapps") and runtime == "keras"}
    print(f"\n### Fast style net, batch 1, {cores} CPU cores\n")
    print("| net | runtime | input | FPS | FPS / cvapps keras |")
    print("|---|---|---:|---:|---:|")
    for label, runtime, size, fps in rows:
        print(f"| {label} | {runtime} | {size}x{size} | {fps:.1f} | {fps / reference[size]:.2f}x |")

    data = os.environ.get("CVAPPS_DATA")
    if not data:
        print("\nCVAPPS_DATA not set: skipping the optimisation and webcam measurements.")
        return
    from cvapps.style import StyleRunner, stylize

    photo = Path(data, "style", "photos", "tubingen.jpg")
    painting = Path(data, "style", "paintings", "starry_night.jpg")
    runner = StyleRunner(str(painting), "optimize", steps=args.steps)
    stylize(photo, runner, size=64)  # builds and compiles once
    started = time.perf_counter()
    [result] = stylize(photo, runner, size=256)
    seconds = time.perf_counter() - started
    print(f"\n### `stylize(photo, style=painting)` (Gatys et al., {runner.network.name} loss network), {cores} cores\n")
    print("| image | steps | seconds per image | ms per step |")
    print("|---|---:|---:|---:|")
    h, w = result.image.shape[:2]
    print(f"| {w}x{h} | {args.steps} | {seconds:.1f} | {seconds / args.steps * 1000:.0f} |")

    from cvapps.cli.common import WebcamOptions
    from cvapps.cli.style import StyleChoice, run_webcam_style

    video = Path(data, "style", "videos", "fox.mp4")
    print(f"\n### `cvapps webcam style --style {args.style} --size 256` on {video.name}, headless, {cores} cores\n")
    print("| runtime | frames | FPS |")
    print("|---|---:|---:|")
    for runtime in ("onnx", "keras"):
        if runtime == "onnx" and open_model(args.style, runtime="auto").runtime != "onnx":
            print("| onnx | - | no matching .onnx (run cvapps export) |")
            continue
        headless = WebcamOptions(str(video), show=False, max_frames=120, quiet=True)
        stats = run_webcam_style(StyleChoice(args.style, "fast", size=256), headless, runtime=runtime)
        print(f"| {runtime} | {stats.frames} | {stats.fps:.1f} |")


if __name__ == "__main__":
    main()
