"""Segmentation speed, ours beside peers, in one run. Prints Markdown tables for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_segment.py [--repeats 10]

Measures, on this machine:
1. batch-1 latency at 256x256 and 512x512 of the shipped U-Nets (Keras ``predict_on_batch``, and
   onnxruntime where a ``.onnx`` exists) beside two peers built here with random weights:
   the keras.io "Image segmentation with a U-Net-like architecture" model (Xception-style
   separable convolutions and residual blocks, rebuilt from the example's code) and a classic
   32-filter U-Net (Ronneberger et al., 4 poolings, same padding);
2. the webcam loop's FPS on ``$CVAPPS_DATA/style/videos/fox.mp4`` (headless, every frame), with
   background blur by the shipped person model, per runtime.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import timed  # noqa: E402


def keras_io_unet(keras, num_classes=2):
    """The keras.io U-Net-like example (F. Chollet, oxford_pets_image_segmentation), any input size."""
    layers = keras.layers
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for filters in [64, 128, 256]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    for filters in [256, 128, 64, 32]:
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.UpSampling2D(2)(x)
        residual = layers.UpSampling2D(2)(previous)
        residual = layers.Conv2D(filters, 1, padding="same")(residual)
        x = layers.add([x, residual])
        previous = x
    outputs = layers.Conv2D(num_classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs, name="keras_io_unet")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()

    from cvapps._keras import import_keras
    from cvapps.models import shipped_models
    from cvapps.runtime import open_model
    from cvapps.segmentation import build_unet

    keras = import_keras()
    cores = os.cpu_count()
    candidates = []
    for name, path in shipped_models().items():
        opened = open_model(path, runtime="keras")
        if opened.info.task != "segment":
            continue
        params = opened.model.count_params() / 1e6
        candidates.append((f"cvapps {name} ({params:.2f} M params)", "keras", opened.predict))
        if path.with_suffix(".onnx").is_file():
            candidates.append(
                (f"cvapps {name} ({params:.2f} M params)", "onnxruntime", open_model(path, runtime="onnx").predict)
            )
    peer = keras_io_unet(keras)
    candidates.append(
        (f"keras.io U-Net-like, Xception-style ({peer.count_params() / 1e6:.2f} M)", "keras", peer.predict_on_batch)
    )
    classic = build_unet(2, family="unet", filters=32, depth=4)
    candidates.append(
        (f"classic U-Net, 32 filters ({classic.count_params() / 1e6:.2f} M)", "keras", classic.predict_on_batch)
    )

    rows = []
    for label, runtime, predict in candidates:
        latencies = []
        for size in (256, 512):
            image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
            latencies.append(timed(lambda predict=predict, image=image: predict(image), args.repeats, warmup=2) * 1000)
        rows.append((label, runtime, *latencies))
    reference = next((r for r in rows if r[1] == "keras" and r[0].startswith("keras.io")), None)
    print(f"\n### U-Net latency, batch 1, {cores} CPU cores\n")
    print("| model | runtime | 256x256 (ms) | 512x512 (ms) | speed vs keras.io U-Net-like at 256 |")
    print("|---|---|---:|---:|---:|")
    for label, runtime, small, large in rows:
        print(f"| {label} | {runtime} | {small:.1f} | {large:.1f} | {reference[2] / small:.2f}x |")

    data = os.environ.get("CVAPPS_DATA")
    video = os.path.join(data, "style", "videos", "fox.mp4") if data else None
    person = next((n for n in ("person_seg",) if n in shipped_models()), None)
    if not video or not os.path.isfile(video) or person is None:
        print("\n(webcam FPS skipped: set CVAPPS_DATA and ship person_seg)")
        return
    from cvapps.core.webcam import run_loop
    from cvapps.segmentation import blur_background, segment

    print(f"\n### `cvapps webcam segment --model {person} --blur` on fox.mp4, headless, {args.frames} frames\n")
    print("| runtime | FPS |")
    print("|---|---:|")
    for runtime in ("onnx", "keras"):
        path = shipped_models()[person]
        if runtime == "onnx" and not path.with_suffix(".onnx").is_file():
            continue
        model = open_model(path, runtime=runtime)

        def process(image, model=model):
            [result] = segment(image, model)
            return blur_background(image, result)

        stats = run_loop(video, process, show=False, max_frames=args.frames, realtime=False)
        print(f"| {runtime} | {stats.fps:.1f} |")


if __name__ == "__main__":
    main()
