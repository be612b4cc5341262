"""The run's scheduler: memoized tasks, the waits-for graph between them, job slots.

Scheduling is asyncio on one thread; every blocking step runs in a worker thread. Each
key gets at most one task per run, and a task that waits for others says so first, so a
cycle among them is an error that names it instead of a deadlock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from .errors import BuildCycleError
from .graph import NodeKey

T = TypeVar("T")
V = TypeVar("V")

#: Seconds between checks, by a thread waiting on the run's loop, that the run goes on.
RUN_OVER_POLL = 0.5


class Scheduler(Generic[V]):
    """One task (producing a ``V``) per key, at most ``jobs`` of them in a job slot."""

    def __init__(self, jobs: int, *, threads: int = 64) -> None:
        self._jobs_wanted = max(1, jobs)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bootstrap")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: dict[NodeKey, asyncio.Future[V]] = {}
        #: The waits-for graph: owner -> the keys it waits for (plain dicts: networkx
        #: costs more to import than a run spends here; it names a cycle when there is one).
        self._waits: dict[NodeKey, dict[NodeKey, None]] = {}
        self._wait_edges: list[tuple[NodeKey, NodeKey]] = []
        #: Set when the run is over: threads still waiting on the run's loop give up.
        self._over = threading.Event()

    def start(self) -> None:
        """Bind to the running loop (called first thing inside it)."""
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self._jobs_wanted)

    def close(self) -> None:
        self._over.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- tasks -----------------------------------------------------------------------

    def ensure(
        self, key: NodeKey, make: Callable[[], Coroutine[Any, Any, V]], on_new: Callable[[], None]
    ) -> asyncio.Future[V]:
        """The task of ``key``, created by ``make`` the first time (then ``on_new``);
        shielded, so one waiter's cancellation does not cancel the shared task."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._tasks[key] = task
            on_new()
        return asyncio.shield(task)

    def result(self, key: NodeKey) -> V:
        return self._tasks[key].result()

    def succeeded(self) -> set[NodeKey]:
        """The keys whose task finished with a result."""
        return {
            key
            for key, task in self._tasks.items()
            if task.done() and not task.cancelled() and task.exception() is None
        }

    async def cancel_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- waits-for graph -------------------------------------------------------------

    def wait_for(self, owner: NodeKey, keys: Sequence[NodeKey], chain: Sequence[str]) -> None:
        """Record that ``owner``'s task waits for ``keys``; refuse a cycle."""
        for key in keys:
            if key == owner or self._reaches(key, owner):
                path = [owner] if key == owner else self._shortest_path(key, owner)
                ring = [owner, *path[:-1]] if key != owner else [owner]
                # Start the cycle where the user's chain first enters it.
                start = next((i for name in chain for i, k in enumerate(ring) if k.name == name), 0)
                ring = ring[start:] + ring[:start]
                cycle = [*ring, ring[0]]
                raise BuildCycleError(
                    "build cycle: " + " -> ".join(str(k) for k in cycle),
                    package=owner.name,
                    chain=chain,
                    details="each of these needs the next one built before it can be built",
                )
            waited = self._waits.setdefault(owner, {})
            if key not in waited:
                waited[key] = None
                self._wait_edges.append((owner, key))

    def _reaches(self, start: NodeKey, goal: NodeKey) -> bool:
        """Whether ``start`` waits, through any number of others, for ``goal``."""
        seen = {start}
        todo = [start]
        while todo:
            for key in self._waits.get(todo.pop(), ()):
                if key == goal:
                    return True
                if key not in seen:
                    seen.add(key)
                    todo.append(key)
        return False

    def _shortest_path(self, start: NodeKey, goal: NodeKey) -> list[NodeKey]:
        """The shortest chain of waits from ``start`` to ``goal`` (an error path)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_edges_from(self._wait_edges)
        path: list[NodeKey] = nx.shortest_path(graph, start, goal)
        return path

    # -- slots and threads -----------------------------------------------------------

    def slot(self) -> asyncio.Semaphore:
        """A job slot: held while a backend runs."""
        assert self._slots is not None
        return self._slots

    async def in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def from_thread(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the run's loop from another thread and wait for it; give up
        (RuntimeError) once the run is over, so a thread never waits for ever."""
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(work, self._loop)
        except RuntimeError:  # the run is over (its loop closed)
            work.close()
            raise
        # The run may end before the work is even scheduled.
        while True:
            try:
                return future.result(timeout=RUN_OVER_POLL)
            except TimeoutError:
                if self._over.is_set():
                    future.cancel()
                    work.close()
                    raise RuntimeError("the run is over: nothing to build for") from None

    def start_from_thread(self, work: Coroutine[Any, Any, Any]) -> None:
        """Start ``work`` on the run's loop from another thread, without waiting for it
        (its outcome is the business of whoever awaits the task it makes)."""
        assert self._loop is not None
        if self._over.is_set():
            work.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(work, self._loop)
        except RuntimeError:  # the run is over (its loop closed)
            work.close()
