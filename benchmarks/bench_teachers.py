"""How good the detection teachers of ``cvapps label detect`` are on photos with real labels: each teacher
(and any cvapps detector) is scored by the project's own evaluator (COCO-style mAP, and precision and
recall at the labelling threshold) against coco128's own boxes. Prints a Markdown table for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_teachers.py [--threshold 0.4] [TEACHER ...]

Default teachers: ``$CVAPPS_DATA/teachers/yolox_nano/yolox_nano_416.onnx`` and
``$CVAPPS_DATA/teachers/nanodet_m/nanodet_m_416.onnx``. Timing is the teacher alone, per photo.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="*")
    parser.add_argument("--threshold", type=float, default=0.4, help="The labelling confidence threshold.")
    args = parser.parse_args()
    data = Path(os.environ.get("CVAPPS_DATA", "../shared/data"))
    teachers = args.teachers or [
        str(data / "teachers" / "yolox_nano" / "yolox_nano_416.onnx"),
        str(data / "teachers" / "nanodet_m" / "nanodet_m_416.onnx"),
    ]
    from cvapps.core.sources import read_image
    from cvapps.detection.evaluate import mean_average_precision
    from cvapps.detection.formats import load_detection_sets
    from cvapps.detection.label import open_teacher

    truth = load_detection_sets([data / "coco128"])
    images = [read_image(s.path) for s in truth.samples]
    print(f"\n### Teachers on coco128 ({len(images)} photos, {truth.num_boxes} boxes, its own labels)\n")
    print(
        f"| teacher | mAP@0.5 | mAP@0.5:0.95 | precision @ {args.threshold} | recall @ {args.threshold} | ms per photo |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for path in teachers:
        teacher = open_teacher(path)
        if tuple(teacher.class_names) != tuple(truth.class_names):
            print(f"| {teacher.name} | classes differ from coco128's: skipped | | | | |")
            continue
        started = time.perf_counter()
        found = [teacher(image, 0.001, 0.45) for image in images]  # mAP wants every box
        milliseconds = (time.perf_counter() - started) * 1000 / len(images)
        truths = [(s.boxes, s.class_ids) for s in truth.samples]
        metrics = mean_average_precision(found, truths, len(truth.class_names), confidence_threshold=args.threshold)
        rows = [c for c in metrics["per_class"] if c["num_true"]]
        true = sum(c["num_true"] for c in rows)
        recall = sum(c["recall"] * c["num_true"] for c in rows) / true  # box-weighted over classes
        kept = [f[f.confidence >= args.threshold] for f in found]
        correct = recall * true
        precision = correct / max(1, sum(len(k) for k in kept))
        print(
            f"| {teacher.name} ({teacher.layout}) | {metrics['map50']:.4f} | {metrics['map50_95']:.4f} | "
            f"{precision:.3f} | {recall:.3f} | {milliseconds:.1f} |"
        )


if __name__ == "__main__":
    main()
