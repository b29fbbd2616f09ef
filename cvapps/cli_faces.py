"""Commands of face verification (issue 5): added to the ``cvapps`` groups by :func:`register`."""

from __future__ import annotations


def register(cli, train, evaluate, webcam):
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
