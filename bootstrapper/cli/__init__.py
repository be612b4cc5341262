"""The command line: the only layer that prints or exits. One module per command group;
each registers its parser with a ``handler`` that returns the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BootstrapError, UsageError
from . import bootstrap_command, rebuild_commands, tool_commands
from .common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, Parser

__all__ = ["build_parser", "main"]


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
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
