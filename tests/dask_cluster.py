"""A real Dask cluster for the tests: ``dask scheduler`` and ``dask worker`` started as
processes on 127.0.0.1, each worker with its own local directory and none of the test's
files in reach (the coordinator's paths are hidden behind an empty directory where mount
namespaces allow), as workers on other machines would be."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dask_command() -> str:
    """The ``dask`` command of the Python running the tests."""
    beside = Path(sys.executable).parent / "dask"
    return str(beside) if beside.exists() else shutil.which("dask") or "dask"


ROOT = Path(__file__).resolve().parent.parent


def worker_environ() -> dict[str, str]:
    # Like a fresh machine: none of the user's installer settings. The same software as
    # the coordinator, as Dask requires: bootstrapper, and the tests' own task functions.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Cluster:
    root: Path
    hidden: Sequence[Path] = ()
    address: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        log = (self.root / "scheduler.log").open("wb")
        self.scheduler = subprocess.Popen(
            [dask_command(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"],
            stdout=log, stderr=subprocess.STDOUT, env=worker_environ(),
        )  # fmt: skip
        self._wait_listening(port)

    def add_worker(
        self, name: str, resources: Mapping[str, float] | None = None, threads: int = 2
    ) -> None:
        local = self.root / f"worker-{name}"
        local.mkdir(parents=True, exist_ok=True)
        cmd = [
            dask_command(), "worker", self.address, "--name", name, "--nworkers", "1",
            "--nthreads", str(threads), "--no-dashboard", "--local-directory", str(local),
            "--death-timeout", "60",
        ]  # fmt: skip
        if resources:
            cmd += ["--resources", " ".join(f"{k}={v:g}" for k, v in resources.items())]
        log = (self.root / f"worker-{name}.log").open("wb")
        self.workers[name] = subprocess.Popen(
            self._hiding(cmd), stdout=log, stderr=subprocess.STDOUT, env=worker_environ(),
            cwd=local, start_new_session=True,
        )  # fmt: skip

    def _hiding(self, cmd: list[str]) -> list[str]:
        """``cmd`` in a mount namespace where the test's own directories are empty (where
        this machine allows it), so a worker can use nothing it was not sent."""
        unshare = shutil.which("unshare")
        if not self.hidden or unshare is None or not _can_hide(unshare):
            return cmd
        mounts = "; ".join(f"mount -t tmpfs none {str(path)!r}" for path in self.hidden)
        script = f'{mounts}; exec "$@"'
        return [unshare, "--map-root-user", "--mount", "sh", "-c", script, "worker", *cmd]

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        import distributed

        client_class: Any = distributed.Client
        with client_class(self.address, timeout=timeout) as client:
            client.wait_for_workers(count, timeout=timeout)

    def kill_worker(self, name: str) -> None:
        process = self.workers.pop(name)
        os.killpg(process.pid, 9)
        process.wait()

    def _wait_listening(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the Dask scheduler did not listen on {port}")

    def stop(self) -> None:
        """End the workers and the scheduler, and remove the cluster's directory (it
        lies outside pytest's, which the workers must not see, so nothing else would)."""
        for name in list(self.workers):
            self.kill_worker(name)
        if self.scheduler is not None:
            self.scheduler.terminate()
            try:
                self.scheduler.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.scheduler.kill()
                self.scheduler.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.root.glob("*.log"))
        )


def _can_hide(unshare: str) -> bool:
    probe = subprocess.run(
        [unshare, "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs none /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0
