"""Detection speed, ours beside peers, in one run. Prints Markdown tables for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_detect.py [--peer-python /work/peers/bin/python]

Measures, on this machine, at 320x320 and 640x640 input, batch 1, median of repeated runs:
1. our detector (MobileNetV2 0.35 backbone, FPN+PAN neck, YOLO head; the shipped ``person``
   architecture, random weights at 640): the network alone with Keras's compiled
   ``predict_on_batch`` and with onnxruntime, and ``detect()`` end to end (letterbox, network,
   decoding, NMS) on a real photo;
2. KerasCV's ``YOLOV8Detector`` with the ``yolo_v8_xs`` backbone configuration (random weights),
   the network alone through ``predict_on_batch`` (KerasHub 0.32 has no YOLOv8; KerasCV's own
   ``predict`` decoding fails on Keras 3.15, so only the network is timed);
3. Ultralytics YOLOv8n built from its yaml (random weights), when ``--peer-python`` names a
   Python that has ``ultralytics`` (kept out of our environment: it needs PyTorch): the PyTorch
   network alone, and ``model.predict`` end to end;
4. the webcam loop's FPS over the shared video with the shipped person detector, headless;
5. ``--coco``: the 80-class ``coco`` architecture (EfficientNet-Lite0 + FPN/PAN, 96 channels; the
   shipped weights at their size, random weights at the other: speed does not depend on them) at
   320 and 416 through Keras and onnxruntime, beside the teacher ONNX files (YOLOX-Nano 416,
   NanoDet-m 320 and 416) and Ultralytics YOLOv8n from its yaml exported to ONNX at the same sizes,
   all through onnxruntime with 2 threads, batch 1 (needs ``--peer-python`` for YOLOv8n).

Peers are optional: a missing one is reported as such, not faked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import timed  # noqa: E402

SIZES = (320, 640)


def pixels(size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype("float32")


def ours(size, folder, photo):
    """{"keras", "onnx", "detect"} milliseconds of our detector at ``size``."""
    from cvapps.detection import build_detector, detect
    from cvapps.export import export_model
    from cvapps.models import load_model, model_info, save_model
    from cvapps.nn.backbone import build_backbone
    from cvapps.runtime import open_model

    shipped = load_model("person", task="detect")
    info = model_info(shipped)
    if size == info.image_size:
        path = Path(shipped_path("person"))
    else:  # the same architecture at another input size, random weights
        backbone = build_backbone("mobilenetv2", alpha=0.35, image_size=size)
        model = build_detector(backbone, 1, info.settings["anchors"], ["person"], width=64)
        path = Path(folder) / f"person_{size}.keras"
        save_model(model, path)
        export_model(path, format="onnx", tolerance=1e-3)
    keras_model = open_model(path, runtime="keras")
    onnx_model = open_model(path, runtime="onnx")
    x = pixels(size)
    return {
        "keras": timed(lambda: keras_model.predict(x)) * 1000,
        "onnx": timed(lambda: onnx_model.predict(x)) * 1000,
        "detect": timed(lambda: detect(photo, onnx_model)) * 1000,
    }


def shipped_path(name):
    from cvapps.models import resolve_model_path

    return resolve_model_path(name)


def keras_cv_yolov8(size):
    """Milliseconds of KerasCV's YOLOv8 (xs backbone config) network, or None if unavailable."""
    try:
        import keras
        import keras_cv
    except ImportError as error:
        return None, f"keras_cv not importable ({error})"
    backbone = keras_cv.models.YOLOV8Backbone(
        stackwise_channels=[32, 64, 128, 256], stackwise_depth=[1, 2, 2, 1], include_rescaling=True, activation="swish"
    )
    detector = keras_cv.models.YOLOV8Detector(num_classes=1, bounding_box_format="xyxy", backbone=backbone, fpn_depth=1)
    network = keras.Model(detector.inputs, detector.outputs)  # the raw boxes/classes heads
    x = pixels(size)
    return timed(lambda: network.predict_on_batch(x)) * 1000, f"{detector.count_params() / 1e6:.2f} M parameters"


ULTRALYTICS = r"""
import json, sys, time
import numpy as np, torch
from ultralytics import YOLO
torch.set_num_threads(2)
model = YOLO("yolov8n.yaml")  # built from its yaml: random weights, nothing downloaded
net = model.model.eval()
photo = sys.argv[1]
def timed(function, repeats=20, warmup=3):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); function(); times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000
out = {"parameters": sum(p.numel() for p in net.parameters())}
for size in (320, 640):
    x = torch.rand(1, 3, size, size)
    with torch.inference_mode():
        out[f"net_{size}"] = timed(lambda: net(x))
    out[f"predict_{size}"] = timed(lambda: model.predict(photo, imgsz=size, verbose=False))
print(json.dumps(out))
"""


def ultralytics_peer(python, photo):
    """The Ultralytics figures from another Python, or (None, reason)."""
    if not python:
        return None, "not measured (pass --peer-python with ultralytics installed)"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
    result = subprocess.run(
        [python, "-c", ULTRALYTICS, str(photo)], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode:
        return None, f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}"
    return json.loads(result.stdout.strip().splitlines()[-1]), ""


COCO_SIZES = (320, 416)

ULTRALYTICS_ONNX = r"""
import json, os, sys, time
import numpy as np, onnxruntime
from ultralytics import YOLO
folder = sys.argv[1]
out = {}
for size in (320, 416):
    model = YOLO("yolov8n.yaml")  # random weights, nothing downloaded
    path = model.export(format="onnx", imgsz=size, simplify=False, dynamic=False, verbose=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, size, size)).astype("float32")
    for _ in range(3):
        session.run(None, {name: x})
    times = []
    for _ in range(30):
        start = time.perf_counter(); session.run(None, {name: x}); times.append(time.perf_counter() - start)
    out[f"onnx_{size}"] = float(np.median(times)) * 1000
    os.remove(path)
print(json.dumps(out))
"""


def onnx_session_ms(path, size, channels_first=True, repeats=30):
    """Median milliseconds of one batch-1 run of an ONNX file through onnxruntime with 2 threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = (1, 3, size, size) if channels_first else (1, size, size, 3)
    x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    return timed(lambda: session.run(None, {name: x}), repeats=repeats) * 1000


def coco_ours(size, folder):
    """{"keras", "onnx", "params"} of the coco architecture at ``size`` (milliseconds, batch 1)."""
    from cvapps.core.data import COCO_NAMES
    from cvapps.detection import build_detector
    from cvapps.export import export_model
    from cvapps.models import load_model, model_info, resolve_model_path, save_model, shipped_models
    from cvapps.nn.backbone import build_backbone
    from cvapps.runtime import open_model

    shipped = "coco" in shipped_models()
    info = model_info(load_model("coco", task="detect")) if shipped else None
    if info is not None and info.image_size == size:
        path = Path(resolve_model_path("coco"))
    else:  # the same architecture at another size, random weights
        anchors = (
            info.settings["anchors"]
            if info
            else [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]]
        )
        anchors = (np.asarray(anchors, np.float32) * (size / (info.image_size if info else 640))).tolist()
        backbone = build_backbone("efficientnet_lite0", image_size=size)
        model = build_detector(backbone, 80, anchors, list(COCO_NAMES), width=96)
        path = Path(folder) / f"coco_{size}.keras"
        save_model(model, path)
        export_model(path, format="onnx", tolerance=1e-3)
    keras_model = open_model(path, runtime="keras")
    x = pixels(size)
    return {
        "keras": timed(lambda: keras_model.predict(x)) * 1000,
        "onnx": onnx_session_ms(path.with_suffix(".onnx"), size, channels_first=False),
        "params": keras_model.model.count_params() if hasattr(keras_model, "model") else None,
        "weights": "shipped" if info is not None and info.image_size == size else "random",
    }


def coco_table(data, peer_python):
    """The --coco table: ours and the teachers and YOLOv8n through onnxruntime, 2 threads, batch 1."""
    teachers = data / "teachers"
    files = {
        "YOLOX-Nano (teacher)": {416: teachers / "yolox_nano" / "yolox_nano_416.onnx"},
        "NanoDet-m": {
            320: teachers / "nanodet_m" / "nanodet_m_320.onnx",
            416: teachers / "nanodet_m" / "nanodet_m_416.onnx",
        },
    }
    ultra, note = None, "not measured (pass --peer-python with ultralytics and onnxruntime installed)"
    if peer_python:
        env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run(
                [peer_python, "-c", ULTRALYTICS_ONNX, folder],
                capture_output=True,
                text=True,
                env=env,
                cwd=folder,
                check=False,
            )
        if done.returncode == 0:
            ultra = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            note = f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in COCO_SIZES:
            rows[size] = coco_ours(size, folder)
    print(
        "\n| input | ours coco keras (net) | ours coco onnx (net) | YOLOX-Nano onnx | NanoDet-m onnx | "
        "Ultralytics YOLOv8n onnx | YOLOv8n / ours (onnx) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in COCO_SIZES:
        mine = rows[size]
        cells = []
        for name in files:
            path = files[name].get(size)
            cells.append(f"{onnx_session_ms(path, size):.1f} ms" if path and path.is_file() else "n/a")
        u = ultra.get(f"onnx_{size}") if ultra else None
        ratio = f"{u / mine['onnx']:.2f}x" if u else "n/a"
        print(
            f"| {size} ({mine['weights']} weights) | {mine['keras']:.1f} ms | {mine['onnx']:.1f} ms | "
            + " | ".join(cells)
            + (f" | {u:.1f} ms" if u else " | n/a")
            + f" | {ratio} |"
        )
    if not ultra:
        print(f"Ultralytics YOLOv8n: {note}")


def webcam_fps(video, frames=150):
    from cvapps.core.annotate import draw_detections
    from cvapps.core.webcam import run_loop
    from cvapps.detection import detect
    from cvapps.runtime import open_model

    out = {}
    for runtime in ("onnx", "keras"):
        model = open_model("person", task="detect", runtime=runtime)

        def process(image, model=model):
            return draw_detections(image, detect(image, model)[0])

        stats = run_loop(str(video), process, show=False, max_frames=frames, realtime=False)
        out[runtime] = stats.fps
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", help="A Python with ultralytics installed (e.g. /work/peers/bin/python).")
    parser.add_argument("--coco", action="store_true", help="Only the coco detector's table (item 5).")
    args = parser.parse_args()
    data = Path(os.environ.get("CVAPPS_DATA", "../shared/data"))
    if args.coco:
        coco_table(data, args.peer_python)
        return
    photo = data / "pennfudan" / "images" / min(os.listdir(data / "pennfudan" / "images"))
    video = data / "style" / "videos" / "fox.mp4"

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in SIZES:
            mine = ours(size, folder, photo)
            peer, note = keras_cv_yolov8(size)
            rows.append((size, mine, peer, note))
    ultra, ultra_note = ultralytics_peer(args.peer_python, photo)

    print(
        "\n| input | ours keras (net) | ours onnx (net) | ours detect() end to end | KerasCV YOLOv8-xs keras (net) | "
        "Ultralytics YOLOv8n torch (net) | Ultralytics predict() end to end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size, mine, peer, _ in rows:
        u_net = f"{ultra[f'net_{size}']:.1f} ms" if ultra else "n/a"
        u_pred = f"{ultra[f'predict_{size}']:.1f} ms" if ultra else "n/a"
        print(
            f"| {size} | {mine['keras']:.1f} ms | {mine['onnx']:.1f} ms | {mine['detect']:.1f} ms | "
            + (f"{peer:.1f} ms" if peer else "n/a")
            + f" | {u_net} | {u_pred} |"
        )
    print("\nRatios (peer time / our time; above 1 means we are faster):")
    for size, mine, peer, _ in rows:
        parts = []
        if peer:
            parts.append(
                f"KerasCV YOLOv8-xs keras / ours keras {peer / mine['keras']:.2f}x, / ours onnx {peer / mine['onnx']:.2f}x"
            )
        if ultra:
            parts.append(
                f"Ultralytics net / ours onnx {ultra[f'net_{size}'] / mine['onnx']:.2f}x, "
                f"Ultralytics predict / ours detect {ultra[f'predict_{size}'] / mine['detect']:.2f}x"
            )
        print(f"- {size}: " + "; ".join(parts))
    from cvapps.models import load_model

    print(
        f"\nParameters: ours {load_model('person').count_params() / 1e6:.2f} M; KerasCV: {rows[0][3]}; Ultralytics: "
        + (f"{ultra['parameters'] / 1e6:.2f} M parameters" if ultra else ultra_note)
    )
    fps = webcam_fps(video)
    print(
        f"Webcam loop over {video.name} with the person detector: onnx {fps['onnx']:.1f} FPS, keras {fps['keras']:.1f} FPS"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
