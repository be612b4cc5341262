"""Call a project's PEP 517 backend inside a build environment, logging everything."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyproject_hooks
from packaging.requirements import InvalidRequirement, Requirement

from .buildenv import BuildEnv
from .buildsystem import BuildSystem
from .errors import BuildError, BuildTimeoutError, InvalidSourceError
from .isolation import readonly_view_command
from .profiling import timed
from .reproducible import UMASK
from .sandbox import DEFAULT_BUILD_TIMEOUT, TimeLimit, run_in_own_group


class Backend:
    """The PEP 517 hooks of one source tree, run by one environment's interpreter."""

    def __init__(
        self,
        source_dir: Path,
        build_system: BuildSystem,
        env: BuildEnv,
        log: BinaryIO,
        *,
        package: str,
        extra_environ: Mapping[str, str] | None = None,
        config_settings: Mapping[str, Any] | None = None,
        command_prefix: Sequence[str] = (),
        base_environ: Mapping[str, str] | None = None,
        time_limit: TimeLimit | None = None,
        writable: Sequence[Path] | None = None,
    ) -> None:
        self._package = package
        self._log = log
        self._env = env
        self._extra = dict(extra_environ or {})
        self._config = dict(config_settings or {}) or None
        # e.g. `unshare --net ...`: the hook runs with no network.
        self._prefix = list(command_prefix)
        #: What the environment is made from (the sandbox's allow-listed part of ours).
        self._base = dict(os.environ if base_environ is None else base_environ)
        self._limit = time_limit or TimeLimit(DEFAULT_BUILD_TIMEOUT, "the default")
        #: With a read-only view of the machine, the directories the hooks may write.
        self._writable = None if writable is None else list(writable)
        self._hooks = pyproject_hooks.BuildBackendHookCaller(
            str(source_dir),
            build_system.backend,
            backend_path=list(build_system.backend_path) or None,
            runner=self._runner,
            python_executable=str(env.python),
        )

    def _runner(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = self._env.environ({**self._extra, **(extra_environ or {})}, base=self._base)
        self._log.flush()
        if self._writable is None:
            full = [*self._prefix, *cmd]
        else:
            # The hook caller passes the directory it exchanges its input and output
            # through last; the hook must write its answer there.
            exchange = [Path(cmd[-1])] if cmd and Path(cmd[-1]).is_dir() else []
            full = readonly_view_command(
                cmd, [*self._writable, *exchange], network=bool(self._prefix)
            )
        # Its own process group, so that a timeout ends the backend's children too.
        run_in_own_group(
            full,
            timeout=self._limit.seconds,
            cwd=cwd,
            env=environ,
            stdout=self._log,
            umask=UMASK,
        )

    def _call(self, hook: str, *args: Any) -> Any:
        self._log.write(f"\n== PEP 517 hook {hook}\n".encode())
        method = getattr(self._hooks, hook)
        try:
            with timed(f"hook {hook}"):
                return method(*args)
        except pyproject_hooks.BackendUnavailable as e:
            raise BuildError(
                f"{self._package}: cannot import the build backend {e.backend_name!r}"
                + (f" ({e.args[-1]})" if len(e.args) > 1 and e.args[-1] else ""),
                package=self._package,
            ) from e
        except pyproject_hooks.BackendInvalid as e:
            raise BuildError(
                f"{self._package}: invalid build backend: {e}", package=self._package
            ) from e
        except subprocess.TimeoutExpired as e:
            self._log.write(
                f"\n== timed out after {self._limit.seconds:g} s: the backend and every "
                "process it started were killed\n".encode()
            )
            raise BuildTimeoutError(
                f"{self._package}: the build backend ran longer than the build timeout "
                f"({self._limit.describe()}) in {hook}; it was ended with every process it "
                f"started. Raise it with --build-timeout SECONDS, or 'build-timeout: "
                f"SECONDS' in {self._package}'s settings",
                package=self._package,
            ) from e
        except subprocess.CalledProcessError as e:
            raise BuildError(
                f"{self._package}: the build backend failed in {hook} (exit status {e.returncode})",
                package=self._package,
            ) from e

    def requires_for_build_wheel(self) -> list[Requirement]:
        """The backend's extra build requirements (PEP 517 ``get_requires_for_build_wheel``)."""
        try:
            raw = self._call("get_requires_for_build_wheel", self._config)
        except pyproject_hooks.HookMissing:
            return []
        requirements = []
        for item in raw or []:
            try:
                requirements.append(Requirement(item))
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
        try:
            name = self._call(
                "prepare_metadata_for_build_wheel",
                str(metadata_dir),
                self._config,
                False,  # _allow_fallback: not a whole build for it
            )
        except pyproject_hooks.HookMissing:
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
        name = self._call("build_wheel", str(wheel_dir), self._config)
        path = wheel_dir / str(name)
        if not path.is_file():
            raise BuildError(
                f"{self._package}: the backend reported {name!r} but wrote no such wheel",
                package=self._package,
            )
        return path
