"""The run's core budget: how many cores each build may use, so that one compile running
alone gets every core and builds running together share them without oversubscribing.

Two mechanisms, because build tools differ:

* a GNU make **jobserver** shared by every build of the run: a named FIFO holding one
  token per core (``--jobserver-auth=fifo:PATH``, as GNU make 4.4 exports it). Each
  build takes one token for itself while it runs (the implicit slot of the make, ninja
  or cargo it starts); every further parallel job of a tool that joins the jobserver
  takes a token and gives it back. So the builds never run more jobs than there are
  cores, and a build that runs alone can have them all. Asking a backend for its
  requirements or metadata takes none: resolution never waits for a compile.
* for tools that do not speak the jobserver, fixed numbers decided when the build starts:
  ``MAX_JOBS``, ``CMAKE_BUILD_PARALLEL_LEVEL``, ``CARGO_BUILD_JOBS``,
  ``NPY_NUM_BUILD_JOBS``, make's ``-jN`` where the make on PATH is older than 4.4, and
  setuptools' parallel ``build_ext`` (a ``[build_ext] parallel`` config file named by
  ``DIST_EXTRA_CONFIG``). The rule: a build gets the cores not promised to builds
  already running (at least 1), and promises them while it runs. setuptools'
  ``build_ext`` is then joined to the jobserver by the backend's host
  (:func:`bootstrapper.extjobs.join_build_ext`), so it grows past that share as the
  other builds end.

A package's settings may ask for more: ``exclusive: true`` (wait until nothing else runs;
nothing else starts while it waits or runs; it gets every core), ``cores: N`` (wait until
N cores are not promised; get N) and ``memory: SIZE`` (wait until that much of the
machine's memory is not promised to other running builds).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .affinity import given_cpus

#: Variables for tools that do not join the jobserver: each is set to the build's share
#: (PyTorch-style ``MAX_JOBS``, ``cmake --build``, cargo, numpy.distutils).
SHARE_VARIABLES = (
    "MAX_JOBS",
    "CMAKE_BUILD_PARALLEL_LEVEL",
    "CARGO_BUILD_JOBS",
    "NPY_NUM_BUILD_JOBS",
)
#: The jobserver directories' names in the temporary directory, and the file whose lock
#: says the run that made one is alive.
JOBSERVER_PREFIX = "bootstrapper-jobserver-"
OWNER = "owner"
#: The file in the jobserver's directory that says how many builds wait for a token
#: (ASCII digits): the jobs a setuptools ``build_ext`` runs past its share leave tokens
#: to them.
WAITING = "waiting"
#: Seconds between checks, by a build waiting for a token, that the run goes on.
POLL = 0.2
#: The token GNU make writes (any byte works; make gives back the byte it took).
TOKEN = b"+"
#: The first GNU make that joins a jobserver by ``fifo:PATH``; older ones stop with
#: "invalid --jobserver-auth string", so they get a fixed ``-jN`` instead.
FIFO_MAKE = (4, 4)

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGT])(?:i?B)?|B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """Bytes in ``text`` (``8G``, ``512MiB``, ``1.5GB``, ``1048576``; units are binary,
    as Docker's ``--memory``), or None when it is not a size."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    unit = (match.group(2) or "").upper()
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask as it was given, where the
    OS has one)."""
    return max(1, len(given_cpus()) or os.cpu_count() or 1)


def machine_memory() -> int:
    """The machine's physical memory in bytes (0 where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


def make_version(path: str | None) -> tuple[int, ...] | None:
    """The version of GNU make on ``path`` (the builds' PATH), or None without one."""
    make = shutil.which("make", path=path)
    if make is None:
        return None
    try:
        out = subprocess.run(
            [make, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"GNU Make (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0,)


@dataclass(frozen=True)
class Demand:
    """What a build asks of the budget (from its settings)."""

    exclusive: bool = False
    cores: int | None = None
    memory: int | None = None


@dataclass(frozen=True)
class BuildExtJobs:
    """setuptools' parallel ``build_ext`` joined to the run's jobserver by the backend's
    host (:func:`bootstrapper.extjobs.join_build_ext`): where its config file gave the
    build's ``share``, up to ``most`` extensions build at once, each past the share
    holding a token of the FIFO at ``fifo`` while it builds, and taking none while the
    file ``waiting`` counts builds waiting for one."""

    fifo: str
    share: int
    most: int
    #: The budget's count of builds waiting for a token (:data:`WAITING`).
    waiting: str

    def to_json(self) -> dict[str, Any]:
        return {"fifo": self.fifo, "share": self.share, "most": self.most, "waiting": self.waiting}


@dataclass(frozen=True)
class Grant:
    """The budget one backend call got, and the variables that tell its tools."""

    cores: int
    machine: int
    demand: Demand = Demand()
    #: ``fifo:PATH`` of the run's jobserver, or None (no budget: a Dask worker).
    jobserver: str | None = None
    #: Whether ``MAKEFLAGS`` names the jobserver (GNU make >= 4.4 on the builds' PATH),
    #: or gives make a fixed ``-jN``.
    make_joins: bool = False
    #: Other builds running when this one started.
    alongside: int = 0
    #: The cores other builds see as taken while it runs (0 for a light call: asking a
    #: backend for its requirements compiles nothing as a rule).
    promised: int = 0
    variables: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What the build record keeps of it."""
        data: dict[str, Any] = {
            "cores": self.cores,
            "machine": self.machine,
            "alongside": self.alongside,
            "jobserver": self.jobserver is not None,
            "make": "jobserver" if self.make_joins else f"-j{self.cores}",
            "variables": dict(sorted(self.variables.items())),
        }
        if self.demand != Demand():
            data["settings"] = demand_json(self.demand)
        return data

    def build_ext_jobs(self) -> BuildExtJobs | None:
        """How setuptools' ``build_ext`` may grow past the share as other builds end:
        to every core of the budget, or to the share where the build's settings ask
        cores or memory of their own. None for a light call, or without a jobserver."""
        if self.jobserver is None or not self.promised:
            return None
        own = self.demand.cores is not None or self.demand.memory is not None
        most = self.cores if own else self.machine
        fifo = Path(self.jobserver.removeprefix("fifo:"))
        return BuildExtJobs(str(fifo), self.cores, most, str(fifo.with_name(WAITING)))

    def describe(self) -> str:
        how = "joined to the run's jobserver" if self.jobserver else "no jobserver"
        return (
            f"cores: {self.cores} of {self.machine} ({self.alongside} other build(s) "
            f"running; {how}; make {'joins it' if self.make_joins else f'-j{self.cores}'})"
        )


def demand_json(demand: Demand) -> dict[str, Any]:
    """A demand as settings write it (for records and build orders)."""
    data: dict[str, Any] = {}
    if demand.exclusive:
        data["exclusive"] = True
    if demand.cores is not None:
        data["cores"] = demand.cores
    if demand.memory is not None:
        data["memory"] = format_size(demand.memory)
    return data


def demand_from_json(data: Mapping[str, Any]) -> Demand:
    memory = data.get("memory")
    return Demand(
        exclusive=bool(data.get("exclusive", False)),
        cores=int(data["cores"]) if data.get("cores") is not None else None,
        memory=parse_size(str(memory)) if memory is not None else None,
    )


def share_variables(cores: int) -> dict[str, str]:
    """What tools that do not join the jobserver read for their number of jobs."""
    return {name: str(cores) for name in SHARE_VARIABLES}


def claim(directory: Path) -> int:
    """Lock ``directory`` as this process's, for as long as the returned descriptor is
    open: the kernel drops the lock however the process ends (``kill -9`` included)."""
    part = directory / f"{OWNER}.part"
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a new file: nobody else can hold it
    # Only now under its name: a run that looks for abandoned directories never sees it
    # unlocked.
    os.replace(part, directory / OWNER)
    return fd


def remove_abandoned(parent: Path) -> None:
    """Remove the jobserver directories in ``parent`` of runs that ended without removing
    their own (killed): the lock of a live run's owner file is held."""
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith(JOBSERVER_PREFIX)]
    except OSError:
        return
    for entry in entries:
        try:
            if not (
                entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_uid == os.getuid()
            ):
                continue
            fd = os.open(Path(entry.path) / OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # no owner file (being made, or an older version's): left alone
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its run is alive
            os.close(fd)
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        os.close(fd)


def merge_makeflags(user: str | None, ours: str) -> str:
    """The user's ``MAKEFLAGS`` without its job settings, then ours (which win)."""
    kept = [
        word
        for word in (user or "").split()
        if not re.fullmatch(r"-j[0-9]*|--jobs(=[0-9]*)?|--jobserver-(auth|fds)=.*", word)
    ]
    return " ".join([*kept, ours])


class CoreBudget:
    """The cores of this machine shared by the builds of one run. The jobserver FIFO is
    made by the first lease and removed by :meth:`close` (or leaving the ``with``); a run
    that was killed leaves its directory to the next run, which removes it."""

    def __init__(
        self,
        cores: int | None = None,
        *,
        memory: int | None = None,
        make_joins: bool | None = None,
    ) -> None:
        self.total = max(1, cores or usable_cores())
        self.memory = machine_memory() if memory is None else memory
        self._make_joins = make_joins
        self._dir: Path | None = None
        self._fd = -1
        self._owner = -1
        self._waiting_fd = -1
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._lock = threading.Condition()
        self._running: dict[int, Grant] = {}
        self._exclusive_waiting = 0
        self._closed = False

    def _start(self) -> Path:
        """The jobserver's directory, made (with the FIFO full of tokens) on first use."""
        if self._dir is None:
            if self._make_joins is None:
                version = make_version(os.environ.get("PATH"))
                self._make_joins = version is None or version >= FIFO_MAKE
            remove_abandoned(Path(tempfile.gettempdir()))
            directory = Path(tempfile.mkdtemp(prefix=JOBSERVER_PREFIX))
            self._owner = claim(directory)
            os.mkfifo(directory / "fifo", 0o600)
            # Read and write ends in one descriptor: opening never blocks, and the FIFO
            # never reads as closed while the budget lives. Backends reach it under their
            # read-only view of the machine: a FIFO's I/O writes nothing to its file system.
            self._fd = os.open(directory / "fifo", os.O_RDWR | os.O_NONBLOCK)
            os.write(self._fd, TOKEN * self.total)
            self._waiting_fd = os.open(directory / WAITING, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            self._count_waiting(0)
            self._dir = directory
        return self._dir

    @property
    def make_joins(self) -> bool:
        """Whether make joins the jobserver (GNU make >= 4.4, or no make, on PATH)."""
        with self._lock:
            self._start()
            return bool(self._make_joins)

    @property
    def fifo(self) -> Path:
        with self._lock:
            return self._start() / "fifo"

    def __enter__(self) -> CoreBudget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            if self._dir is not None:
                for fd in (self._fd, self._waiting_fd):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                shutil.rmtree(self._dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.close(self._owner)

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # -- leases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(
        self, demand: Demand = Demand(), *, user_makeflags: str | None = None, light: bool = False
    ) -> Iterator[Grant]:
        """Wait until ``demand`` can be met, take the cores and one jobserver token for
        the duration of the block. A ``light`` call (a hook that compiles nothing as a
        rule: asking a backend its requirements or metadata) takes no token and promises
        no cores, so that resolution never waits for a compile to end."""
        grant = self._admit(demand, user_makeflags, light)
        ident = id(grant)
        if not light:
            try:
                self._take_token()
            except BaseException:
                self._leave(ident)
                raise
        try:
            yield grant
        finally:
            if not light:
                self._give_token()
            self._leave(ident)

    def _promised(self) -> tuple[int, int]:
        return (
            sum(g.promised for g in self._running.values()),
            sum(g.demand.memory or 0 for g in self._running.values()),
        )

    def _fits(self, demand: Demand) -> bool:
        if any(g.demand.exclusive for g in self._running.values()):
            return False
        if demand.exclusive:
            return not self._running
        cores, memory = self._promised()
        if (
            demand.cores is not None
            and self._running
            and cores + min(demand.cores, self.total) > self.total
        ):
            return False
        # A build that asks for more memory than the machine has runs when nothing else does.
        return not (demand.memory and self._running and memory + demand.memory > self.memory)

    def _admit(self, demand: Demand, user_makeflags: str | None, light: bool) -> Grant:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run is over: no cores to lease")
            directory = self._start()
            if demand.exclusive:
                self._exclusive_waiting += 1
            try:
                # An exclusive build waiting goes first: nothing else starts meanwhile.
                while not self._closed and not (
                    self._fits(demand) and (demand.exclusive or not self._exclusive_waiting)
                ):
                    self._lock.wait(POLL)
                if self._closed:
                    raise RuntimeError("the run is over: no cores to lease")
            finally:
                if demand.exclusive:
                    self._exclusive_waiting -= 1
            promised, _ = self._promised()
            if light:
                cores = 1
            elif demand.exclusive:
                cores = self.total
            elif demand.cores is not None:
                cores = min(demand.cores, self.total)
            else:
                cores = max(1, self.total - promised)
            grant = Grant(
                cores=cores,
                machine=self.total,
                demand=demand,
                jobserver=f"fifo:{directory / 'fifo'}",
                make_joins=bool(self._make_joins),
                alongside=sum(1 for g in self._running.values() if g.promised),
                promised=0 if light else cores,
                variables=self._variables(directory, cores, user_makeflags),
            )
            self._running[id(grant)] = grant
            return grant

    def _variables(self, directory: Path, cores: int, user_makeflags: str | None) -> dict[str, str]:
        fifo = f"-j --jobserver-auth=fifo:{directory / 'fifo'}"
        make = fifo if self._make_joins else f"-j{cores}"
        return {
            **share_variables(cores),
            # setuptools (and distutils) read one more config file from here.
            "DIST_EXTRA_CONFIG": str(self._build_ext_config(directory, cores)),
            "MAKEFLAGS": merge_makeflags(user_makeflags, make),
            # cargo (and the jobserver crate) look here first: they join the jobserver
            # whatever the make on PATH is.
            "CARGO_MAKEFLAGS": fifo,
        }

    @staticmethod
    def _build_ext_config(directory: Path, cores: int) -> Path:
        """A distutils config file that runs ``build_ext`` with ``cores`` jobs."""
        path = directory / f"build_ext-{cores}.cfg"
        if not path.exists():
            part = path.with_suffix(".part")
            part.write_text(f"[build_ext]\nparallel = {cores}\n", encoding="utf-8")
            part.replace(path)
        return path

    def _leave(self, ident: int) -> None:
        with self._lock:
            self._running.pop(ident, None)
            if not self._running:
                self._refill()
            self._lock.notify_all()

    def _refill(self) -> None:
        """With no build running every token is home: put back any a killed tool lost."""
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 4096):
                pass
        os.write(self._fd, TOKEN * self.total)

    def _take_token(self) -> None:
        if self._read_token():
            return
        # Counted while it waits: build_ext's jobs past their share leave tokens to it.
        self._count_waiting(+1)
        try:
            while not self._read_token():
                if self._closed:
                    raise RuntimeError("the run is over: no cores to lease")
                with contextlib.suppress(OSError, ValueError):
                    select.select([self._fd], [], [], POLL)
        finally:
            self._count_waiting(-1)

    def _read_token(self) -> bool:
        with contextlib.suppress(BlockingIOError):
            return bool(os.read(self._fd, 1))
        return False

    def _count_waiting(self, change: int) -> None:
        with self._waiting_lock:
            self._waiting += change
            with contextlib.suppress(OSError):
                # Fixed width: a reader never sees a shorter number's leftover digits.
                os.pwrite(self._waiting_fd, f"{self._waiting:<8}".encode(), 0)

    def _give_token(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._fd, TOKEN)
