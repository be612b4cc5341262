"""Rust crates vendored into the source, so that Rust extensions build without network.

A source tree with ``Cargo.toml`` files gets, while the network is still allowed (before
the isolated build, with the user's own environment so that cargo's configuration and
registry mirrors apply), a ``vendor/`` directory from ``cargo vendor`` and a
``.cargo/config.toml`` at its root that points cargo at it and keeps cargo offline.

The vendored tree is then written as a *vendored sdist*: the upstream archive's members,
``vendor/`` and the cargo configuration, deterministically and under the upstream file
name. That archive is what gets archived and recorded, so an offline rebuild finds the
crates in its source and never needs to know about cargo.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from packaging.utils import canonicalize_name

from .buildsystem import BuildSystem
from .errors import VendoringError
from .fsutil import replacing, sha256_file
from .reproducible import ZIP_EPOCH, normalized_member

VENDOR_DIR = "vendor"
#: Used instead when the project has a ``vendor/`` of its own (cargo vendor would empty it).
SPARE_VENDOR_DIR = "cargo-vendor"
CONFIG_PATH = ".cargo/config.toml"
#: The first line of the cargo configuration bootstrapper writes; its JSON says what was
#: vendored from which upstream archive.
MARKER = "# bootstrapper-vendored: "
#: Directories never searched for manifests: build output, vendored crates, VCS data.
_SKIPPED_DIRS = frozenset(
    {"target", VENDOR_DIR, SPARE_VENDOR_DIR, ".git", ".cargo", "node_modules"}
    | {"test", "tests", "test cases", "testdata", "examples", "benches", "docs"}
)
#: Phrases of cargo's output meaning it could not reach a registry (or was told not to).
_NETWORK_FAILURES = (
    "could not resolve host",
    "could not connect to server",
    "couldn't connect to server",
    "failed to connect",
    "connection refused",
    "timed out",
    "spurious network error",
    "failed to download from",
    "download of config.json failed",
    "failed to fetch",
    "--offline was specified",
    "network failure",
    "ssl connect error",
)

#: How to get past a registry that cannot be reached; shown with the error.
REMEDIES = """\
cargo needs a registry to vendor the crates from, before the build is cut off the network.
Either:
  - configure a registry mirror in cargo's own configuration ($CARGO_HOME/config.toml,
    default ~/.cargo/config.toml):
        [source.crates-io]
        replace-with = "mirror"
        [source.mirror]
        registry = "sparse+https://mirror.example/index/"
    (CARGO_* environment variables work too: bootstrapper runs cargo with your environment);
  - or set `prebuilt: true` in overrides/settings/{name}.yaml to take the upstream wheel."""


@dataclass(frozen=True)
class VendoredCrates:
    """What vendoring put into a source tree: read back from the tree's cargo config."""

    #: The upstream archive's file name and sha256 (what the index serves).
    upstream: str
    upstream_sha256: str
    #: The manifests vendored for, relative to the source root.
    manifests: tuple[str, ...]
    #: ``name version`` of every vendored crate, sorted.
    crates: tuple[str, ...]
    #: The directory holding them, relative to the source root.
    directory: str = VENDOR_DIR

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "cargo vendor",
            "upstream": self.upstream,
            "upstream_sha256": self.upstream_sha256,
            "manifests": list(self.manifests),
            "crates": list(self.crates),
            "directory": self.directory,
        }


@dataclass(frozen=True)
class VendoredSdist:
    """A vendored sdist written by this preparation, with its sha256."""

    path: Path
    sha256: str


# -- pure helpers ----------------------------------------------------------------------


#: Build requirements that mean the package compiles Rust with cargo.
RUST_BUILD_TOOLS = frozenset({"maturin", "setuptools-rust", "puccinialin"})


def builds_rust(build_system: BuildSystem) -> bool:
    """Whether the package says it builds Rust: a Rust build tool among its build
    requirements, or maturin as its backend."""
    return build_system.backend.split(".")[0] == "maturin" or any(
        canonicalize_name(r.name) in RUST_BUILD_TOOLS for r in build_system.requires
    )


def find_manifests(root: Path) -> list[str]:
    """The ``Cargo.toml`` files to vendor for, relative to ``root`` (posix), sorted:
    every manifest except the members inside a workspace already listed, none in build
    output, vendored, test or example directories (numpy's sdist carries meson's Rust
    test cases), and only those with a ``Cargo.lock`` where any has one."""
    found: list[str] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        if "Cargo.toml" in files:
            found.append(Path(directory, "Cargo.toml").relative_to(root).as_posix())
    workspaces = [str(PurePosixPath(m).parent) for m in found if _is_workspace(root / m)]
    tops = [
        m
        for m in found
        if not any(
            _inside(str(PurePosixPath(m).parent), ws) and str(PurePosixPath(m).parent) != ws
            for ws in workspaces
        )
    ]
    # A crate the package builds ships its Cargo.lock (maturin and setuptools-rust sdists
    # do); where some do, the unlocked ones are fixtures of a bundled tool, not inputs.
    locked = [m for m in tops if (root / m).with_name("Cargo.lock").is_file()]
    return sorted(locked or tops)


def _inside(path: str, directory: str) -> bool:
    return directory == "." or path == directory or path.startswith(directory + "/")


def _is_workspace(manifest: Path) -> bool:
    try:
        return "workspace" in tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def vendor_command(cargo: str, manifests: Sequence[str], directory: str = VENDOR_DIR) -> list[str]:
    """One ``cargo vendor`` for every manifest (the first as ``--manifest-path``, the
    others with ``-s``), honouring the user's source replacement (registry mirrors)."""
    first, *others = manifests
    command = [cargo, "vendor", "--respect-source-config", "--manifest-path", first]
    for other in others:
        command += ["--sync", other]
    return [*command, directory]


def registry_unreachable(output: str) -> bool:
    """Whether cargo's output says a registry could not be reached."""
    lowered = output.lower()
    return any(phrase in lowered for phrase in _NETWORK_FAILURES)


def cargo_reason(output: str) -> str:
    """The line of cargo's output that says what went wrong: the innermost cause."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    causes = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith("Caused by:")]
    if causes:
        return causes[-1]
    errors = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "no output"


def cargo_config(vendor_output: str, existing: str | None, marker: Mapping[str, Any]) -> str:
    """The ``.cargo/config.toml`` that makes cargo use the vendored crates offline: the
    source replacement ``cargo vendor`` printed, ``[net] offline = true``, after the
    project's own configuration when it had one."""
    # Empty when there is nothing to replace (no registry dependencies): stay offline.
    tables = vendor_output.strip()
    parts = [MARKER + json.dumps(dict(marker), sort_keys=True)]
    if existing:
        parts.append("# the project's own configuration:\n" + existing.strip())
        parts.append("# bootstrapper: vendored crates")
    if tables:
        parts.append(tables)
    has_net = existing is not None and "net" in _parse_toml(existing)
    if not has_net:
        parts.append("[net]\noffline = true")
    return "\n\n".join(parts) + "\n"


def _parse_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def read_marker(root: Path) -> VendoredCrates | None:
    """What bootstrapper vendored into ``root``, or ``None`` when it did not (or the
    vendored crates are gone)."""
    config = root / CONFIG_PATH
    try:
        first = config.read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith(MARKER):
        return None
    try:
        data = json.loads(first[len(MARKER) :])
        directory = str(data.get("directory", VENDOR_DIR))
        if directory not in (VENDOR_DIR, SPARE_VENDOR_DIR) or not (root / directory).is_dir():
            return None
        return VendoredCrates(
            upstream=str(data["upstream"]),
            upstream_sha256=str(data["upstream_sha256"]),
            manifests=tuple(data["manifests"]),
            crates=vendored_crates(root / directory),
            directory=directory,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def vendored_crates(vendor: Path) -> tuple[str, ...]:
    """``name version`` of each crate in a ``cargo vendor`` directory."""
    crates = []
    for manifest in sorted(vendor.glob("*/Cargo.toml")):
        package = _parse_toml(manifest.read_text(encoding="utf-8", errors="replace")).get(
            "package", {}
        )
        crates.append(f"{package.get('name', manifest.parent.name)} {package.get('version', '?')}")
    return tuple(sorted(crates))


# -- the work: run cargo, write the config and the vendored sdist ----------------------


def vendor_crates(
    root: Path,
    *,
    package: str,
    sdist: Path,
    log: BinaryIO,
    environ: Mapping[str, str] | None = None,
    cargo: str | None = None,
) -> VendoredCrates | None:
    """Vendor the crates of every Cargo manifest under ``root`` (from the upstream
    archive ``sdist``) and configure cargo to use them offline; ``None`` when the tree
    has no Rust code. Runs cargo with ``environ`` (default: this process's)."""
    manifests = find_manifests(root)
    if not manifests:
        return None
    existing_config = _existing_config(root, package)
    if existing_config is not None and "source" in _parse_toml(existing_config):
        log.write(
            b"== the project configures cargo's sources itself (.cargo/config.toml): "
            b"not vendoring\n"
        )
        return None
    cargo = cargo or shutil.which("cargo", path=(environ or os.environ).get("PATH"))
    if cargo is None:
        raise VendoringError(
            f"{package}: its Rust crates could not be vendored: cargo is not installed "
            f"(no 'cargo' on PATH; the source has {', '.join(manifests)})",
            package=package,
            details="install Rust (e.g. with rustup), or set `prebuilt: true` in "
            f"overrides/settings/{package}.yaml to take the upstream wheel",
        )
    directory = SPARE_VENDOR_DIR if (root / VENDOR_DIR).exists() else VENDOR_DIR
    if (root / directory).exists():
        raise VendoringError(
            f"{package}: its Rust crates could not be vendored: the source has both "
            f"{VENDOR_DIR}/ and {SPARE_VENDOR_DIR}/ already",
            package=package,
        )
    command = vendor_command(cargo, manifests, directory)
    log.write(
        f"\n== vendoring Rust crates (network allowed, your cargo configuration applies)\n"
        f"$ {' '.join(command)}\n".encode()
    )
    log.flush()
    result = subprocess.run(
        command,
        cwd=root,
        env=dict(environ if environ is not None else os.environ),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    log.write(result.stderr.encode())
    if result.returncode != 0:
        raise _vendor_failure(package, result.stderr)
    marker = {
        "directory": directory,
        "upstream": sdist.name,
        "upstream_sha256": sha256_file(sdist),
        "manifests": manifests,
    }
    config = cargo_config(result.stdout, existing_config, marker)
    (root / ".cargo").mkdir(exist_ok=True)
    (root / CONFIG_PATH).write_text(config, encoding="utf-8")
    log.write(f"wrote {CONFIG_PATH}:\n{config}".encode())
    vendored = read_marker(root)
    assert vendored is not None
    log.write(f"vendored {len(vendored.crates)} crates into {directory}/\n".encode())
    return vendored


def _existing_config(root: Path, package: str) -> str | None:
    if (root / ".cargo" / "config").exists():
        raise VendoringError(
            f"{package}: its Rust crates could not be vendored: the project has a legacy "
            ".cargo/config, which cargo would read instead of the one bootstrapper writes",
            package=package,
            details="a patch that renames it to .cargo/config.toml fixes this",
        )
    path = root / CONFIG_PATH
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _vendor_failure(package: str, output: str) -> VendoringError:
    reason = cargo_reason(output)
    if registry_unreachable(output):
        return VendoringError(
            f"{package}: its Rust crates could not be vendored: no cargo registry could be "
            f"reached (cargo: {reason})",
            package=package,
            details=REMEDIES.format(name=package),
        )
    return VendoringError(
        f"{package}: its Rust crates could not be vendored: cargo vendor failed (cargo: {reason})",
        package=package,
    )


def write_vendored_sdist(
    sdist: Path, root: Path, dest: Path, epoch: int, directory: str = VENDOR_DIR
) -> VendoredSdist:
    """Write ``dest`` (named like ``sdist``): ``sdist``'s members, with the prepared
    tree's vendored ``directory`` and ``.cargo/config.toml`` added under the same top
    directory.
    Deterministic: sorted members, upstream members' times kept, added files at
    ``epoch``, owners 0, permissions 0644/0755, no compression timestamp."""
    top = _top_directory(sdist)
    added = [
        path
        for path in sorted((root / directory).rglob("*"))
        if path.is_file() and not path.is_symlink()
    ]
    added.append(root / CONFIG_PATH)
    files = {(f"{top}/" if top else "") + path.relative_to(root).as_posix(): path for path in added}
    with replacing(dest) as tmp:
        if sdist.name.lower().endswith(".zip"):
            _write_zip(sdist, tmp, files, epoch)
        else:
            _write_tar(sdist, tmp, files, epoch)
    return VendoredSdist(dest, sha256_file(dest))


def _top_directory(sdist: Path) -> str:
    if sdist.name.lower().endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            names = zf.namelist()
    else:
        with tarfile.open(sdist) as tar:
            names = tar.getnames()
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    if len(tops) == 1 and any(len(PurePosixPath(n).parts) > 1 for n in names):
        return tops.pop()
    return ""


def _executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


_Stream = IO[bytes] | gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile


@contextmanager
def _compressing(sdist: Path, dest: Path) -> Iterator[_Stream]:
    """A stream into ``dest``, compressed as ``sdist``'s name says, with no timestamp in
    the output (so the same members give the same bytes)."""
    name = sdist.name.lower()
    with dest.open("wb") as raw:
        if name.endswith((".tar.gz", ".tgz")):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                yield gz
        elif name.endswith(".tar.bz2"):
            with bz2.BZ2File(raw, "wb") as bz:
                yield bz
        elif name.endswith(".tar.xz"):
            with lzma.LZMAFile(raw, "wb") as xz:
                yield xz
        else:
            yield raw


def _write_tar(sdist: Path, dest: Path, added: Mapping[str, Path], epoch: int) -> None:
    with (
        tarfile.open(sdist) as upstream,
        _compressing(sdist, dest) as stream,
        tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        members: dict[str, tarfile.TarInfo | Path] = {
            m.name: m for m in upstream.getmembers() if m.name.rstrip("/") not in added
        }
        members.update(added)
        for name in sorted(members):
            item = members[name]
            if isinstance(item, Path):
                info = tarfile.TarInfo(name)
                info.size = item.stat().st_size
                info.mtime = epoch
                info.mode = 0o755 if _executable(item) else 0o644
                with item.open("rb") as data:
                    out.addfile(normalized_member(info), data)
            else:
                extracted = upstream.extractfile(item) if item.isfile() else None
                out.addfile(normalized_member(item), extracted)


def _write_zip(sdist: Path, dest: Path, added: Mapping[str, Path], epoch: int) -> None:
    when = time.gmtime(max(epoch, ZIP_EPOCH))[:6]
    with zipfile.ZipFile(sdist) as upstream, zipfile.ZipFile(dest, "w") as out:
        members: dict[str, zipfile.ZipInfo | Path] = {
            i.filename: i for i in upstream.infolist() if i.filename not in added
        }
        members.update(added)
        for name in sorted(members):
            item = members[name]
            if isinstance(item, Path):
                info = zipfile.ZipInfo(name, when)
                info.external_attr = (0o100755 if _executable(item) else 0o100644) << 16
                info.create_system = 3
                data = item.read_bytes()
            else:
                info, data = item, upstream.read(item)
            info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, data, compresslevel=6)


__all__ = [
    "RUST_BUILD_TOOLS",
    "VendoredCrates",
    "VendoredSdist",
    "builds_rust",
    "cargo_config",
    "find_manifests",
    "read_marker",
    "registry_unreachable",
    "vendor_crates",
    "write_vendored_sdist",
]
