"""Per-call cost of the function API in a loop: by model name (cached after the first call) against the
same function given the model opened once. Prints a Markdown table for the README.

    python benchmarks/bench_api.py [--calls 20]

The two loops run interleaved, call by call. Every call is on a 256x256 RGB array (scikit-image's astronaut, resized). "by name" is what a user's
loop ``for frame in frames: cvapps.classify(frame)`` costs; "opened" passes ``model=open_model(...)``
(or a ``FaceEncoder`` / ``StyleRunner``), which skips every load. The first column is the first call
by name, which opens the model.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def first_call(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(a, b, calls, warmup=5):
    """Median seconds of ``a()`` and of ``b()``, called in turn (so both see the same machine state)."""
    for _ in range(warmup):
        a(), b()
    times_a, times_b = [], []
    for _ in range(calls):
        start = time.perf_counter()
        a()
        times_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        b()
        times_b.append(time.perf_counter() - start)
    return float(np.median(times_a)), float(np.median(times_b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()

    import cv2
    from skimage import data as samples

    import cvapps
    from cvapps.faces import FaceEncoder
    from cvapps.runtime import clear_cache, open_model
    from cvapps.style import StyleRunner

    frame = cv2.resize(samples.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    cases = [
        (
            "classify",
            lambda: cvapps.classify(frame),
            lambda: open_model("imagenet", task="classify"),
            lambda m: cvapps.classify(frame, model=m),
        ),
        (
            "detect",
            lambda: cvapps.detect(frame),
            lambda: open_model("person", task="detect"),
            lambda m: cvapps.detect(frame, model=m),
        ),
        (
            "segment",
            lambda: cvapps.segment(frame),
            lambda: open_model("person_seg", task="segment"),
            lambda m: cvapps.segment(frame, model=m),
        ),
        (
            "stylize",
            lambda: cvapps.stylize(frame, style="starry_night"),
            lambda: StyleRunner("starry_night"),
            lambda m: cvapps.stylize(frame, style=m),
        ),
        (
            "verify",
            lambda: cvapps.verify(frame, frame[:, ::-1].copy()),
            lambda: FaceEncoder("faces"),
            lambda m: cvapps.verify(frame, frame[:, ::-1].copy(), model=m),
        ),
    ]
    rows = []
    for name, by_name, opener, with_opened in cases:
        clear_cache()
        first = first_call(by_name)
        opened = opener()
        looped, direct = interleaved(by_name, functools.partial(with_opened, opened), args.calls)
        rows.append((name, first, looped, direct))
    print(f"\n### Function API in a loop, 256x256 array, {os.cpu_count()} CPU cores (median of {args.calls} calls)\n")
    print(
        "| function | first call by name (ms) | later calls by name (ms) | with the opened model (ms) | by name / opened |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, first, looped, direct in rows:
        print(
            f"| `cvapps.{name}` | {first * 1000:.0f} | {looped * 1000:.1f} | {direct * 1000:.1f} | {looped / direct:.2f}x |"
        )


if __name__ == "__main__":
    main()
