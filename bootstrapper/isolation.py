"""Confining builds with Linux namespaces.

Network: each backend call runs in a new, empty network namespace (``unshare --net``), so
a build that tries to download something fails instead of quietly depending on the
internet. Filesystem: in a new mount namespace, everything but the package's own work
directories is read-only (see ``fsview``), so a build cannot write into the output
directory, the user's home or anywhere else on the machine; in a PID namespace of its
own, so that no process it starts outlives it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError

logger = logging.getLogger(__name__)

UNSHARE_ARGS = ("--net", "--map-current-user")
#: The script that makes the read-only view inside the namespaces.
FSVIEW = Path(__file__).with_name("fsview.py")
#: The same helper in C: compiled once per machine where there is a C compiler, it spares
#: every backend call an interpreter's start (about 12 ms of CPU).
FSVIEW_C = Path(__file__).with_name("fsview.c")
#: What compiles it, the first found.
COMPILERS = ("cc", "gcc", "clang")


def isolation_prefix() -> list[str] | None:
    """The command prefix that runs a program without network, or ``None`` where this
    machine cannot do it (no ``unshare``, no user namespaces, not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, *UNSHARE_ARGS]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if probe.returncode == 0 else None


def required_isolation(enabled: bool) -> list[str]:
    """The prefix for a run that asked for isolation (an error if impossible here), or
    nothing when the user turned it off."""
    if not enabled:
        return []
    prefix = isolation_prefix()
    if prefix is None:
        raise UsageError(
            "cannot cut builds off the network on this machine (needs Linux with "
            "'unshare' and unprivileged user namespaces); rerun with "
            "--no-network-isolation to build with network access"
        )
    return prefix


def helper_cache_dir() -> Path:
    """Where compiled helpers are kept: bootstrapper's folder of the user's cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootstrapper"


def _usable(path: Path) -> bool:
    """A helper this user made and no one else can change."""
    try:
        found = path.stat()
    except OSError:
        return False
    return (
        stat.S_ISREG(found.st_mode)
        and found.st_uid == os.getuid()
        and not found.st_mode & 0o022
        and os.access(path, os.X_OK)
    )


def compiled_view() -> Path | None:
    """The view helper compiled from ``fsview.c``: kept in :func:`helper_cache_dir` by a
    digest of its source, compiled there first if it is not; None where no C compiler
    makes one (or the cache cannot be written)."""
    try:
        source = FSVIEW_C.read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]
    try:
        target = helper_cache_dir() / f"fsview-{digest}"
    except RuntimeError:  # no home directory to be found
        return None
    if _usable(target):
        return target
    compiler = next((c for c in COMPILERS if shutil.which(c)), None)
    if compiler is None:
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fsview-") as tmp:
            made = Path(tmp) / "fsview"
            done = subprocess.run(
                [compiler, "-O2", "-o", str(made), str(FSVIEW_C)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0 or not made.is_file():
                logger.debug("%s could not compile %s: %s", compiler, FSVIEW_C, done.stderr)
                return None
            made.chmod(0o755)
            os.replace(made, target)
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.debug("no compiled view helper: %s", e)
        return None
    return target


def _script() -> list[str]:
    """The view made by fsview.py (-I -S: it needs only the standard library)."""
    return [sys.executable, "-I", "-S", str(FSVIEW)]


def _helpers() -> list[list[str]]:
    """The commands that can make the view, best first: the compiled helper, the script."""
    compiled = compiled_view()
    return [[str(compiled)], _script()] if compiled is not None else [_script()]


def readonly_view_command(
    cmd: Sequence[str],
    writable: Sequence[Path],
    *,
    network: bool,
    helper: Sequence[str] | None = None,
) -> list[str]:
    """``cmd`` run where only ``writable`` (and /dev, /proc) can be written, without
    network too when ``network`` is set, the view made by ``helper`` (by default the one
    the probe found to work). Needs ``readonly_view_problem()`` to be None."""
    unshare = shutil.which("unshare") or "unshare"
    command = [unshare, "--map-root-user", "--mount", *(["--net"] if network else [])]
    # Its own PID namespace too: the backend is its init, so when it ends, the kernel
    # ends every process it left, even one that left its process group (setsid).
    command += ["--pid", "--fork", "--mount-proc"]
    command += helper or _probed_helper()
    for path in writable:
        command += ["--writable", str(path)]
    command += ["--uid", str(os.getuid()), "--gid", str(os.getgid()), "--", *cmd]
    return command


_PROBE = """
import sys
from pathlib import Path
Path(sys.argv[1], "ok").write_text("ok")
try:
    Path(sys.argv[2], "escaped").write_text("no")
except OSError:
    sys.exit(0)
sys.exit(3)
"""


class _Probed:
    """The helper that passed the last probe."""

    helper: list[str] | None = None


def _probed_helper() -> list[str]:
    readonly_view_problem()
    return _Probed.helper or _script()


@functools.cache
def readonly_view_problem() -> str | None:
    """Why builds cannot get a read-only view of the machine here, or ``None`` when they
    can (checked once: a probe writes where it may and fails to write where it may not,
    with the compiled helper, else with the script; the first that passes is used)."""
    _Probed.helper = None
    if not sys.platform.startswith("linux"):
        return "it needs Linux mount namespaces"
    if shutil.which("unshare") is None:
        return "'unshare' (util-linux) is not installed"
    problem = None
    for helper in _helpers():
        problem = _probe(helper)
        if problem is None:
            _Probed.helper = helper
            return None
        logger.debug("the read-only view helper %s failed its probe: %s", helper[0], problem)
    return problem


def _probe(helper: list[str]) -> str | None:
    with tempfile.TemporaryDirectory(prefix="bootstrapper-probe-") as tmp:
        inside, outside = Path(tmp, "inside"), Path(tmp, "outside")
        inside.mkdir()
        outside.mkdir()
        cmd = readonly_view_command(
            [sys.executable, "-I", "-S", "-c", _PROBE, str(inside), str(outside)],
            [inside],
            network=False,
            helper=helper,
        )
        try:
            probe = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"the probe could not run ({e})"
        if probe.returncode == 0 and (inside / "ok").is_file():
            return None
        said = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        return f"no user and mount namespaces for this user ({said})"
