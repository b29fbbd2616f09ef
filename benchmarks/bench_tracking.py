"""Tracking on a real video: how stable the ids are, and what tracking costs per frame.

    CVAPPS_DATA=../shared/data python benchmarks/bench_tracking.py [--detector yolox|coco|MODEL]

Runs a detector over ``style/videos/fox.mp4`` (one fox in every frame, 420 frames at 30 fps) and our
:class:`cvapps.core.tracking.Tracker` (ByteTrack) on its boxes, exactly as ``detect(..., track=True)``
does (boxes down to 0.1 go to the tracker; those under the threshold only continue tracks). Prints the
frames with a box, the distinct confirmed ids, the frames covered by the longest track, and the tracker's
milliseconds per frame. The default detector is the YOLOX-Nano teacher ONNX (a measurement of the
tracker on real detections: teachers are never a run-time requirement); ``--detector coco`` uses the
shipped coco model. Then: one ``Tracker.update`` with 20 synthetic moving boxes, and the cost of
writing a 640x480 frame of the video to ``.webm`` (VP8) and ``.mp4`` (the codec this OpenCV has) with
:class:`cvapps.core.sinks.VideoSink`.
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

import numpy as np


def synthetic_costs(video):
    """(ms per Tracker.update with 20 moving boxes, {suffix: (codec, ms per 640x480 frame written)}); the
    frames written are the first 8 of ``video`` resized to 640x480 (an encoder's cost depends on content)."""
    import sys
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import timed

    from cvapps.core.sinks import VideoSink
    from cvapps.core.tracking import Tracker

    rng = np.random.default_rng(0)
    start = rng.uniform(0, 600, (20, 2))
    velocity = rng.uniform(-3, 3, (20, 2))
    tracker, step = Tracker(), [0]

    def update():
        corner = start + velocity * step[0]
        step[0] += 1
        tracker.update(np.hstack([corner, corner + 40]), np.full(20, 0.8), np.zeros(20, np.int64))

    tracker_ms = timed(update, repeats=300, warmup=10) * 1000
    import itertools

    import cv2

    from cvapps.core.sources import iter_frames

    frames = [cv2.resize(f.image, (640, 480)) for f in itertools.islice(iter_frames(video), 8)]
    writing = {}
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".webm", ".mp4"):
            sink = VideoSink(os.path.join(folder, "clip" + suffix), fps=30)
            count = [0]

            def write(sink=sink, count=count):
                sink.write(frames[count[0] % len(frames)])
                count[0] += 1

            ms = timed(write, repeats=60, warmup=5) * 1000
            writing[suffix] = (sink.codec, ms)
            sink.close()
    return tracker_ms, writing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="yolox", help="yolox (the teacher ONNX), or a cvapps detector name/path.")
    parser.add_argument("--confidence-threshold", type=float, default=0.25)
    parser.add_argument("--class-aware", action="store_true", help="TrackOptions(class_aware=True).")
    parser.add_argument("--picture", help="Save frames 120, 240 and 360 side by side, annotated, to this PNG.")
    args = parser.parse_args()
    data = Path(os.environ.get("CVAPPS_DATA", "../shared/data"))
    video = data / "style" / "videos" / "fox.mp4"

    from cvapps.core.annotate import draw_count_line, draw_detections, draw_trails, draw_zone
    from cvapps.core.streaming import FrameStream
    from cvapps.core.tracking import LineCounter, PolygonZone, Tracker, TrackOptions
    from cvapps.detection.label import open_teacher
    from cvapps.detection.predict import TRACK_LOW_THRESHOLD, _track, class_threshold_vector

    teacher = data / "teachers" / "yolox_nano" / "yolox_nano_416.onnx" if args.detector == "yolox" else args.detector
    detector = open_teacher(teacher)
    thresholds = class_threshold_vector(detector.class_names, args.confidence_threshold)
    frames = FrameStream(video)
    options = TrackOptions(
        activation_threshold=args.confidence_threshold,
        high_threshold=args.confidence_threshold,
        class_aware=args.class_aware,
    )
    tracker = Tracker(options, frame_rate=frames.fps or 30.0)
    lengths, classes, seconds, count, with_box = collections.Counter(), collections.Counter(), 0.0, 0, 0
    names: dict[int, collections.Counter] = {}
    line, zone, shots = LineCounter("0.5,0,0.5,1"), PolygonZone("0,0.7,1,0.7,1,1,0,1"), []
    for frame in frames:
        found = detector(frame.image, confidence_threshold=TRACK_LOW_THRESHOLD)
        start = time.perf_counter()
        tracked = _track(found, tracker, thresholds)
        seconds += time.perf_counter() - start
        count += 1
        confirmed = tracked[tracked.track_id >= 0]
        with_box += bool(len(confirmed))
        lengths.update(confirmed.track_id.tolist())
        classes.update(confirmed.class_name)
        for track, name in zip(confirmed.track_id.tolist(), confirmed.class_name):
            names.setdefault(track, collections.Counter())[name] += 1
        line.update(tracked.xyxy, tracked.track_id, tracked.class_name, frame.image.shape)
        if args.picture and frame.index in (120, 240, 360):
            inside = zone.count(tracked.xyxy, tracked.class_name, frame.image.shape)["total"]
            image = draw_zone(frame.image, zone, inside)
            image = draw_count_line(draw_trails(draw_detections(image, tracked), tracker.trails), line)
            shots.append(image)
    longest = lengths.most_common(1)[0] if lengths else (None, 0)
    print(
        f"detector {detector.name} ({detector.layout}), threshold {args.confidence_threshold}, "
        f"class_aware {args.class_aware}, {video.name}: {count} frames"
    )
    print(
        f"frames with a confirmed track: {with_box}; distinct ids: {len(lengths)}; ids by frames: {dict(lengths.most_common(6))}"
    )
    print(f"longest track: id {longest[0]} over {longest[1]} frames ({longest[1] / max(count, 1):.1%} of the video)")
    print(f"classes of the tracked boxes: {dict(classes.most_common(4))}")
    for track, frames_seen in lengths.most_common():
        print(f"  id {track}: {frames_seen} frames, classes {dict(names[track].most_common(3))}")
    print(f"tracker: {seconds / max(count, 1) * 1000:.2f} ms per frame (ByteTrack update and the low-box rule)")
    tracker_ms, writing = synthetic_costs(video)
    print(f"Tracker.update, 20 moving boxes: {tracker_ms:.2f} ms")
    for suffix, (codec, ms) in writing.items():
        print(f"VideoSink {suffix} ({codec}), 640x480: {ms:.1f} ms per frame")
    if args.picture and shots:
        import cv2

        from cvapps.core.sinks import write_image

        row = np.concatenate([cv2.resize(shot, (360, 360), interpolation=cv2.INTER_AREA) for shot in shots], axis=1)
        print(f"saved {write_image(args.picture, row, overwrite=True)}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
