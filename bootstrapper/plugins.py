"""Plugins: code for what declarative settings cannot express.

A plugin is an entry point in the group ``bootstrapper.overrides`` whose name is a
package name (normalized) and whose object (usually a module) defines any of:

``fetch_source(context) -> Path | None``
    Return a local source archive (sdist-like ``.tar.gz`` or ``.zip``) to build instead
    of the index's sdist, or ``None`` to keep the default.
``prepare_source(context, source_dir) -> None``
    Change the unpacked source tree, after the patches and before the build
    requirements are read.
``build_wheel(context, source_dir, wheel_dir) -> Path | None``
    Build the wheel into ``wheel_dir`` instead of calling the PEP 517 backend (the build
    environment is ready: ``context.python`` is its interpreter), or return ``None`` to
    let the backend build.

Hooks get a :class:`PluginContext`; what they print goes to the package's build log
through ``context.log``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from .errors import BootstrapError

GROUP = "bootstrapper.overrides"
HOOKS = ("fetch_source", "prepare_source", "build_wheel")
logger = logging.getLogger(__name__)


class PluginError(BootstrapError):
    """A plugin could not be loaded or one of its hooks failed."""


@dataclass(frozen=True)
class PluginContext:
    name: NormalizedName
    version: Version
    #: The package's settings (a :class:`bootstrapper.settings.PackageSettings`).
    settings: Any
    work_dir: Path
    #: Environment variables from the settings, for the build.
    env: Mapping[str, str] = field(default_factory=dict)
    #: The build environment's interpreter, once there is one.
    python: Path | None = None
    log: Callable[[str], None] = lambda text: None


class Plugins:
    """The plugins installed for this interpreter, by package name."""

    def __init__(self, found: Mapping[NormalizedName, object] | None = None) -> None:
        self._plugins = dict(found or {})

    @classmethod
    def discover(cls) -> Plugins:
        found: dict[NormalizedName, object] = {}
        for entry in entry_points(group=GROUP):
            try:
                found[canonicalize_name(entry.name)] = entry.load()
            except Exception as e:
                raise PluginError(
                    f"cannot load the {GROUP} plugin {entry.name!r} ({entry.value}): "
                    f"{type(e).__name__}: {e}",
                    package=entry.name,
                ) from e
        return cls(found)

    def names(self) -> list[NormalizedName]:
        return sorted(self._plugins)

    def hook(self, name: NormalizedName, hook: str) -> Callable[..., Any] | None:
        plugin = self._plugins.get(name)
        function = getattr(plugin, hook, None) if plugin is not None else None
        return function if callable(function) else None

    def call(self, name: NormalizedName, hook: str, *args: Any) -> Any:
        """Run ``hook`` of ``name``'s plugin if it has one; ``None`` otherwise."""
        function = self.hook(name, hook)
        if function is None:
            return None
        try:
            return function(*args)
        except BootstrapError:
            raise
        except Exception as e:
            raise PluginError(
                f"the {name} plugin's {hook} failed: {type(e).__name__}: {e}", package=name
            ) from e
