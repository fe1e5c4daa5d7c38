"""The `memabra` command: the operator console, or with `--headless` exactly `python -m memabra.cli`."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Open the console on the base dir, run the headless CLI when `--headless` is given, or `serve` the HTTP door."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from memabra.server import main as serve

        return serve(argv)
    if "--headless" in argv:
        from memabra.cli import main as cli_main

        argv.remove("--headless")
        return cli_main(argv)
    from memabra.tui.app import run_console

    return run_console(argv)


if __name__ == "__main__":
    sys.exit(main())
