"""Greedy NMS speed: cvapps.core.boxes.nms beside tf.image.non_max_suppression and cv2.dnn.NMSBoxes.

    python benchmarks/bench_nms.py [--sizes 1000 10000 50000] [--repeats 7] [--image-side 640]

Boxes look like detector output before NMS: 80 % are jittered copies around objects (about 20 per
object: centre noise 10 % of the object size, size noise 15 %, score = object confidence x
U(0.5, 1)), 20 % are uniform false positives (8 to 300 px, score U(0.01, 0.4)). By default the
image side grows with sqrt(boxes) from 640 px at 1,000 boxes, so object density stays that of a
busy 640 px photo (40 objects); ``--image-side 640`` packs every size into one 640 px image.

Every tool gets its own input format built before timing (TensorFlow [y1, x1, y2, x2] tensors,
OpenCV [x, y, w, h] lists) and the same settings: IoU threshold 0.45, no score threshold (OpenCV
needs one >= 0: 0.0, and every score is > 0). Calls are interleaved round-robin so background load
hits all three alike; the table gives medians. Before timing, the kept indices are compared:
ours must equal TensorFlow's exactly (same order); OpenCV's are compared as a set.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

IOU_THRESHOLD = 0.45


def detector_like_boxes(count, seed=0, image_side=None):
    """(count, 4) float32 xyxy boxes and (count,) float32 scores in (0, 1], see the module docstring."""
    rng = np.random.default_rng(seed)
    side = image_side or 640 * np.sqrt(count / 1000)
    noise = count // 5
    jittered = count - noise
    objects = max(1, jittered // 20)
    object_size = np.exp(rng.uniform(np.log(16), np.log(200), (objects, 2)))
    object_centre = rng.uniform(0, side, (objects, 2))
    confidence = rng.uniform(0.3, 1.0, objects)
    owner = rng.integers(0, objects, jittered)
    jitter_size = object_size[owner] * np.exp(rng.normal(0, 0.15, (jittered, 2)))
    jitter_centre = object_centre[owner] + rng.normal(0, 0.1, (jittered, 2)) * object_size[owner]
    size = np.concatenate([jitter_size, np.exp(rng.uniform(np.log(8), np.log(300), (noise, 2)))])
    centre = np.concatenate([jitter_centre, rng.uniform(0, side, (noise, 2))])
    scores = np.concatenate([confidence[owner] * rng.uniform(0.5, 1.0, jittered), rng.uniform(0.01, 0.4, noise)])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    shuffle = rng.permutation(count)
    return boxes[shuffle].astype(np.float32), scores[shuffle].astype(np.float32)


def contenders(boxes, scores):
    """name -> zero-argument callable returning kept indices, each with its input prepared."""
    import cv2
    import tensorflow as tf

    from cvapps.core.boxes import nms

    yxyx, tf_scores = tf.constant(boxes[:, [1, 0, 3, 2]]), tf.constant(scores)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64).tolist()
    score_list = scores.tolist()
    return {
        "cvapps.core.boxes.nms": lambda: nms(boxes, scores, IOU_THRESHOLD),
        "tf.image.non_max_suppression": lambda: tf.image.non_max_suppression(
            yxyx, tf_scores, len(boxes), IOU_THRESHOLD
        ).numpy(),
        "cv2.dnn.NMSBoxes": lambda: np.asarray(cv2.dnn.NMSBoxes(xywh, score_list, 0.0, IOU_THRESHOLD)).reshape(-1),
    }


def interleaved_medians(functions, repeats, warmup=1):
    """Median seconds per function, timing them in turn so load changes hit all of them."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed calls per tool and size (3 at 50,000 boxes and up)"
    )
    parser.add_argument(
        "--image-side", type=float, default=None, help="fixed image side in pixels (default 640 * sqrt(boxes / 1000))"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import cv2
    import tensorflow as tf

    rows = []
    for count in args.sizes:
        boxes, scores = detector_like_boxes(count, args.seed, args.image_side)
        functions = contenders(boxes, scores)
        ours, theirs, opencv = (function() for function in functions.values())
        if not np.array_equal(ours, theirs):
            raise SystemExit(f"{count} boxes: cvapps kept {len(ours)}, TensorFlow {len(theirs)}; they must be equal.")
        opencv_agrees = set(opencv.tolist()) == set(ours.tolist())
        medians = interleaved_medians(functions, args.repeats if count < 50000 else min(args.repeats, 3))
        rows.append((count, len(ours), opencv_agrees, medians))

    names = list(rows[0][3])
    side = f"{args.image_side:g} px image" if args.image_side else "image side 640 * sqrt(boxes / 1000) px"
    print(f"\n### Greedy NMS, IoU > {IOU_THRESHOLD}, no score threshold, detector-like boxes ({side})\n")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; "
        f"NumPy {np.__version__}, TensorFlow {tf.__version__}, OpenCV {cv2.__version__}. Median of interleaved calls.\n"
    )
    print(
        "| boxes | kept | "
        + " | ".join(f"{name} (ms)" for name in names)
        + " | TF / ours | OpenCV / ours | faster peer / ours |"
    )
    print("|---:|---:|" + "---:|" * (len(names) + 3))
    for count, kept, opencv_agrees, medians in rows:
        ours, tf_time, cv_time = (medians[name] for name in names)
        cells = " | ".join(f"{medians[name] * 1000:.2f}" for name in names)
        mark = "" if opencv_agrees else " (OpenCV kept a different set)"
        ratios = f"{tf_time / ours:.2f}x | {cv_time / ours:.2f}x | {min(tf_time, cv_time) / ours:.2f}x"
        print(f"| {count:,} | {kept:,}{mark} | {cells} | {ratios} |")
    print("\nA ratio above 1 means cvapps is faster. Kept indices: cvapps equals TensorFlow exactly at every size.")


if __name__ == "__main__":
    main()
