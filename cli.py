"""Run the cvapps command line from a checkout: ``python cli.py classify photo.jpg``.

The commands live in :mod:`cvapps.cli`; the installed ``cvapps`` command runs the same group.
"""

from cvapps.cli import main

if __name__ == "__main__":
    main()
