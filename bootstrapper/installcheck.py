"""After publishing, install the top-level requirements from the new index alone, the way
users will, into a throw-away environment."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import Requirement

from .buildenv import clean_environ, find_uv
from .errors import BootstrapError
from .fsutil import atomic_write_text


class InstallCheckError(BootstrapError):
    """The published index does not install the requirements it was built for."""


#: A memory-backed directory (Linux's tmpfs): the throw-away environment is made there
#: when it fits well, since it is written once, never read again and then deleted. On
#: disk, the installer's thousands of small files cost the file system's journal several
#: times the install itself (300 small wheels: about 1.2 s on disk, 0.3 s in memory).
MEMORY_DIR = Path("/dev/shm")
#: How many times their size wheels take once installed, and the share of the memory
#: directory's free space an install check may take, up to a cap.
UNPACKED_RATIO = 4
MEMORY_SHARE = 4
MEMORY_CAP = 1 << 30


def fits_in_memory(wheel_bytes: int, free_bytes: int) -> bool:
    """Whether installing wheels of ``wheel_bytes`` in all may use a memory-backed
    directory with ``free_bytes`` free."""
    needed = wheel_bytes * UNPACKED_RATIO
    return needed <= min(free_bytes // MEMORY_SHARE, MEMORY_CAP)


def throwaway_parent(wheel_bytes: int, memory_dir: Path | None = None) -> Path | None:
    """Where to make the throw-away environment for wheels of ``wheel_bytes``: the
    memory-backed directory (``memory_dir``, by default :data:`MEMORY_DIR`) when there
    is one, writable, with room to spare; otherwise None (the temporary directory)."""
    memory_dir = memory_dir or MEMORY_DIR
    if not os.access(memory_dir, os.W_OK | os.X_OK):
        return None
    try:
        stat = os.statvfs(memory_dir)
    except OSError:
        return None
    return memory_dir if fits_in_memory(wheel_bytes, stat.f_bavail * stat.f_frsize) else None


def index_digest(
    simple_dir: Path, requirements: Sequence[Requirement], constraints: Path | None
) -> str:
    """What an install check depends on: the requirements, the constraints and every
    project page of the index."""
    digest = hashlib.sha256()
    for requirement in requirements:
        digest.update(f"{requirement}\n".encode())
    if constraints is not None and constraints.is_file():
        digest.update(constraints.read_bytes())
    for page in sorted(simple_dir.glob("*/index.html")):
        digest.update(page.parent.name.encode() + b"\0" + page.read_bytes())
    return digest.hexdigest()


def check_installable(
    simple_dir: Path,
    requirements: Sequence[Requirement],
    constraints: Path | None = None,
    *,
    stamp: Path | None = None,
    python: Path | None = None,
    wheel_bytes: int | None = None,
) -> bool:
    """Install ``requirements`` (with ``constraints``) from ``simple_dir`` alone, offline,
    into a fresh environment; raise InstallCheckError with the installer's reason.

    With ``stamp``, a check that passed on exactly the same index is not repeated;
    returns whether the check ran. The environment is made with ``python`` (default:
    this interpreter), in memory when ``wheel_bytes`` (the size of the wheels it may
    install) fits there."""
    if not requirements:
        return False
    digest = index_digest(simple_dir, requirements, constraints)
    if stamp is not None and stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    uv = find_uv()
    env = clean_environ(os.environ)
    index_url = simple_dir.absolute().as_uri() + "/"
    parent = None if wheel_bytes is None else throwaway_parent(wheel_bytes)
    with tempfile.TemporaryDirectory(prefix="bootstrapper-installcheck-", dir=parent) as tmp:
        venv = Path(tmp) / "venv"
        # The installer's own temporary files (unpacked wheels) go beside the
        # environment: on the same file system they are moved, not copied.
        env["TMPDIR"] = tmp
        steps = [
            [
                uv,
                "venv",
                "--no-config",
                "--quiet",
                "--no-python-downloads",
                "--python",
                str(python or sys.executable),
                str(venv),
            ],
            [
                uv,
                "pip",
                "install",
                "--no-config",
                "--offline",
                "--no-cache",
                "--quiet",
                "--index-url",
                index_url,
                "--python",
                str(venv / "bin" / "python"),
                *(["--constraint", str(constraints)] if constraints else []),
                *(str(r) for r in requirements),
            ],
        ]
        for args in steps:
            result = subprocess.run(
                args,
                capture_output=True,
                text=True,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if result.returncode != 0:
                reason = (result.stderr or result.stdout).strip()
                raise InstallCheckError(
                    "the published index does not install "
                    + " ".join(str(r) for r in requirements),
                    details=f"installing from {index_url} alone with uv said:\n{reason}",
                )
    if stamp is not None:
        atomic_write_text(stamp, digest + "\n")
    return True
