"""``python -m camseg``: the ``camseg`` command, for an environment whose scripts folder is not on PATH."""
import sys

from camseg.cli import main

if __name__ == "__main__":  # worker processes import this module again; only the command runs main
    sys.exit(main())
