"""``python -m cvapps`` runs the command line."""

from cvapps.cli import main

main()
