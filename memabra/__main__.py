"""`python -m memabra`: `serve` runs the HTTP door, anything else is the `memabra` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch `serve ...` to the HTTP server and everything else to the console launcher."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from memabra.server import main as serve

        return serve(argv)
    from memabra.tui.launch import main as launch

    return launch(argv)


if __name__ == "__main__":
    sys.exit(main())
