"""Isolated build environments made only of wheels this run built.

Environments are created with uv from local wheel files, offline, ignoring every user
setting: ``PIP_*``/``UV_*`` variables and configuration files never reach the
environment nor the backend running in it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import BuildError
from .reproducible import FIXED_ENVIRONMENT

#: Variables that would let the user's installer or interpreter settings leak into a build.
_LEAKY_PREFIXES = ("PIP_", "UV_", "CONDA_", "PYTHON")
_LEAKY_NAMES = frozenset({"VIRTUAL_ENV", "__PYVENV_LAUNCHER__", "PYTHONPATH", "PYTHONHOME"})


def clean_environ(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without installer and interpreter settings, with pip and uv told to read
    no configuration and use no index should a backend call them."""
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith(_LEAKY_PREFIXES) and key not in _LEAKY_NAMES
    }
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "UV_NO_CONFIG": "1",
            "UV_OFFLINE": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **FIXED_ENVIRONMENT,
        }
    )
    return env


_uv_lock = threading.Lock()


@functools.cache
def find_uv() -> str:
    """The uv binary installed with bootstrapper (the ``uv`` PyPI package); looked up
    once per process."""
    # uv's lookup reads sysconfig, whose first use is not thread-safe on Python 3.11: two
    # Dask tasks starting together on one worker saw a half-made table (EXE was None).
    with _uv_lock:
        return _find_uv()


def _find_uv() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
        raise BuildError(
            "cannot find the uv executable; install bootstrapper with its dependencies"
        ) from None


@dataclass(frozen=True)
class BuildEnv:
    path: Path
    python: Path

    @classmethod
    def at(cls, path: Path) -> BuildEnv:
        scripts = "Scripts" if os.name == "nt" else "bin"
        return cls(
            path=path, python=path / scripts / ("python.exe" if os.name == "nt" else "python")
        )

    @property
    def bin_dir(self) -> Path:
        return self.python.parent

    def environ(
        self, extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The clean environment for a subprocess running inside this build env, made
        from ``base`` (default: ours)."""
        env = clean_environ(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", os.defpath)])
        env["VIRTUAL_ENV"] = str(self.path)
        if extra:
            env.update(extra)
        return env


class EnvFactory:
    """Creates build environments with uv; every call is logged to the build's log."""

    def __init__(self, cache_dir: Path, *, python: str = sys.executable, uv: str | None = None):
        self._cache_dir = cache_dir
        self._python = python
        self._uv = uv or find_uv()

    @property
    def python(self) -> str:
        """The interpreter environments are made for."""
        return self._python

    def _run(self, args: Sequence[str], log: BinaryIO, what: str) -> None:
        env = clean_environ(os.environ)
        log.write(f"$ {' '.join(args)}\n".encode())
        log.flush()
        result = subprocess.run(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"{what} failed (uv exited with {result.returncode})")

    def create(self, path: Path, wheels: Sequence[Path], log: BinaryIO) -> BuildEnv:
        """A fresh environment at ``path`` holding exactly ``wheels``."""
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(
            [
                self._uv,
                "venv",
                "--no-config",
                "--quiet",
                "--no-python-downloads",
                "--cache-dir",
                str(self._cache_dir),
                "--python",
                self._python,
                str(path),
            ],
            log,
            "creating the build environment",
        )
        env = BuildEnv.at(path)
        self.install(env, wheels, log)
        return env

    def install(self, env: BuildEnv, wheels: Sequence[Path], log: BinaryIO) -> None:
        """Install exactly these wheel files (already resolved: no dependency resolution,
        no index)."""
        if not wheels:
            return
        self._run(
            [
                self._uv,
                "pip",
                "install",
                "--no-config",
                "--offline",
                "--no-index",
                "--no-deps",
                "--quiet",
                "--cache-dir",
                str(self._cache_dir),
                "--python",
                str(env.python),
                *(str(w) for w in wheels),
            ],
            log,
            "installing the build requirements",
        )
