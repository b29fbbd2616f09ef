"""``python -m cvapps`` runs the command line."""

from __future__ import annotations

from cvapps.cli import main

main()
