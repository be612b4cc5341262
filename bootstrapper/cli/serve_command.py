"""``serve``: share an output directory over HTTP, HTML or JSON pages by ``Accept``."""

from __future__ import annotations

import argparse
import errno
import sys
import threading
from typing import Any

from ..errors import UsageError
from ..serve import DEFAULT_HOST, DEFAULT_PORT, HTML_PAGE, IndexServer
from .common import EXIT_INTERRUPTED, EXIT_OK, absolute_path


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0 to 65535): {text!r}")
    return port


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve an output directory over HTTP (pip and uv install from it)",
        description="Serve DIR read-only over HTTP: DIR/simple/ answers with its HTML or "
        "its PEP 691 JSON pages as the client's Accept header asks (uv and pip ask for "
        "JSON), every other file as it is. Nothing outside DIR, and no hidden file, is "
        "served. Runs until interrupted (Ctrl-C).",
    )
    serve.add_argument(
        "dir",
        nargs="?",
        type=absolute_path,
        default="bootstrap-output",
        metavar="DIR",
        help="the output directory of a bootstrap (default ./bootstrap-output)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"the port to listen on (default {DEFAULT_PORT}; 0: any free one, printed)",
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar="H",
        help=f"the address to listen on (default {DEFAULT_HOST}: this machine only; "
        "0.0.0.0 or :: for every interface)",
    )
    serve.add_argument("-q", "--quiet", action="store_true", help="log no requests")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    if not (args.dir / "simple" / HTML_PAGE).is_file():
        raise UsageError(
            f"{args.dir} holds no index ({args.dir / 'simple' / HTML_PAGE} is missing); "
            "give the output directory of a bootstrap"
        )

    # Requests are answered in threads: one write per line, one line at a time (print
    # writes the line and its newline apart, and lines ran into each other).
    lock = threading.Lock()

    def log(line: str) -> None:
        if not args.quiet:
            with lock:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    try:
        server = IndexServer(args.dir, args.host, args.port, log)
    except OSError as e:
        hint = (
            "; give another --port (or --port 0 for any free one)"
            if e.errno in (errno.EADDRINUSE, errno.EACCES)
            else ""
        )
        raise UsageError(
            f"cannot listen on {args.host} port {args.port}: {e.strerror or e}{hint}"
        ) from None
    with server:
        print(f"serving {args.dir} at {server.url}/simple/ (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("\nstopped", file=sys.stderr)
            return EXIT_INTERRUPTED
    return EXIT_OK  # serve_forever returns only when shut down from elsewhere
