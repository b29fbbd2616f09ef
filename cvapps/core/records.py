"""The JSON Lines record every predict command writes with ``--json``: one versioned schema.

``records.schema.json`` (JSON Schema 2020-12, beside this file) describes every task's record and the
error record of an input that could not be used; ``schema_version`` is in every record, so a reader
can tell which shape it has.

    >>> error_record("a.jpg", 0, "classify", "a.jpg: not an image")["error"]
    'a.jpg: not an image'
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
TASKS = ("classify", "detect", "segment", "faces", "style")


def schema_path() -> Path:
    """The JSON Schema file of the records."""
    return Path(__file__).with_name("records.schema.json")


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the records, as a dict."""
    return json.loads(schema_path().read_text(encoding="utf-8"))


def record(source: str, frame: int, task: str, **fields: Any) -> dict[str, Any]:
    """A record's common head (``schema_version``, ``source``, ``frame``, ``task``) followed by ``fields``.

    >>> record("a.jpg", 0, "detect", model="person")
    {'schema_version': 1, 'source': 'a.jpg', 'frame': 0, 'task': 'detect', 'model': 'person'}
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, received {task!r}.")
    return {"schema_version": SCHEMA_VERSION, "source": str(source), "frame": int(frame), "task": task, **fields}


def error_record(source: str, frame: int, task: str, error: str) -> dict[str, Any]:
    """The record of an input that could not be used: ``{schema_version, source, frame, task, error}``."""
    return record(source, frame, task, error=str(error))
