"""The ``wsstream`` command (also ``python -m wsstream``): :func:`main`.

Modules: :mod:`.options` (flags), :mod:`.stdio` (non-blocking stdin/stdout), :mod:`.pump` (copying and
progress), :mod:`.client` (``wsstream URL``), :mod:`.listen` (``-l``, ``--exec``, ``--forward``),
:mod:`.tcplisten` (``--tcp-listen``), :mod:`.errors` (one-line failure reasons). See ``docs/cli.md``.

Exit status: 0 after a normal close (or a graceful stop on SIGINT/SIGTERM), 1 with a one-line reason on
stderr for a failure, 2 for a usage error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from .errors import Interrupted, describe
from .options import Options, UsageError, parse_args

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _target(opts: Options) -> str | None:
    """``host:port`` (or the socket path) of the URL, for error messages."""
    if opts.url is None:
        return None
    try:
        from ..core.uri import parse_uri

        uri = parse_uri(opts.url)
    except Exception:
        return None
    if uri.unix_path is not None:
        return uri.unix_path
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    return f"{host}:{uri.port}"


def _setup_logging(verbosity: int) -> None:
    level = logging.ERROR if verbosity < 0 else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("wsstream: %(message)s"))
    root = logging.getLogger("wsstream")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


async def _run(opts: Options) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal() -> None:
        # The first signal asks for a graceful close; a second SIGINT interrupts at once (KeyboardInterrupt).
        stop.set()
        for signum in signals:
            loop.remove_signal_handler(signum)

    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread / Windows
            loop.add_signal_handler(signum, on_signal)
    if opts.command == "client":
        from .client import run_client

        await run_client(opts, stop)
    elif opts.command == "tcp-listen":
        from .tcplisten import run_tcp_listen

        await run_tcp_listen(opts, stop, _target(opts))
    else:
        from .listen import run_listen

        await run_listen(opts, stop)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"wsstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help, --version, or its own usage message
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _setup_logging(opts.verbosity)
    try:
        asyncio.run(_run(opts))
    except (KeyboardInterrupt, Interrupted):
        return EXIT_INTERRUPTED
    except Exception as exc:
        if opts.verbosity >= 2:
            logging.getLogger("wsstream.cli").exception("failed")
        print(f"wsstream: {describe(exc, _target(opts))}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
