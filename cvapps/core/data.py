"""Data helpers shared by the apps' loaders (NumPy and the standard library only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np


def split_by_image(data: Any, fraction: float, seed: int | None = 0) -> tuple[Any, Any]:
    """Split any data set with ``len()`` and ``subset(indices)`` by image into ``(train, held_out)``;
    ``held_out`` has round(fraction * N) images (at least 1, at most N - 1).

    Deterministic for ``seed`` (a permutation from ``numpy.random.default_rng(seed)``); both parts
    keep the original order. Detection and segmentation use it, so ``train --val-fraction F --seed S``
    and ``eval --holdout F --seed S`` always name the same images.

    >>> class Items(list):
    ...     def subset(self, indices):
    ...         return Items(self[i] for i in indices)
    >>> train, held = split_by_image(Items("abcdefghij"), 0.2, seed=0)
    >>> len(train), len(held), sorted(set(train) & set(held))
    (8, 2, [])
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), received {fraction!r}; e.g. 0.2 holds out a fifth.")
    if len(data) < 2:
        raise ValueError(f"cannot split {len(data)} image(s); a split needs at least 2.")
    count = min(max(1, round(len(data) * fraction)), len(data) - 1)
    order = np.random.default_rng(seed).permutation(len(data))
    held = np.zeros(len(data), bool)
    held[order[:count]] = True
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def read_yaml_names(path: str | Path) -> tuple[list[str] | None, dict[str, str]]:
    """Class names from a YOLO ``data.yaml`` without PyYAML: ``(names or None, keys)``.

    Understands ``names: [a, b]``, ``names: {0: a, 1: b}``, and blocks of ``  0: a`` or
    ``  - a`` lines under ``names:``. ``keys`` holds the other top-level ``key: value`` pairs
    (strings) so split paths such as ``train: images/train2017`` can be read.
    """
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    keys, names, i = {}, None, 0
    while i < len(lines):
        line = _strip_comment(lines[i])
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$", line)
        i += 1
        if not match:
            continue
        key, value = match[1], match[2].strip()
        if key != "names":
            keys[key] = _unquote(value)
            continue
        if value.startswith(("[", "{")):
            closing = "]" if value.startswith("[") else "}"
            while closing not in value and i < len(lines):
                value += " " + _strip_comment(lines[i]).strip()
                i += 1
            items = [item.strip() for item in _split_commas(value.strip()[1:].rsplit(closing, 1)[0]) if item.strip()]
            names = [_unquote(item.split(":", 1)[1] if closing == "}" else item) for item in items]
            if closing == "}":
                names = _by_index([item.split(":", 1)[0] for item in items], names)
            continue
        block = []
        while i < len(lines) and (not lines[i].strip() or lines[i][:1] in (" ", "\t", "-")):
            entry = _strip_comment(lines[i]).strip()
            i += 1
            if entry:
                block.append(entry)
        if block and all(e.startswith("-") for e in block):
            names = [_unquote(e[1:].strip()) for e in block]
        elif block:
            pairs = [e.split(":", 1) for e in block]
            names = _by_index([p[0] for p in pairs], [_unquote(p[1].strip()) if len(p) == 2 else "" for p in pairs])
    return names, keys


def _by_index(indices, values):
    try:
        order = [int(_unquote(k.strip())) for k in indices]
    except ValueError:
        return None
    if sorted(order) != list(range(len(order))):
        return None
    result = [None] * len(order)
    for k, v in zip(order, values):
        result[k] = v
    return result


def _strip_comment(line):
    quote = None
    for pos, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (pos == 0 or line[pos - 1] in " \t"):
            return line[:pos].rstrip()
    return line.rstrip()


def _split_commas(text):
    parts, current, quote = [], "", None
    for ch in text:
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        if ch == "," and quote is None:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
