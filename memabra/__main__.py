"""`python -m memabra`: the `memabra` command (the console, or with `--headless` the CLI)."""

import sys

from memabra.cli import command

if __name__ == "__main__":
    sys.exit(command())
