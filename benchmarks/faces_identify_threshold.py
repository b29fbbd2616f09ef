"""The 1:N identification threshold of a face model, measured on people it never trained on.

    CVAPPS_DATA=../shared/data python benchmarks/faces_identify_threshold.py [--model faces] [--json out.json]

Identification names a face as the closest enrolled photo's person when that distance is at
most a threshold. With N people enrolled, a stranger (someone not enrolled) is named wrongly
when ANY of the gallery photos is within the threshold, so the 1:1 verification threshold
names far too many strangers. This script simulates galleries and picks the threshold.

Data (both never trained on by the shipped ``faces`` model, see models/faces.md): the LFW
identities that ``cvapps train faces --val-fraction 0.1 --seed 0`` held out (162 people), and
CelebA (299 people). Every photo goes through the same detector and alignment as ``cvapps faces
identify`` (default Haar) and is embedded once.

Simulation, separately in each data set, ``--trials`` times for every gallery size N: draw N
people, enroll ``--photos`` random photo(s) of each; every photo of the other people is a
stranger probe, and every other photo of the enrolled people is a genuine probe. Recorded per
probe: the nearest gallery distance and whose photo that is.

- false-name rate(t) = fraction of stranger probes whose nearest gallery distance <= t;
- correct-name rate(t) = fraction of genuine probes whose nearest gallery photo is their own
  person's and within t.

The threshold is the largest t whose false-name rate is at most ``--target`` (0.001) with
N = ``--choose-n`` (10), the smaller of the two data sets' (the stricter one). The tables give
both rates at that threshold for every N and data set, and the trade-off at N = 10: the
threshold and correct-name rate at other false-name rates. The simulation is
:func:`cvapps.faces.metrics.simulate_galleries`; ``cvapps train faces`` stores a threshold
chosen the same way on its held-out people.

The embeddings are cached in ``--cache`` (default ``$CVAPPS_CACHE``); the first run embeds
about 6,500 photos (3-4 minutes on 2 CPU cores), later runs take seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def embed_dataset(root, model, detector, holdout=None, seed=0, cache=None):
    """(embeddings (M, D), labels (M,)) of every face of folder-per-person ``root``."""
    if cache and Path(cache).is_file():
        with np.load(cache) as data:
            return data["embeddings"], data["labels"]
    from cvapps.faces import embed_faces
    from cvapps.faces.train import load_faces

    faces = load_faces(root, model.info.image_size, detector, holdout=holdout, seed=seed)
    embeddings = embed_faces(model, faces.images, batch_size=128)
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, embeddings=embeddings, labels=faces.labels, skipped=len(faces.skipped))
    return embeddings, faces.labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="faces")
    parser.add_argument("--detector", default="haar", choices=["haar", "yunet", "none"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 10, 50], help="gallery sizes N (people)")
    parser.add_argument("--choose-n", type=int, default=10, help="the N the threshold is chosen at")
    parser.add_argument("--photos", type=int, default=1, help="enrolled photos per person")
    parser.add_argument("--trials", type=int, default=400, help="random galleries per N and data set")
    parser.add_argument("--target", type=float, default=0.001, help="false-name rate to choose the threshold at")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=os.environ.get("CVAPPS_CACHE"), help="folder for the embeddings")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    from cvapps.faces.metrics import simulate_galleries
    from cvapps.runtime import open_model

    data = Path(os.environ.get("CVAPPS_DATA", "../shared/data"))
    if not (data / "lfw").is_dir():
        raise SystemExit("set CVAPPS_DATA to the shared data folder (with lfw/ and celeba/)")
    model = open_model(args.model, task="faces")
    started = time.perf_counter()
    sets = {}
    for name, root, holdout in (("lfw-heldout", data / "lfw", 0.1), ("celeba", data / "celeba", None)):
        cache = Path(args.cache) / f"identify_{args.model}_{name}_{args.detector}.npz" if args.cache else None
        sets[name] = embed_dataset(root, model, args.detector, holdout, 0, cache)
        print(f"{name}: {len(sets[name][1])} faces of {len(np.unique(sets[name][1]))} people embedded")
    print(f"embedded in {time.perf_counter() - started:.0f} s")

    sizes = sorted(set(args.sizes) | {args.choose_n})
    runs = {
        (n, size): simulate_galleries(*sets[n], size, args.photos, args.trials, args.seed + size)
        for n in sets
        for size in sizes
    }
    chosen = {n: runs[n, args.choose_n].threshold_at(args.target) for n in sets}
    threshold = min(chosen.values())
    print(
        f"threshold for a false-name rate of {args.target} at N={args.choose_n} ({args.photos} photo(s) each): "
        + ", ".join(f"{n} {t:.4f}" for n, t in chosen.items())
        + f" -> {threshold:.4f}"
    )
    model_threshold = float(model.info.settings.get("threshold", 1.0))
    rows = []
    print(f"\nat the threshold {threshold:.4f} and at the verification threshold {model_threshold:.4f}:\n")
    print("| data | N people | stranger probes | false names | correct names | false names at 1:1 | correct at 1:1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, size), sim in runs.items():
        row = {
            "data": name,
            "gallery_people": size,
            "stranger_probes": int(len(sim.stranger)),
            "genuine_probes": int(len(sim.genuine)),
            "false_name_rate": sim.false_name_rate(threshold),
            "correct_name_rate": sim.correct_name_rate(threshold),
            "false_name_rate_at_verification_threshold": sim.false_name_rate(model_threshold),
            "correct_name_rate_at_verification_threshold": sim.correct_name_rate(model_threshold),
        }
        rows.append(row)
        print(
            f"| {name} | {size} | {row['stranger_probes']} | {row['false_name_rate']:.4f} | "
            f"{row['correct_name_rate']:.4f} | {row['false_name_rate_at_verification_threshold']:.4f} | "
            f"{row['correct_name_rate_at_verification_threshold']:.4f} |"
        )
    trade = []
    print(f"\ntrade-off with N={args.choose_n}: the threshold at each false-name rate, and the correct names there:\n")
    print("| false-name rate | " + " | ".join(f"{n} threshold | {n} correct names" for n in sets) + " |")
    print("|---:|" + "---:|---:|" * len(sets))
    for rate in sorted({args.target, 0.01, 0.05, 0.1}):
        cells = {}
        for name in sets:
            sim = runs[name, args.choose_n]
            t = sim.threshold_at(rate)
            cells[name] = {"threshold": t, "correct_name_rate": sim.correct_name_rate(t)}
        trade.append({"false_name_rate": rate, **cells})
        print(
            f"| {rate} | "
            + " | ".join(f"{c['threshold']:.4f} | {c['correct_name_rate']:.4f}" for c in cells.values())
            + " |"
        )
    report = {
        "model": args.model,
        "detector": args.detector,
        "photos_per_person": args.photos,
        "trials": args.trials,
        "seed": args.seed,
        "target_false_name_rate": args.target,
        "chosen_at_gallery_people": args.choose_n,
        "threshold_per_data": chosen,
        "identify_threshold": threshold,
        "verification_threshold": model_threshold,
        "rows": rows,
        "trade_off": trade,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"done in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
