"""The command line: the only layer that prints or exits. One module per command group;
each registers its parser with a ``handler`` that returns the exit status."""

from __future__ import annotations

import argparse
import gc
import os
import select
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from .. import __version__
from ..affinity import one_core
from ..errors import BootstrapError, UsageError
from . import (
    bootstrap_command,
    graph_commands,
    provenance_command,
    rebuild_commands,
    serve_command,
    tool_commands,
    update_commands,
)
from .common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, Parser
from .internal_error import internal_error, write_traceback

__all__ = ["build_parser", "console", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bootstrapper",
        description="Rebuild a whole Python dependency tree from source into a static index.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    bootstrap_command.register(commands)
    tool_commands.register_wheel(commands)
    tool_commands.register_settings(commands)
    rebuild_commands.register_sequence(commands)
    rebuild_commands.register_build(commands)
    graph_commands.register(commands)
    update_commands.register_find_updates(commands)
    update_commands.register_update(commands)
    serve_command.register(commands)
    provenance_command.register(commands)
    return parser


#: The commands whose own work is orchestration (resolving, reusing, starting builds,
#: publishing): their threads run on one core, which is faster (see ``affinity``); the
#: programs they start have every core.
ONE_CORE_COMMANDS = frozenset(
    {"bootstrap", "build", "build-sequence", "verify", "update", "find-updates"}
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        with one_core() if args.command in ONE_CORE_COMMANDS else nullcontext():
            status: int = args.handler(args)
        return status
    except UsageError as e:
        print(f"bootstrapper: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except BootstrapError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(
            "\ninterrupted; run the same command again to continue where it stopped",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as e:
        if isinstance(e, BrokenPipeError) and stdout_is_gone():
            # The reader of our output went away (``| head``): nothing to say, nowhere to
            # say it.
            return EXIT_FAILURE
        # The one place a bug becomes a message: its traceback goes to a file, not here.
        where = write_traceback(e, args_list, private_dir(args))
        print(internal_error(e, where).render(), file=sys.stderr)
        return EXIT_FAILURE


def console() -> None:
    """The console script (and ``python -m bootstrapper``): :func:`main`, then exit.

    Everything imported by now (the modules, their classes and functions) lives as long
    as the process: it is frozen first, so that the cyclic collector does not walk it
    again at every older-generation collection of the run (2% of a 300-package re-run).
    What the run made is garbage at the end, and the interpreter's last collections
    would walk all of it on the way out (about 50 ms more): it is frozen too. Nothing
    here relies on a collection at exit (files are closed and written when they are
    made; clean-ups are ``atexit`` hooks, which still run).
    """
    gc.freeze()
    status = main()
    gc.freeze()
    sys.exit(status)


def private_dir(args: argparse.Namespace | None) -> Path | None:
    """The private directory (``DIR/.work``) of the command's output directory, for a
    command that has one (each declares it with ``set_defaults(private_dir=...)``)."""
    if args is None or getattr(args, "private_dir", None) is None:
        return None
    try:
        directory: Path | None = args.private_dir(args)
    except Exception:  # a bug already is being reported; do not hide it behind another
        return None
    return directory


def stdout_is_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it; if so, it is pointed
    at /dev/null, so that the interpreter's last flush does not fail on it too."""
    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poll.poll(0))
        if gone:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (an in-process caller)
        return False
    return gone
