"""`gsop explore`: the Streamlit explorer, as a child that dies with this process."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from .common import UserError, _resolve_checkpoint


def explorer_app() -> Path:
    """The explorer's entry script, ``app.py`` of the package ``gsoplib.explorer`` (explorer/ in
    a checkout, gsoplib/explorer/ in an installed wheel). Raises FileNotFoundError in one
    sentence when this gsoplib was installed without it."""
    spec = importlib.util.find_spec("gsoplib.explorer")
    app = Path(spec.origin).parent / "app.py" if spec and spec.origin else None
    if app is None or not app.is_file():
        raise FileNotFoundError(
            "this gsoplib has no explorer app (gsoplib.explorer/app.py is missing); reinstall "
            "it from a wheel or a checkout: pip install 'gsoplib[app]'"
        )
    return app


def _cmd_explore(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        raise UserError("the explorer needs Streamlit, which is not installed here; install the "
                        "app extras: pip install 'gsoplib[app]'")
    try:
        app = explorer_app()
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(args.port),
        # A specific address also keeps a headless streamlit from looking up this machine's
        # external IP on the network at start-up; 0.0.0.0 serves every interface.
        "--server.address",
        args.address,
        "--browser.gatherUsageStats",
        "false",
        # No "Deploy" button: the app is served by gsop explore, not deployed to a cloud.
        "--client.toolbarMode",
        "viewer",
    ]
    if args.headless:
        command += ["--server.headless", "true"]
    if args.checkpoint is not None:
        _resolve_checkpoint(args.checkpoint)  # one clear line now rather than an error in the app
        command += ["--", "--checkpoint", args.checkpoint]
    return _run_forwarding_signals(command)


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Linux's prctl option that sends the calling process a signal when its parent dies.
PR_SET_PDEATHSIG = 1
#: Run before the command, in the child: ask for SIGTERM when the parent dies, then exit at once
#: if the parent is already gone (it died between the fork and the prctl), else exec the command.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    f"ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, signal.SIGTERM); "
    "os.getppid() == int(sys.argv[1]) or os._exit(1); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def _dying_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGTERM when this process dies, however it dies (SIGKILL,
    the OOM killer included): Linux's PR_SET_PDEATHSIG, set by a small Python shim that then
    execs the command (the setting survives exec). Elsewhere ``command`` unchanged: a SIGKILL
    of gsop explore there leaves its server running (SIGTERM and SIGINT are still forwarded)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def _run_forwarding_signals(command: list[str]) -> int:
    """Run ``command`` as a child and wait for it, passing SIGTERM and SIGINT on to it.

    What a supervisor, ``timeout`` or a container stop sends reaches only this process; passed
    on, the server shuts down and frees its port instead of outliving us. A SIGKILL cannot be
    caught: on Linux the child is then sent SIGTERM by the kernel (:func:`_dying_with_parent`).
    Returns the child's exit status, 128 + N when signal N ended it (as a shell reports it).
    """
    child = None
    pending = []  # signals that came before the child existed

    def forward(signum, _frame) -> None:
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        child = subprocess.Popen(_dying_with_parent(command))
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _add_explore(sub) -> None:
    explore = sub.add_parser("explore", help="launch the Streamlit explorer")
    explore.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    explore.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    explore.add_argument("--headless", action="store_true", help="do not open a browser")
    explore.add_argument(
        "--checkpoint",
        help="bundled checkpoint name or .safetensors path to open (default: pick in the app)",
    )
    explore.set_defaults(func=_cmd_explore)
