"""What every command shares: the parser class, exit statuses, path arguments, settings
options."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..settings import Settings, default_layers, recipes_dir, unique_dirs

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def absolute_path(text: str) -> Path:
    """An argparse ``type`` for every path a user gives: made absolute once, at parse
    time, so that nothing later depends on the working directory (``patch`` runs inside
    the unpacked source, builds in their own directories). String defaults go through it
    too, so ``./patches`` and ``./bootstrap-output`` are pinned when the command starts."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text).absolute()


def location(text: str) -> str:
    """An argparse ``type`` for DIR_OR_URL: a URL as given, a directory made absolute."""
    if "://" in text:
        return text
    return str(absolute_path(text))


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overrides-dir",
        type=absolute_path,
        default="overrides",
        metavar="DIR",
        help="per-package settings: DIR/settings/<name>.yaml and DIR/settings.yaml "
        "(default ./overrides; layered over bootstrapper's own recipes)",
    )
    parser.add_argument(
        "--patches-dir",
        type=absolute_path,
        default="patches",
        metavar="DIR",
        help="per-package patches: DIR/<name>/*.patch, DIR/<name>/<version>/*.patch "
        "(default ./patches; layered over bootstrapper's own recipes)",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        help="merge each package's 'variants: NAME' settings over its base; the default "
        "output directory becomes ./bootstrap-output-NAME",
    )


def settings_layers(args: argparse.Namespace) -> tuple[Settings, list[Path]]:
    settings = Settings(default_layers(args.overrides_dir))
    variants = settings.variants()
    if args.variant is not None and args.variant not in variants:
        raise UsageError(
            f"unknown variant {args.variant!r}"
            + (f" (the settings define: {', '.join(sorted(variants))})" if variants else "")
        )
    return settings, unique_dirs([args.patches_dir, recipes_dir() / "patches"])
