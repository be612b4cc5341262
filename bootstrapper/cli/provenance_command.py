"""Provenance on the command line: ``--sign-key`` for the commands that publish, and
``verify-provenance``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import BootstrapError, UsageError
from ..provenance_check import (
    NOT_CHECKED,
    VERIFIED,
    Locations,
    WheelCheck,
    check_all,
    published_wheels,
)
from ..signing import Signer, load_signer, load_verifier
from .common import EXIT_FAILURE, EXIT_OK, absolute_path


def add_sign_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sign-key",
        type=absolute_path,
        metavar="FILE",
        help="sign each wheel's provenance (<wheel>.intoto.json, a DSSE envelope) with "
        "this Ed25519 private key (PEM, PKCS#8: openssl genpkey -algorithm ed25519); "
        "without it the provenance is written unsigned",
    )


def signer_from(args: argparse.Namespace) -> Signer | None:
    """``--sign-key``, read (a key that cannot be used is a usage error)."""
    path: Path | None = getattr(args, "sign_key", None)
    return None if path is None else load_signer(path)


def register(commands: Any) -> None:
    verify = commands.add_parser(
        "verify-provenance",
        help="check each wheel's provenance against the files of an output directory",
        description="For every wheel of DIR's index (or each WHEEL named), check that its "
        "provenance (<wheel>.intoto.json) exists and parses, attests this wheel's sha256, "
        "and that every resolved dependency (the source archive, each build-environment "
        "wheel, each patch) is in DIR with the sha256 it names; with --key, that it is "
        "signed by that key. Needs no network. Exit status 1 if any wheel fails.",
    )
    verify.add_argument(
        "dir", type=absolute_path, metavar="DIR", help="a bootstrap's output directory"
    )
    verify.add_argument(
        "wheels",
        nargs="*",
        metavar="WHEEL",
        help="only these wheels (file names in DIR/wheels, or paths to them)",
    )
    verify.add_argument(
        "--key",
        type=absolute_path,
        metavar="PUBLIC.pem",
        help="the Ed25519 public key the provenance must be signed with (openssl pkey "
        "-in KEY.pem -pubout); without it signatures are not checked",
    )
    verify.add_argument(
        "--sources",
        type=absolute_path,
        metavar="DIR",
        help="where the source archives are (default DIR/sdists; for a build-sequence "
        "output, the sdists/ beside its build order)",
    )
    verify.add_argument(
        "--patches",
        type=absolute_path,
        metavar="DIR",
        help="where the archived patches are (default DIR/patches)",
    )
    verify.add_argument("--json", action="store_true", help="answer with a JSON document")
    verify.set_defaults(handler=run_verify_provenance)


def _selected(args: argparse.Namespace) -> list[Path]:
    wheels_dir: Path = args.dir / "wheels"
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir} is not a directory")
    published = published_wheels(wheels_dir)
    if not args.wheels:
        if not published:
            raise BootstrapError(f"{wheels_dir} holds no published wheels: nothing to verify")
        return published
    by_name = {p.name: p for p in published}
    unknown = [w for w in args.wheels if Path(w).name not in by_name]
    if unknown:
        raise UsageError(f"not a published wheel of {wheels_dir}: {', '.join(unknown)}")
    return [by_name[Path(w).name] for w in dict.fromkeys(args.wheels)]


def run_verify_provenance(args: argparse.Namespace) -> int:
    verifier = None if args.key is None else load_verifier(args.key)
    wheels = _selected(args)
    locations = Locations.of(args.dir, args.sources, args.patches)
    key_name = str(args.key) if args.key is not None else ""
    results = check_all(wheels, locations, verifier, key_name)
    failed = sum(1 for r in results if not r.ok)
    if args.json:
        document = {
            "schema": 1,
            "output_dir": str(args.dir),
            "key": None if verifier is None else {"file": key_name, "keyid": verifier.keyid},
            "ok": not failed,
            "wheels": [r.to_json() for r in results],
        }
        print(json.dumps(document, indent=2))
    else:
        for result in results:
            print(_line(result))
        print(f"{len(results) - failed} of {len(results)} wheels verified")
    return EXIT_FAILURE if failed else EXIT_OK


def _line(result: WheelCheck) -> str:
    if not result.ok:
        return "\n".join([f"FAILED  {result.wheel}", *(f"  {p}" for p in result.problems)])
    if result.signature == VERIFIED:
        signed = "signature verified"
    elif result.signature == NOT_CHECKED:
        signed = f"signed by {', '.join(result.keyids) or 'an unnamed key'}, not checked (no --key)"
    else:
        signed = "unsigned"
    count = result.dependencies
    matched = f"{count} {'dependency matches' if count == 1 else 'dependencies match'}"
    return f"ok      {result.wheel} ({matched}; {signed})"
