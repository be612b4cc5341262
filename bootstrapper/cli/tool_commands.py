"""Tools on settings and wheels: ``settings check`` and ``wheel edit``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..cores import Demand, demand_json
from ..errors import UsageError
from ..patches import find_patches
from ..reqfile import parse_requirement
from ..wheeledit import WheelEdit, edit_wheel
from .common import EXIT_OK, Parser, absolute_path, add_settings_options, settings_layers


def register_settings(commands: Any) -> None:
    settings = commands.add_parser("settings", help="per-package settings")
    sub = settings.add_subparsers(
        dest="settings_command", metavar="COMMAND", parser_class=Parser, required=True
    )
    check = sub.add_parser(
        "check",
        help="validate the settings and show what applies to a package",
        description="Validate every settings file (all problems are reported, with file "
        "and line) and, given a PACKAGE and VERSION, print the settings and patches that "
        "apply to it.",
    )
    check.add_argument("package", nargs="?", metavar="PACKAGE")
    check.add_argument("version", nargs="?", metavar="VERSION")
    add_settings_options(check)
    check.set_defaults(handler=run_settings_check)


def run_settings_check(args: argparse.Namespace) -> int:
    settings, patch_layers = settings_layers(args)
    print(
        f"settings OK: {len(settings.packages)} packages configured in "
        f"{', '.join(str(p) for p in settings.layers) or 'no directory'}"
    )
    if args.package is None:
        return EXIT_OK
    if args.version is None:
        raise UsageError("give the VERSION too, e.g. 'settings check torch 2.5.1'")
    try:
        version = Version(args.version)
    except InvalidVersion:
        raise UsageError(f"invalid version {args.version!r}") from None
    name = canonicalize_name(args.package)
    package = settings.for_package(name, args.variant)
    patches = find_patches(patch_layers, name, version, args.variant)
    report = {
        "package": name,
        "version": str(version),
        "variant": args.variant,
        "settings": package.to_json(version),
        "env-expanded": package.expanded_env(version, os.environ),
        "patches": [p.to_json() for p in patches],
        "wheel-version": str(package.wheel_edit(version).new_version(version)),
    }
    if package.build_timeout is not None:
        # Not part of the settings a build record keeps: a new limit rebuilds nothing.
        report["build-timeout"] = f"{package.build_timeout} s ({package.build_timeout_origin})"
    if package.demand() != Demand():
        # Nor is what a build asks of the core budget: it decides when, not what, is built.
        report["scheduling"] = demand_json(package.demand())
    if package.repair:
        # Nor is the repair: the wheel built is the same, its record says what was done.
        report["repair"] = {"plat": package.repair_plat or "auto"}
    print(json.dumps(report, indent=2))
    return EXIT_OK


def register_wheel(commands: Any) -> None:
    wheel = commands.add_parser("wheel", help="work on wheel files")
    wheel_commands = wheel.add_subparsers(
        dest="wheel_command", metavar="COMMAND", parser_class=Parser, required=True
    )
    edit = wheel_commands.add_parser(
        "edit",
        help="rewrite a wheel's requirements and rebuild number",
        description="Rewrite WHEEL: drop or add Requires-Dist entries and stamp a rebuild "
        "number. METADATA, WHEEL, the dist-info name and RECORD (hashes and sizes) are "
        "regenerated; every other file is kept byte for byte.",
    )
    edit.add_argument("wheel", type=absolute_path, metavar="WHEEL")
    edit.add_argument(
        "--remove-requires",
        action="append",
        default=[],
        metavar="NAME",
        help="drop every Requires-Dist naming NAME (an error if there is none)",
    )
    edit.add_argument(
        "--add-requires",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="add a Requires-Dist (markers allowed)",
    )
    scheme = edit.add_mutually_exclusive_group()
    scheme.add_argument(
        "--build-tag",
        type=int,
        metavar="N",
        help="set the PEP 427 build tag: pkg-1.4-N-py3-none-any.whl",
    )
    scheme.add_argument("--post", type=int, metavar="N", help="make the version 1.4.postN")
    scheme.add_argument("--local", metavar="LABEL", help="make the version 1.4+LABEL")
    edit.add_argument(
        "--output-dir",
        type=absolute_path,
        metavar="DIR",
        help="where the new wheel goes (default: beside WHEEL)",
    )
    edit.set_defaults(handler=run_wheel_edit)


def run_wheel_edit(args: argparse.Namespace) -> int:
    if not args.wheel.is_file():
        raise UsageError(f"no such wheel: {args.wheel}")
    try:
        parse_wheel_filename(args.wheel.name)
    except InvalidWheelFilename as e:
        raise UsageError(f"not a wheel: {args.wheel} ({e})") from None
    for number in (args.build_tag, args.post):
        if number is not None and number < 1:
            raise UsageError("a rebuild number must be at least 1")
    scheme, rebuild = "build-tag", 0
    if args.build_tag is not None:
        rebuild = args.build_tag
    elif args.post is not None:
        scheme, rebuild = "post", args.post
    elif args.local is not None:
        scheme = "local"
    edit = WheelEdit(
        remove_requires=frozenset(canonicalize_name(n) for n in args.remove_requires),
        add_requires=tuple(
            parse_requirement(r, "--add-requires", direct_url=True) for r in args.add_requires
        ),
        rebuild=rebuild,
        scheme=scheme,
        local=args.local,
    )
    output_dir: Path = args.output_dir or args.wheel.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    result = edit_wheel(args.wheel, output_dir, edit)
    print(result)
    return EXIT_OK
