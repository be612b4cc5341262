"""The Python interpreters a run builds for (``--python``): found by version or path,
and asked once what they are (version, tags, marker environment)."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import packaging
from packaging.markers import default_environment
from packaging.tags import Tag, parse_tag, sys_tags
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .buildenv import clean_environ, find_uv
from .errors import UsageError

#: A version as ``--python`` takes it: ``3.12`` or ``3.12.7``.
_VERSION = re.compile(r"^(?:python)?(\d+)\.(\d+)(?:\.(\d+))?$")

#: Run by the interpreter asked about, with only our ``packaging`` on its path.
_PROBE = """
import json, platform, sys
sys.path.insert(0, sys.argv[1])
from packaging.markers import default_environment
from packaging.tags import sys_tags
print(json.dumps({
    "executable": sys.executable,
    "implementation": sys.implementation.name,
    "version": platform.python_version(),
    "platform": sys.platform,
    "machine": platform.machine(),
    "tags": [str(t) for t in sys_tags()],
    "environment": {k: str(v) for k, v in default_environment().items()},
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """One target interpreter: what resolution evaluates markers and tags for, and what
    build environments are made with."""

    executable: Path
    implementation: str
    version: Version
    platform: str
    machine: str
    tags: tuple[Tag, ...] = field(repr=False, compare=False)
    environment: Mapping[str, str] = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """``3.12``: how records, the build order and file names name it."""
        return f"{self.version.major}.{self.version.minor}"

    @property
    def description(self) -> str:
        """What a build record says of it: ``cpython 3.12.7 (linux, x86_64)``."""
        return f"{self.implementation} {self.version} ({self.platform}, {self.machine})"

    @functools.cached_property
    def tag_set(self) -> frozenset[Tag]:
        return frozenset(self.tags)

    def accepts(self, wheel_name: str) -> bool:
        """Whether a wheel of this file name installs on this interpreter."""
        try:
            tags = parse_wheel_filename(wheel_name)[3]
        except ValueError:
            return False
        return not self.tag_set.isdisjoint(tags)

    def is_current(self) -> bool:
        return self.executable == current().executable


def is_pure(wheel_name: str) -> bool:
    """Whether a wheel of this name installs on any interpreter of its Python major
    version (``py3-none-any``): built once, it serves every target."""
    try:
        tags = parse_wheel_filename(wheel_name)[3]
    except ValueError:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


@functools.cache
def current() -> Interpreter:
    """The interpreter bootstrapper runs under (no subprocess needed)."""
    return Interpreter(
        executable=Path(sys.executable),
        implementation=sys.implementation.name,
        version=Version(platform.python_version()),
        platform=sys.platform,
        machine=platform.machine(),
        tags=tuple(sys_tags()),
        environment={k: str(v) for k, v in default_environment().items()},
    )


def probe(executable: Path) -> Interpreter:
    """Ask ``executable`` what it is; a UsageError says why it cannot be used."""
    if Path(executable).absolute() == Path(sys.executable).absolute():
        return current()
    library = str(Path(packaging.__file__).parent.parent)
    try:
        result = _ask([str(executable), "-I", "-S", "-c", _PROBE, library])
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"cannot run the interpreter {executable}: {e}") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        raise UsageError(
            f"{executable} is not a Python interpreter bootstrapper can build for "
            f"(it exited with {result.returncode}: {tail[0]})"
        )
    try:
        data = json.loads(result.stdout)
        return Interpreter(
            # Its own word: a pyenv shim or a symlink names the interpreter behind it.
            executable=Path(data.get("executable") or executable).absolute(),
            implementation=str(data["implementation"]),
            version=Version(data["version"]),
            platform=str(data["platform"]),
            machine=str(data["machine"]),
            tags=tuple(t for text in data["tags"] for t in parse_tag(text)),
            environment={str(k): str(v) for k, v in data["environment"].items()},
        )
    except (ValueError, KeyError, TypeError, InvalidVersion) as e:
        raise UsageError(f"{executable} answered the interpreter probe oddly: {e}") from None


@functools.cache
def find(spec: str) -> Interpreter:
    """The interpreter ``spec`` names: a path, or a version (``3.12``, ``3.12.7``) looked
    for on PATH, then by uv, then in pyenv's versions."""
    match = _VERSION.match(spec.strip())
    if match is None:
        path = Path(spec).expanduser()
        if not path.exists():
            found = shutil.which(spec)
            if found is None:
                raise UsageError(
                    f"--python {spec}: no such file; give a version (3.12) or the path of "
                    "an interpreter"
                )
            path = Path(found)
        return probe(path)
    major, minor, micro = match.groups()
    wanted = f"{major}.{minor}" + (f".{micro}" if micro else "")
    for candidate in _candidates(major, minor, wanted):
        try:
            interpreter = probe(candidate)
        except UsageError:
            continue
        if _matches(interpreter.version, wanted):
            return interpreter
    raise UsageError(
        f"--python {spec}: no Python {wanted} found on PATH, by uv or in pyenv; "
        "give the interpreter's path instead"
    )


def find_all(specs: Sequence[str]) -> tuple[Interpreter, ...]:
    """The interpreters ``specs`` name, each once, in the order given."""
    found: list[Interpreter] = []
    for spec in specs:
        interpreter = find(spec)
        same = next((i for i in found if i.label == interpreter.label), None)
        if same is not None:
            if same.executable != interpreter.executable:
                raise UsageError(
                    f"--python {spec}: Python {interpreter.label} is given twice "
                    f"({same.executable} and {interpreter.executable}); one index holds "
                    "one build per Python version"
                )
            continue
        found.append(interpreter)
    return tuple(found)


def _ask(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a short question (to an interpreter, to uv) without the user's settings."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=clean_environ(os.environ),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def _matches(version: Version, wanted: str) -> bool:
    parts = [int(p) for p in wanted.split(".")]
    return list(version.release[: len(parts)]) == parts


def _candidates(major: str, minor: str, wanted: str) -> list[Path]:
    names = [f"python{major}.{minor}"]
    found = [Path(p) for p in (shutil.which(n) for n in names) if p]
    if _matches(current().version, wanted):
        found.insert(0, current().executable)
    found.extend(_by_uv(wanted))
    found.extend(_in_pyenv(major, minor, wanted))
    return list(dict.fromkeys(found))


def _by_uv(wanted: str) -> list[Path]:
    try:
        result = _ask([find_uv(), "python", "find", "--no-config", "--no-python-downloads", wanted])
    except (OSError, subprocess.TimeoutExpired):
        return []
    line = result.stdout.strip()
    return [Path(line)] if result.returncode == 0 and line else []


def _in_pyenv(major: str, minor: str, wanted: str) -> list[Path]:
    root = os.environ.get("PYENV_ROOT") or _pyenv_root()
    if root is None:
        return []
    versions = Path(root) / "versions"
    found = []
    for directory in sorted(versions.glob(f"{major}.{minor}*"), reverse=True):
        exe = directory / "bin" / f"python{major}.{minor}"
        try:
            if exe.is_file() and _matches(Version(directory.name), wanted):
                found.append(exe)
        except InvalidVersion:
            continue
    return found


def _pyenv_root() -> str | None:
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        default = Path.home() / ".pyenv"
        return str(default) if default.is_dir() else None
    try:
        result = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
