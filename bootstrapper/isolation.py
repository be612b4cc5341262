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
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError

UNSHARE_ARGS = ("--net", "--map-current-user")
#: The script that makes the read-only view inside the namespaces.
FSVIEW = Path(__file__).with_name("fsview.py")


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


def readonly_view_command(
    cmd: Sequence[str], writable: Sequence[Path], *, network: bool
) -> list[str]:
    """``cmd`` run where only ``writable`` (and /dev, /proc) can be written, without
    network too when ``network`` is set. Needs ``readonly_view_problem()`` to be None."""
    unshare = shutil.which("unshare") or "unshare"
    command = [unshare, "--map-root-user", "--mount", *(["--net"] if network else [])]
    # Its own PID namespace too: the backend is its init, so when it ends, the kernel
    # ends every process it left, even one that left its process group (setsid).
    command += ["--pid", "--fork", "--mount-proc"]
    # -I -S: the script needs only the standard library, and starts in milliseconds.
    command += [sys.executable, "-I", "-S", str(FSVIEW)]
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


@functools.cache
def readonly_view_problem() -> str | None:
    """Why builds cannot get a read-only view of the machine here, or ``None`` when they
    can (checked once: a probe writes where it may and fails to write where it may not)."""
    if not sys.platform.startswith("linux"):
        return "it needs Linux mount namespaces"
    if shutil.which("unshare") is None:
        return "'unshare' (util-linux) is not installed"
    with tempfile.TemporaryDirectory(prefix="bootstrapper-probe-") as tmp:
        inside, outside = Path(tmp, "inside"), Path(tmp, "outside")
        inside.mkdir()
        outside.mkdir()
        cmd = readonly_view_command(
            [sys.executable, "-I", "-S", "-c", _PROBE, str(inside), str(outside)],
            [inside],
            network=False,
        )
        try:
            probe = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"the probe could not run ({e})"
        if probe.returncode == 0 and (inside / "ok").is_file():
            return None
        said = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        return f"no user and mount namespaces for this user ({said})"
