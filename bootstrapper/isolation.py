"""Cutting builds off the network: each backend call runs in a new, empty network
namespace (``unshare --net``), so a build that tries to download something fails instead
of quietly depending on the internet."""

from __future__ import annotations

import shutil
import subprocess
import sys

from .errors import UsageError

UNSHARE_ARGS = ("--net", "--map-current-user")


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
