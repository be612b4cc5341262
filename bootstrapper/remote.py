"""Running build units on a Dask cluster (``--dask ADDRESS``).

The coordinating command keeps resolution, the graph, publishing and the index; each
package build is a task on a worker. Workers share no filesystem with the coordinator:
a task's input files travel to the worker through Dask (each file once per run, as one
piece of data keyed by its sha256, which Dask moves to a worker once and keeps there),
are written into the worker's file cache under their sha256 after the hash is checked,
and the task's output files come back as bytes, checked by the coordinator before they
are stored.

Only this module imports Dask, and only when ``--dask`` is given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BootstrapError, BuildError, UsageError
from .fsutil import atomic_write_bytes
from .sandbox import end_backends_of
from .single_build import FileRef

#: How long to wait for the scheduler when connecting.
CONNECT_TIMEOUT = 30.0
#: How often a running task checks whether it was cancelled (seconds).
CANCEL_POLL = 0.5
#: The Dask event topic on which a task says which worker it started on.
STARTED_TOPIC = "bootstrapper-started"


@dataclass(frozen=True)
class TaskFailure:
    """A task's ``BootstrapError``, as plain data (exceptions do not always unpickle)."""

    message: str
    kind: str
    package: str | None
    details: str | None


@dataclass(frozen=True)
class TaskOutcome:
    """What a task gave back: the worker's name, and each output file by role, as its
    file name and bytes, or the failure and the log."""

    worker: str
    files: Mapping[str, tuple[str, bytes]]
    failure: TaskFailure | None = None


#: A unit of work as a task runs it: its spec, its input files by role (local paths on
#: the worker) and an empty work directory in; its output files by role out.
Unit = Callable[[Any, Mapping[str, Path], Path], Mapping[str, Path]]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- on the worker -----------------------------------------------------------------------


def worker_cache(local_directory: Path) -> Path:
    return local_directory / "bootstrapper" / "files"


def materialize(cache: Path, name: str, sha256: str, data: bytes) -> Path:
    """The file ``name`` with these bytes in the worker's cache (written once, checked)."""
    if sha256_of(data) != sha256:
        raise BuildError(f"{name}: the bytes that reached the worker do not match sha256 {sha256}")
    path = cache / sha256 / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    return path


def run_on_worker(
    unit: Unit,
    spec: Any,
    names: Mapping[str, tuple[str, str]],
    blobs: Mapping[str, bytes],
    task: str,
) -> TaskOutcome:
    """The task itself: lay out the inputs, run the unit in a fresh work directory, and
    send back its outputs (or its failure with whatever log it left)."""
    from distributed import get_worker

    worker = get_worker()
    # (Dask adds the worker's address as "worker" to the event: the name goes as "name".)
    worker.log_event(STARTED_TOPIC, {"task": task, "name": str(worker.name)})
    local = Path(worker.local_directory)
    cache = worker_cache(local)
    inputs = {
        role: materialize(cache, name, sha256, blobs[sha256])
        for role, (name, sha256) in names.items()
    }
    work = local / "bootstrapper" / "work" / task
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    done = threading.Event()
    threading.Thread(
        target=_end_when_cancelled,
        args=(worker, worker.get_current_task(), threading.get_ident(), done),
        daemon=True,
    ).start()
    try:
        outputs = unit(spec, inputs, work)
        files = {role: (path.name, path.read_bytes()) for role, path in outputs.items()}
        return TaskOutcome(str(worker.name), files)
    except BootstrapError as e:
        failure = TaskFailure(e.message, type(e).__name__, e.package, e.details)
        logs = [path for path in sorted(work.rglob("*.log")) if path.is_file()]
        sent = {"log": (logs[0].name, logs[0].read_bytes())} if logs else {}
        return TaskOutcome(str(worker.name), sent, failure)
    except Exception as e:  # a bug on the worker becomes a build failure, not a hang
        failure = TaskFailure(
            f"internal error on worker {worker.name}: {type(e).__name__}: {e}",
            "InternalError",
            None,
            traceback.format_exc(),
        )
        return TaskOutcome(str(worker.name), {}, failure)
    finally:
        done.set()
        shutil.rmtree(work, ignore_errors=True)


def _end_when_cancelled(worker: Any, key: Any, thread: int, done: threading.Event) -> None:
    """Dask cannot stop a running task's thread: when the task is cancelled (Ctrl-C on
    the coordinator) or its client goes away, end the backends the task started, which
    makes the build fail at once instead of running on for hours."""
    while not done.wait(CANCEL_POLL):
        state = worker.state.tasks.get(key)
        if state is None or state.state in ("cancelled", "released", "forgotten"):
            end_backends_of(thread)
            return


# -- on the coordinator ------------------------------------------------------------------


class DaskCluster:
    """The cluster a run's builds are sent to; safe to use from several threads."""

    def __init__(self, address: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            import distributed
        except ImportError:
            raise UsageError(
                "--dask needs Dask: pip install 'bootstrapper[dask]' (on the workers too)"
            ) from None
        self.address = address
        try:
            # Dask's API is untyped: kept behind this class.
            client_class: Any = distributed.Client
            self._client: Any = client_class(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        self._lock = threading.Lock()
        self._shipped: dict[str, Any] = {}
        self._running: set[Any] = set()
        self._cancelled = False
        self._on_start: dict[str, Callable[[str], None]] = {}
        self._client.subscribe_topic(STARTED_TOPIC, self._started)

    def _started(self, event: tuple[float, Mapping[str, str]]) -> None:
        _, data = event
        with self._lock:
            callback = self._on_start.get(data.get("task", ""))
        if callback is not None:
            callback(data.get("name", "?"))

    def workers(self) -> list[dict[str, Any]]:
        info: dict[str, Any] = self._client.scheduler_info()
        return list(info.get("workers", {}).values())

    def check_resources(self, package: str, resources: Mapping[str, float]) -> None:
        """Fail at once when no worker of the cluster has ``resources``: the task would
        wait forever."""
        if not resources:
            return
        for worker in self.workers():
            have = worker.get("resources", {})
            if all(have.get(name, 0) >= amount for name, amount in resources.items()):
                return
        wanted = ", ".join(f"{name}={amount:g}" for name, amount in resources.items())
        raise BuildError(
            f"{package}: no worker of the Dask cluster at {self.address} has the resources "
            f"its settings ask for ({wanted}); start one with "
            f"'dask worker {self.address} --resources \"{wanted.replace(', ', ' ')}\"'",
            package=package,
        )

    def _ship(self, file: FileRef) -> Any:
        with self._lock:
            shipped = self._shipped.get(file.sha256)
            if shipped is not None and shipped.status == "finished":
                return shipped
        data = file.path.read_bytes()
        if sha256_of(data) != file.sha256:
            raise BuildError(f"{file.path} changed: its sha256 is no longer {file.sha256}")
        future = self._client.scatter(data, hash=False)
        with self._lock:
            self._shipped[file.sha256] = future
        return future

    def run(
        self,
        unit: Unit,
        spec: Any,
        inputs: Mapping[str, FileRef],
        *,
        task: str,
        resources: Mapping[str, float] | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> TaskOutcome:
        """Run ``unit`` on a worker with ``inputs`` and wait for its outcome. A worker
        lost mid-task has the task run elsewhere (by Dask); data lost with a worker is
        shipped again."""
        names = {role: (file.path.name, file.sha256) for role, file in inputs.items()}
        task = f"{task}-{os.urandom(4).hex()}"
        if on_start is not None:
            with self._lock:
                self._on_start[task] = on_start
        try:
            return self._run(unit, spec, inputs, names, task, resources)
        finally:
            with self._lock:
                self._on_start.pop(task, None)

    def _run(
        self,
        unit: Unit,
        spec: Any,
        inputs: Mapping[str, FileRef],
        names: Mapping[str, tuple[str, str]],
        task: str,
        resources: Mapping[str, float] | None,
    ) -> TaskOutcome:
        from distributed.client import FutureCancelledError

        for attempt in range(3):
            blobs = {file.sha256: self._ship(file) for file in inputs.values()}
            future = self._client.submit(
                run_on_worker, unit, spec, names, blobs, task,
                key=f"bootstrapper-{task}-{attempt}",
                resources=dict(resources or {}) or None, pure=False,
            )  # fmt: skip
            with self._lock:
                self._running.add(future)
            try:
                outcome: TaskOutcome = future.result()
                return outcome
            except FutureCancelledError:
                # Not cancelled by us: the data it needed was on a worker that died (Dask
                # itself moves a task whose worker died, but scattered data has no
                # other copy). Ship what was lost again and resubmit.
                if self._cancelled or attempt == 2:
                    raise
                with self._lock:
                    for sha256, shipped in list(self._shipped.items()):
                        if shipped.status != "finished":
                            del self._shipped[sha256]
            finally:
                with self._lock:
                    self._running.discard(future)
        raise AssertionError("unreachable")

    def cancel(self) -> None:
        """Cancel this run's tasks on the cluster (on interrupt)."""
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        if running:
            self._client.cancel(running, force=True)

    def close(self) -> None:
        self.cancel()
        self._client.close()
