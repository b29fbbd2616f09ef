"""Face pipeline speed, ours beside a peer, in one run. Prints Markdown tables for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_faces.py [--model faces] [--images 100]

Measures, on this machine's CPU:
1. faces per second for detect (Haar) + align + embed, one photo at a time (the webcam and
   ``cvapps verify`` path), on LFW photos (or the skimage astronaut without CVAPPS_DATA),
   with our embedder and with ``keras.applications.MobileNetV2`` alpha 1.0 (random weights,
   average-pooled, same input size) in its place, same detector and alignment;
2. embedding throughput alone at batch 64 for both (faces already aligned);
3. ``cvapps webcam faces`` FPS, headless, on ``$CVAPPS_DATA/style/videos/fox.mp4`` with an
   empty database. That video shows a fox: it has no human faces, so this is the cost of
   running the detector on every frame, not of embedding (the faces count is printed).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def photos(count):
    folder = Path(os.environ.get("CVAPPS_DATA", "")) / "lfw"
    if folder.is_dir():
        from cvapps.core.sources import read_image

        paths = sorted(folder.glob("*/*.jpg"))[:: max(1, 8800 // count)][:count]
        return [read_image(p) for p in paths], f"{len(paths)} LFW photos (112x112)"
    import skimage.data

    return [skimage.data.astronaut()] * count, f"skimage astronaut (512x512) x {count}"


def pipeline_rate(encoder, images):
    """Faces per second of encoder.encode over images (each photo = one call), after a warm-up."""
    encoder.encode(images[0])
    faces, start = 0, time.perf_counter()
    for image in images:
        faces += len(encoder.encode(image)[0])
    seconds = time.perf_counter() - start
    return faces / seconds, faces, seconds


def embed_rate(predict, size, repeats=5):
    batch = np.random.default_rng(0).uniform(0, 255, (64, size, size, 3)).astype("float32")
    predict(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        predict(batch)
    return 64 * repeats / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="faces")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--video-frames", type=int, default=150)
    args = parser.parse_args()

    from cvapps._keras import import_keras
    from cvapps.faces import FaceEncoder
    from cvapps.nn.layers import Metadata

    keras = import_keras()
    ours = FaceEncoder(args.model, detector="haar", runtime="keras")
    size = ours.image_size
    inputs = keras.Input((size, size, 3))
    trunk = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=1.0, include_top=False, weights=None, pooling="avg"
    )
    features = trunk(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs))
    embedding = keras.layers.UnitNormalization()(keras.layers.Dense(128)(features))
    peer_model = keras.Model(inputs, Metadata(task="faces", settings={"threshold": 1.0})(embedding))
    peer = FaceEncoder(peer_model, detector=ours.detector)
    images, described = photos(args.images)
    cores = os.cpu_count()

    rows = []
    params = ours.model.model.count_params() / 1e6
    encoders = [(f"cvapps {args.model} ({params:.2f} M params), keras", ours)]
    try:
        encoders.append(
            (f"cvapps {args.model}, onnxruntime", FaceEncoder(args.model, detector=ours.detector, runtime="onnx"))
        )
    except ValueError:
        pass  # no .onnx export
    encoders.append(
        (f"keras.applications.MobileNetV2 alpha 1.0 ({peer_model.count_params() / 1e6:.2f} M), keras", peer)
    )
    for label, encoder in encoders:
        rate, faces, _ = pipeline_rate(encoder, images)
        rows.append((label, rate, faces, embed_rate(encoder.model.predict, size)))
    print(
        f"\n### Faces per second, detect (Haar) + align + embed, {described}, {cores} CPU cores, input {size}x{size}\n"
    )
    print(
        "| embedder | faces/s (one photo per call) | faces found | embed only, batch 64 (faces/s) | ratio to ours (pipeline / embed) |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, rate, faces, embed in rows:
        print(
            f"| {label} | {rate:.1f} | {faces} | {embed:.0f} | {rate / rows[0][1]:.2f}x / {embed / rows[0][3]:.2f}x |"
        )

    video = Path(os.environ.get("CVAPPS_DATA", "")) / "style" / "videos" / "fox.mp4"
    if video.is_file():
        import tempfile

        from cvapps.cli.common import WebcamOptions
        from cvapps.cli.faces import FaceModelOptions, run_webcam_faces

        headless = WebcamOptions(str(video), show=False, max_frames=args.video_frames, quiet=True)
        with tempfile.TemporaryDirectory() as folder:
            stats, counts = run_webcam_faces(folder, FaceModelOptions(args.model, "haar"), headless)
        import cv2

        capture = cv2.VideoCapture(str(video))
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        capture.release()
        print(
            f"\n### `cvapps webcam faces --source fox.mp4 --no-show` ({width}x{height}, empty database), {cores} CPU cores\n"
        )
        print("| frames | FPS | faces seen |")
        print("|---:|---:|---:|")
        print(f"| {stats.frames} | {stats.fps:.1f} | {counts['faces']} |")
        print(
            "\nThe video shows a fox, no human face: the FPS is mostly the Haar detector's cost per frame; "
            "any faces seen are false detections."
        )


if __name__ == "__main__":
    main()
