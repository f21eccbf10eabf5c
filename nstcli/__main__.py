"""The ``nst`` command and ``python -m nstcli``. Loading the CLI's modules (typer, rich, numpy) takes a fraction of a
second before nst handles Ctrl-C itself; a Ctrl-C then ends the same way, not with a traceback."""

import sys

from nstcli.errors import EXIT_INTERRUPTED  # imports nothing


def start() -> None:
    try:
        from nstcli.cli import run
    except KeyboardInterrupt:
        print("nst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    run()


if __name__ == "__main__":
    start()
