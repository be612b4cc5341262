"""What confines a backend call: an allow-listed environment with its own HOME and TMPDIR,
and a time limit that ends the backend's whole process group.

A build sees only the variables named here (plus the settings' ``env``, bootstrapper's
fixed variables and those the user passes with ``--pass-env``), so that cloud keys,
tokens and the user's tool configuration never reach a build script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import affinity

#: Three hours: long enough for the big C++ trees on a few cores; raise it per package
#: (``build-timeout:``) for the known-long ones.
DEFAULT_BUILD_TIMEOUT = 3 * 60 * 60

#: Variables of the user's environment every build sees.
BASE_VARIABLES = frozenset({"PATH", "LANG", "TZ", "TERM"})
BASE_PREFIXES = ("LC_",)
#: What recipes and build systems read to find and drive the compilers and libraries.
TOOLCHAIN_VARIABLES = frozenset(
    {
        # C, C++ and Fortran compilers and their flags
        "CC", "CXX", "CPP", "FC", "F77", "F90", "LD", "AR", "NM", "RANLIB", "STRIP",
        "CFLAGS", "CXXFLAGS", "CPPFLAGS", "FFLAGS", "FCFLAGS", "LDFLAGS",
        "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "LIBRARY_PATH", "LD_LIBRARY_PATH",
        "MAKEFLAGS", "NINJAFLAGS",
        "PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR",
        # Rust: where rustup keeps the toolchains, and which one
        "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "RUSTFLAGS",
        # GPU toolchains
        "CUDA_HOME", "CUDA_PATH", "CUDACXX", "ROCM_PATH", "HIP_PATH",
        "MACOSX_DEPLOYMENT_TARGET",
    }
)  # fmt: skip
TOOLCHAIN_PREFIXES = ("CMAKE_",)


@dataclass(frozen=True)
class Sandbox:
    """How every backend call of a run is confined."""

    #: Names of the user's variables passed to builds as they are (``--pass-env``).
    pass_env: tuple[str, ...] = ()
    #: Seconds one backend call may run, unless the package's settings say otherwise.
    timeout: float = DEFAULT_BUILD_TIMEOUT
    #: Where ``timeout`` was set, for the error that reports it.
    timeout_origin: str = "the default"
    #: Whether a backend sees the machine read-only but for its own work directories.
    readonly_view: bool = False
    #: How many cores the run's builds share (``--cores``; None: every usable CPU).
    cores: int | None = None


@dataclass(frozen=True)
class TimeLimit:
    seconds: float
    origin: str

    def describe(self) -> str:
        return f"{self.seconds:g} s, set by {self.origin}"


def allowed(name: str, pass_env: Sequence[str] = ()) -> bool:
    return (
        name in BASE_VARIABLES
        or name.startswith(BASE_PREFIXES)
        or name in TOOLCHAIN_VARIABLES
        or name.startswith(TOOLCHAIN_PREFIXES)
        or name in pass_env
    )


def sandbox_environ(
    base: Mapping[str, str], scratch: Path, pass_env: Sequence[str] = ()
) -> dict[str, str]:
    """The allow-listed part of ``base``, with ``HOME`` and the temporary directory in
    ``scratch`` (which must exist with ``home`` and ``tmp`` in it)."""
    env = {key: value for key, value in base.items() if allowed(key, pass_env)}
    home, tmp = scratch / "home", scratch / "tmp"
    env.update(HOME=str(home), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
    # A rustup-installed cargo finds its toolchains through RUSTUP_HOME, by default under
    # the user's home, which the build no longer has; cargo's own caches go to scratch.
    if "RUSTUP_HOME" not in env:
        rustup = Path(base.get("HOME", "~")).expanduser() / ".rustup"
        if rustup.is_dir():
            env["RUSTUP_HOME"] = str(rustup)
    env["CARGO_HOME"] = str(scratch / "cargo")
    return env


def make_scratch(scratch: Path) -> Path:
    """Create ``scratch`` with an empty ``home`` and ``tmp``."""
    for part in ("home", "tmp"):
        (scratch / part).mkdir(parents=True, exist_ok=True)
    return scratch


# -- running a backend in its own process group ----------------------------------------

#: Process groups of backends running now, so that an interrupted run can end them: they
#: are not in our process group, which is what a terminal's Ctrl-C reaches.
_running: dict[int, int] = {}  # process group -> the thread that started it
# Re-entrant: a signal handler may take it in a thread that holds it.
_running_lock = threading.RLock()


@contextmanager
def tracked(pgid: int) -> Iterator[None]:
    """Within the block, an interrupt (or the end of this thread's task) kills ``pgid``."""
    with _running_lock:
        _running[pgid] = threading.get_ident()
    try:
        yield
    finally:
        with _running_lock:
            _running.pop(pgid, None)


def kill_group(pgid: int) -> None:
    """Kill every process of the group ``pgid`` (gone already: nothing to do)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def end_backends_of(thread: int) -> None:
    """Kill the backend process groups that ``thread`` started and that still run (a
    build cancelled while its thread cannot be stopped: a Dask task)."""
    with _running_lock:
        groups = [pgid for pgid, owner in _running.items() if owner == thread]
    for pgid in groups:
        kill_group(pgid)


#: What else ends this run's builds on interrupt (a Dask cluster's tasks of this run).
_cancellers: list[Callable[[], None]] = []


@contextmanager
def cancelled_on_interrupt(cancel: Callable[[], None]) -> Iterator[None]:
    """Within the block, an interrupt also calls ``cancel``."""
    with _running_lock:
        _cancellers.append(cancel)
    try:
        yield
    finally:
        with _running_lock:
            _cancellers.remove(cancel)


def end_running_backends() -> None:
    """Kill every backend process group still running, and cancel builds running
    elsewhere (on interrupt)."""
    with _running_lock:
        groups = list(_running)
        cancellers = list(_cancellers)
    for pgid in groups:
        kill_group(pgid)
    for cancel in cancellers:
        with suppress(Exception):  # the run is ending; a cluster gone is no news
            cancel()


def start_in_own_group(
    cmd: Sequence[str],
    *,
    cwd: str | None,
    env: Mapping[str, str],
    stdout: IO[Any],
    umask: int,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session (so its own process group, which :func:`kill_group`
    ends whole), its output and errors into ``stdout``, a pipe on its standard input."""
    affinity.release()  # a backend: the run builds now, on every core
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdout=stdout,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        umask=umask,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
