"""`gsop`: the command line. Each subcommand is a thin layer over the library."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

EXPLORER_APP = Path(__file__).resolve().parent.parent / "explorer" / "app.py"


def _cmd_explore(args: argparse.Namespace) -> int:
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(EXPLORER_APP),
        "--server.port",
        str(args.port),
        "--browser.gatherUsageStats",
        "false",
    ]
    if args.headless:
        command += ["--server.headless", "true"]
    if not EXPLORER_APP.exists():
        print(f"gsop explore: the explorer app is not built yet; it will run: {' '.join(command)}")
        return 0
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explore = sub.add_parser("explore", help="launch the Streamlit explorer")
    explore.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    explore.add_argument("--headless", action="store_true", help="do not open a browser")
    explore.set_defaults(func=_cmd_explore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
