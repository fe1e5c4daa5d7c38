"""`python -m memabra`: the `memabra` command (the console, `--headless` for the CLI, `serve` for the HTTP door)."""

import sys

from memabra.cli import command

if __name__ == "__main__":
    sys.exit(command())
