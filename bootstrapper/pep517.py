"""Call a project's PEP 517 backend inside a build environment, logging everything.

The hooks of one source tree in one environment are answered by one host process
(:mod:`bootstrapper.hookhost`): the interpreter starts and the backend is imported once,
and each hook runs in a child forked from it, so each still meets a fresh process.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, BinaryIO

from packaging.requirements import InvalidRequirement, Requirement

from .buildenv import BuildEnv
from .buildsystem import BuildSystem
from .cores import BuildExtJobs
from .errors import BuildError, BuildTimeoutError, InvalidSourceError
from .isolation import readonly_view_command
from .profiling import count, timed
from .reproducible import UMASK
from .sandbox import DEFAULT_BUILD_TIMEOUT, TimeLimit, kill_group, start_in_own_group, tracked

HOST = Path(__file__).with_name("hookhost.py")

#: How long a host that was asked to end may take before it is killed.
CLOSE_GRACE = 5.0


class _Missing:
    """The backend does not define the hook (PEP 517: the frontend's default applies)."""


MISSING = _Missing()


class Backend:
    """The PEP 517 hooks of one source tree, run by one environment's interpreter in one
    host process, started at the first call and ended by :meth:`close` (or by the end
    of this process: the host ends with its standard input)."""

    def __init__(
        self,
        source_dir: Path,
        build_system: BuildSystem,
        env: BuildEnv,
        log: BinaryIO,
        *,
        package: str,
        exchange_dir: Path,
        extra_environ: Mapping[str, str] | None = None,
        config_settings: Mapping[str, Any] | None = None,
        command_prefix: Sequence[str] = (),
        base_environ: Mapping[str, str] | None = None,
        time_limit: TimeLimit | None = None,
        writable: Sequence[Path] | None = None,
    ) -> None:
        self._source_dir = source_dir
        self._build_system = build_system
        self._package = package
        self._log = log
        self._env = env
        #: Where a hook's answer is written (a directory the hooks may write).
        self._exchange = exchange_dir
        self._extra = dict(extra_environ or {})
        self._config = dict(config_settings or {}) or None
        # e.g. `unshare --net ...`: the hook runs with no network.
        self._prefix = list(command_prefix)
        #: What the environment is made from (the sandbox's allow-listed part of ours).
        self._base = dict(os.environ if base_environ is None else base_environ)
        self._limit = time_limit or TimeLimit(DEFAULT_BUILD_TIMEOUT, "the default")
        #: With a read-only view of the machine, the directories the hooks may write.
        self._writable = None if writable is None else list(writable)
        self._build_ext: BuildExtJobs | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._replies: IO[bytes] | None = None

    def use_environ(
        self, extra_environ: Mapping[str, str], *, build_ext: BuildExtJobs | None = None
    ) -> None:
        """The variables the next hooks see on top of the clean environment (a new core
        grant's, for one), and how their setuptools ``build_ext`` joins the jobserver."""
        self._extra = dict(extra_environ)
        self._build_ext = build_ext

    @property
    def pid(self) -> int | None:
        """The host's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _environ(self) -> dict[str, str]:
        return self._env.environ(self._extra, base=self._base)

    def _start(self) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        if self._process is not None and self._replies is not None:
            return self._process, self._replies
        self._exchange.mkdir(parents=True, exist_ok=True)
        read_end, write_end = os.pipe()
        cmd = [
            str(self._env.python),
            str(HOST),
            str(write_end),
            str(self._exchange / "result.json"),
            self._build_system.backend,
            json.dumps([str(self._source_dir / p) for p in self._build_system.backend_path]),
        ]
        if self._writable is None:
            full = [*self._prefix, *cmd]
        else:
            full = readonly_view_command(cmd, self._writable, network=bool(self._prefix))
        self._log.flush()
        try:
            self._process = start_in_own_group(
                full,
                cwd=str(self._source_dir),
                env=self._environ(),
                stdout=self._log,
                umask=UMASK,
                pass_fds=(write_end,),
            )
        except OSError as e:
            os.close(read_end)
            raise BuildError(
                f"{self._package}: cannot start the build backend's process: {e}",
                package=self._package,
            ) from e
        finally:
            os.close(write_end)
        count("backend processes")
        self._replies = os.fdopen(read_end, "rb")
        return self._process, self._replies

    def close(self) -> None:
        """End the host, and whatever its hooks left running."""
        process, replies = self._process, self._replies
        self._process = self._replies = None
        if process is None:
            return
        if process.stdin is not None:
            with suppress(OSError):  # it is gone already
                process.stdin.close()
        with suppress(subprocess.TimeoutExpired):  # killed below
            process.wait(timeout=CLOSE_GRACE)
        kill_group(process.pid)
        process.wait()
        if replies is not None:
            replies.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(self, hook: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request and wait, within the time limit, for its answer."""
        process, replies = self._start()
        request = {"hook": hook, "kwargs": dict(kwargs), "environ": self._environ()}
        if self._build_ext is not None:
            request["build_ext"] = self._build_ext.to_json()
        assert process.stdin is not None
        with tracked(process.pid):
            try:
                process.stdin.write(json.dumps(request).encode() + b"\n")
                process.stdin.flush()
            except OSError:
                pass  # it ended: its end of the reply pipe says so below
            deadline = time.monotonic() + self._limit.seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._log.write(
                        f"\n== timed out after {self._limit.seconds:g} s: the backend and "
                        "every process it started were killed\n".encode()
                    )
                    self.close_now()
                    raise BuildTimeoutError(
                        f"{self._package}: the build backend ran longer than the build "
                        f"timeout ({self._limit.describe()}) in {hook}; it was ended with "
                        "every process it started. Raise it with --build-timeout SECONDS, "
                        f"or 'build-timeout: SECONDS' in {self._package}'s settings",
                        package=self._package,
                    )
                ready, _, _ = select.select([replies], [], [], min(left, 3600.0))
                if ready:
                    break
            line = replies.readline()
        if not line:
            status = self.close_now()
            raise BuildError(
                f"{self._package}: the build backend failed in {hook} (exit status {status})",
                package=self._package,
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close_now(self) -> int:
        """Kill the host and what it started; its exit status."""
        process = self._process
        if process is None:
            return 0
        kill_group(process.pid)
        status = process.wait()
        self.close()
        return status

    def _call(self, hook: str, **kwargs: Any) -> Any:
        self._log.write(f"\n== PEP 517 hook {hook}\n".encode())
        with timed(f"hook {hook}"):
            reply = self._ask(hook, kwargs)
        if "value" in reply:
            return reply["value"]
        if reply.get("missing"):
            return MISSING
        if "unavailable" in reply:
            raise BuildError(
                f"{self._package}: cannot import the build backend "
                f"{self._build_system.backend!r} ({reply['unavailable']})",
                package=self._package,
            )
        if "invalid" in reply:
            raise BuildError(
                f"{self._package}: invalid build backend: {reply['invalid']}",
                package=self._package,
            )
        raise BuildError(
            f"{self._package}: the build backend failed in {hook} "
            f"(exit status {reply.get('failed', '?')})",
            package=self._package,
        )

    def requires_for_build_wheel(self) -> list[Requirement]:
        """The backend's extra build requirements (PEP 517 ``get_requires_for_build_wheel``)."""
        raw = self._call("get_requires_for_build_wheel", config_settings=self._config)
        if raw is MISSING:
            return []
        if not isinstance(raw, list):
            raise BuildError(
                f"{self._package}: get_requires_for_build_wheel answered {raw!r}, not a list",
                package=self._package,
            )
        requirements = []
        for item in raw:
            try:
                requirements.append(Requirement(str(item)))
            except InvalidRequirement as e:
                raise InvalidSourceError(
                    f"{self._package}: the backend asked for a malformed requirement {item!r}",
                    package=self._package,
                ) from e
        return requirements

    def prepare_metadata(self, metadata_dir: Path) -> bytes | None:
        """The METADATA the wheel will have, from ``prepare_metadata_for_build_wheel``
        (most backends answer without compiling anything); None if the backend has no
        such hook (never a build in its stead)."""
        metadata_dir.mkdir(parents=True, exist_ok=True)
        name = self._call(
            "prepare_metadata_for_build_wheel",
            metadata_directory=str(metadata_dir),
            config_settings=self._config,
        )
        if name is MISSING:
            return None
        path = metadata_dir / str(name) / "METADATA"
        if not path.is_file():
            raise BuildError(
                f"{self._package}: prepare_metadata_for_build_wheel reported {name!r}, "
                "which holds no METADATA",
                package=self._package,
            )
        return path.read_bytes()

    def build_wheel(self, wheel_dir: Path) -> Path:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        name = self._call(
            "build_wheel", wheel_directory=str(wheel_dir), config_settings=self._config
        )
        if name is MISSING:
            raise BuildError(
                f"{self._package}: the build backend has no build_wheel hook",
                package=self._package,
            )
        path = wheel_dir / str(name)
        if not path.is_file():
            raise BuildError(
                f"{self._package}: the backend reported {name!r} but wrote no such wheel",
                package=self._package,
            )
        return path
