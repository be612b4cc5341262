"""Per-package settings: ``settings/<name>.yaml`` (and ``settings.yaml`` defaults) under
one or more overrides directories, validated once, every problem reported with its file
and line.

Layers are searched in order and the first file of a given name wins, so the user's
directory goes first and the project's own recipes last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .cores import Demand, parse_size
from .credentials import redact_url
from .errors import BootstrapError
from .wheeledit import REBUILD_SCHEMES, WheelEdit

KEYS = (
    "env",
    "config-settings",
    "build-requires",
    "requires",
    "changelog",
    "rebuild-scheme",
    "prebuilt",
    "source",
    "patch-fuzz",
    "build-timeout",
    "resources",
    "exclusive",
    "cores",
    "memory",
    "repair",
    "repair-plat",
    "variants",
)
VARIANT_KEYS = tuple(k for k in KEYS if k != "variants")
EDIT_KEYS = ("remove", "add")
SOURCE_KEYS = ("url", "git", "ref")


class SettingsError(BootstrapError):
    """One or more problems in the settings; ``problems`` has them all."""

    def __init__(self, problems: Sequence[str]) -> None:
        count = len(problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the per-package settings",
            details="\n".join(problems),
        )
        self.problems = list(problems)


@dataclass(frozen=True)
class RequirementEdits:
    remove: tuple[NormalizedName, ...] = ()
    add: tuple[Requirement, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.add)

    def apply(self, requirements: Sequence[Requirement]) -> tuple[Requirement, ...]:
        """``requirements`` without the removed names, plus the additions."""
        kept = [r for r in requirements if canonicalize_name(r.name) not in self.remove]
        return (*kept, *self.add)

    def to_json(self) -> dict[str, list[str]]:
        return {"remove": list(self.remove), "add": [str(r) for r in self.add]}


@dataclass(frozen=True)
class SourceSpec:
    url: str | None = None
    git: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class PackageSettings:
    """Everything that applies to one package (one version, one variant)."""

    env: Mapping[str, str] = field(default_factory=dict)
    config_settings: Mapping[str, str | list[str]] = field(default_factory=dict)
    build_requires: RequirementEdits = RequirementEdits()
    requires: RequirementEdits = RequirementEdits()
    changelog: Mapping[Version, tuple[str, ...]] = field(default_factory=dict)
    rebuild_scheme: str = "build-tag"
    prebuilt: bool = False
    source: SourceSpec | None = None
    #: How many context lines a patch hunk may ignore (GNU patch's fuzz); 0: none.
    patch_fuzz: int = 0
    #: Seconds one backend call of this package may run (None: the run's --build-timeout),
    #: and the file and line that set it.
    build_timeout: int | None = None
    build_timeout_origin: str = ""
    #: What a build needs of a Dask worker (``{gpu: 1}``, ``{memory: 32e9}``): Dask
    #: worker resources. Not part of the record: they decide where, not what, is built.
    resources: Mapping[str, float] = field(default_factory=dict)
    #: What a build needs of this machine's core budget (``exclusive: true``: the whole
    #: machine; ``cores: N``; ``memory: SIZE`` in bytes). Not part of the record's plan
    #: either: they decide when and beside what a wheel is built, not what is built.
    exclusive: bool = False
    cores: int | None = None
    memory: int | None = None
    #: Make the compiled wheel portable with ``auditwheel repair`` before publishing
    #: (see :mod:`.repair`), for this platform tag (None: the best auditwheel finds).
    #: Not part of the record's plan: the wheel built is the same; the record's
    #: ``repair`` says what was done to it.
    repair: bool = False
    repair_plat: str | None = None
    #: Where it came from, for records and ``settings check``.
    files: tuple[str, ...] = ()

    def rebuild(self, version: Version) -> tuple[int, tuple[str, ...]]:
        """The rebuild number of ``version`` and the reasons for it."""
        reasons = self.changelog.get(version, ())
        return len(reasons), reasons

    def wheel_edit(self, version: Version) -> WheelEdit:
        number, _ = self.rebuild(version)
        return WheelEdit(
            remove_requires=frozenset(self.requires.remove),
            add_requires=self.requires.add,
            rebuild=number,
            scheme=self.rebuild_scheme,
        )

    def demand(self) -> Demand:
        """What a build of this package asks of the run's core budget."""
        return Demand(exclusive=self.exclusive, cores=self.cores, memory=self.memory)

    def expanded_env(self, version: Version, environ: Mapping[str, str]) -> dict[str, str]:
        """``env`` with ``${VAR}``, ``${VAR:-default}`` and ``${version}`` expanded."""
        return {
            key: expand(value, {**environ, "version": str(version)}, key)
            for key, value in self.env.items()
        }

    def to_json(self, version: Version) -> dict[str, Any]:
        """What a build record keeps of these settings."""
        number, reasons = self.rebuild(version)
        data: dict[str, Any] = {
            "env": dict(self.env),
            "config-settings": dict(self.config_settings),
            "build-requires": self.build_requires.to_json(),
            "requires": self.requires.to_json(),
            "rebuild": number,
            "rebuild-reasons": list(reasons),
            "rebuild-scheme": self.rebuild_scheme,
            "prebuilt": self.prebuilt,
            "files": list(self.files),
        }
        if self.source is not None:
            # Records are published: a URL written with its token keeps only the rest.
            data["source"] = {k: redact_url(v) for k, v in vars(self.source).items() if v}
        if self.patch_fuzz:
            # Only when allowed, so that records of builds without it stay valid.
            data["patch-fuzz"] = self.patch_fuzz
        return data


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: str, variables: Mapping[str, str], what: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = variables.get(name)
        if default is not None and not value:
            return default  # as in the shell, ":-" also replaces an empty value
        if value is not None:
            return value
        raise BootstrapError(
            f"setting {what!r} uses ${{{name}}}, which is not set (write ${{{name}:-}} "
            "for an empty default)"
        )

    return _VARIABLE.sub(replace, value)


# -- loading and validation ---------------------------------------------------------


class _Validator:
    """Walks composed YAML nodes (which know their line) and collects problems."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, node: yaml.Node | None, message: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.problems.append(f"{self.path}{line}: {message}")

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping")
            return []
        return list(node.value)

    def string(self, node: yaml.Node, what: str) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:null":
            return str(node.value)
        self.problem(node, f"{what} must be a string")
        return None

    def strings(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list of strings")
            return []
        found = []
        for item in node.value:
            text = self.string(item, f"each item of {what}")
            if text is not None:
                found.append((item, text))
        return found

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
            return bool(yaml.safe_load(node.value))
        self.problem(node, f"{what} must be true or false")
        return None

    def natural(self, node: yaml.Node, what: str) -> int | None:
        """A non-negative whole number."""
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:int"
            and re.fullmatch(r"\+?[0-9]+", str(node.value))
        ):
            return int(node.value)
        got = f" (got {node.value!r})" if isinstance(node, yaml.ScalarNode) else ""
        self.problem(node, f"{what} must be a whole number, 0 or more{got}")
        return None

    def positive(self, node: yaml.Node, what: str) -> float | None:
        """A number above 0 (``1``, ``0.5``, ``32e9``: YAML reads the last as text)."""
        if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:bool":
            try:
                number = float(str(node.value).replace("_", ""))
            except ValueError:
                number = float("nan")
            if 0 < number < float("inf"):
                return number
        got = f" (got {node.value!r})" if isinstance(node, yaml.ScalarNode) else ""
        self.problem(node, f"{what} must be a number above 0{got}")
        return None

    def memory(self, node: yaml.Node) -> dict[str, int]:
        """``memory: SIZE`` (``8G``, ``512MiB``, a number of bytes), above 0."""
        size = parse_size(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
        if size:
            return {"memory": size}
        got = f" (got {node.value!r})" if isinstance(node, yaml.ScalarNode) else ""
        self.problem(node, f"memory must be a size above 0, such as 8G or 512M{got}")
        return {}

    def requirement(self, node: yaml.Node, text: str, what: str) -> Requirement | None:
        try:
            return Requirement(text)
        except InvalidRequirement as e:
            self.problem(node, f"{what}: malformed requirement {text!r}: {e}")
            return None

    def edits(self, node: yaml.Node, what: str) -> RequirementEdits:
        remove: list[NormalizedName] = []
        add: list[Requirement] = []
        for key_node, value in self.mapping(node, what):
            key = key_node.value
            if key == "remove":
                remove.extend(
                    canonicalize_name(t) for _, t in self.strings(value, f"{what}.remove")
                )
            elif key == "add":
                for item, text in self.strings(value, f"{what}.add"):
                    requirement = self.requirement(item, text, f"{what}.add")
                    if requirement is not None:
                        add.append(requirement)
            else:
                self.problem(key_node, f"unknown key {key!r} in {what} (use remove, add)")
        return RequirementEdits(tuple(remove), tuple(add))

    def settings(self, node: yaml.Node, keys: Sequence[str], where: str) -> dict[str, Any]:
        """The recognised keys of one settings mapping, as typed values."""
        found: dict[str, Any] = {}
        for key_node, value in self.mapping(node, where):
            key = key_node.value
            if key not in keys:
                self.problem(key_node, f"unknown key {key!r} (known: {', '.join(keys)})")
            elif key == "env":
                env = {}
                for name_node, value_node in self.mapping(value, "env"):
                    text = self.string(value_node, f"env {name_node.value}")
                    if text is not None:
                        env[str(name_node.value)] = text
                found["env"] = env
            elif key == "config-settings":
                config: dict[str, str | list[str]] = {}
                for name_node, value_node in self.mapping(value, "config-settings"):
                    if isinstance(value_node, yaml.SequenceNode):
                        config[str(name_node.value)] = [
                            t for _, t in self.strings(value_node, str(name_node.value))
                        ]
                    else:
                        text = self.string(value_node, f"config-settings {name_node.value}")
                        if text is not None:
                            config[str(name_node.value)] = text
                found["config_settings"] = config
            elif key in ("build-requires", "requires"):
                found[key.replace("-", "_")] = self.edits(value, key)
            elif key == "changelog":
                changelog = {}
                for version_node, reasons_node in self.mapping(value, "changelog"):
                    try:
                        version = Version(str(version_node.value))
                    except InvalidVersion:
                        self.problem(
                            version_node, f"changelog: invalid version {version_node.value!r}"
                        )
                        continue
                    changelog[version] = tuple(
                        t for _, t in self.strings(reasons_node, f"changelog {version}")
                    )
                found["changelog"] = changelog
            elif key == "rebuild-scheme":
                scheme = self.string(value, "rebuild-scheme")
                if scheme is not None and scheme not in REBUILD_SCHEMES:
                    self.problem(
                        value, f"rebuild-scheme must be one of {', '.join(REBUILD_SCHEMES)}"
                    )
                elif scheme is not None:
                    found["rebuild_scheme"] = scheme
            elif key == "prebuilt":
                flag = self.boolean(value, "prebuilt")
                if flag is not None:
                    found["prebuilt"] = flag
            elif key == "patch-fuzz":
                fuzz = self.natural(value, "patch-fuzz")
                if fuzz is not None:
                    found["patch_fuzz"] = fuzz
            elif key == "build-timeout":
                seconds = self.natural(value, "build-timeout")
                if seconds == 0:
                    self.problem(value, "build-timeout must be at least 1 (seconds)")
                elif seconds is not None:
                    found["build_timeout"] = seconds
                    found["build_timeout_origin"] = f"{self.path}:{value.start_mark.line + 1}"
            elif key == "resources":
                resources: dict[str, float] = {}
                for name_node, value_node in self.mapping(value, "resources"):
                    amount = self.positive(value_node, f"resources.{name_node.value}")
                    if amount is not None:
                        resources[str(name_node.value)] = amount
                found["resources"] = resources
            elif key == "exclusive":
                flag = self.boolean(value, "exclusive")
                if flag is not None:
                    found["exclusive"] = flag
            elif key == "cores":
                cores = self.natural(value, "cores")
                if cores == 0:
                    self.problem(value, "cores must be at least 1")
                elif cores is not None:
                    found["cores"] = cores
            elif key == "memory":
                found.update(self.memory(value))
            elif key == "repair":
                flag = self.boolean(value, "repair")
                if flag is not None:
                    found["repair"] = flag
            elif key == "repair-plat":
                plat = self.string(value, "repair-plat")
                if plat is not None and not re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", plat):
                    self.problem(
                        value,
                        f"repair-plat must be a platform tag such as manylinux_2_28_x86_64 "
                        f"(got {plat!r})",
                    )
                elif plat is not None:
                    found["repair_plat"] = plat
            elif key == "source":
                source: dict[str, str] = {}
                for name_node, value_node in self.mapping(value, "source"):
                    if name_node.value not in SOURCE_KEYS:
                        self.problem(
                            name_node,
                            f"unknown key {name_node.value!r} in source (use url, or git and ref)",
                        )
                        continue
                    text = self.string(value_node, f"source.{name_node.value}")
                    if text is not None:
                        source[str(name_node.value)] = text
                if source and ("url" in source) == ("git" in source):
                    self.problem(value, "source needs exactly one of url or git")
                elif source:
                    found["source"] = SourceSpec(**source)
            elif key == "variants":
                variants = {}
                for name_node, variant in self.mapping(value, "variants"):
                    variants[str(name_node.value)] = self.settings(
                        variant, VARIANT_KEYS, f"variant {name_node.value}"
                    )
                found["variants"] = variants
        return found


@dataclass(frozen=True)
class _File:
    path: Path
    values: Mapping[str, Any]


def _load_file(path: Path, problems: list[str]) -> _File | None:
    validator = _Validator(path)
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: cannot read: {e}")
        return None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problems.append(f"{path}{line}: invalid YAML: {getattr(e, 'problem', None) or e}")
        return None
    if node is None:
        return _File(path, {})
    values = validator.settings(node, KEYS, "the settings")
    problems.extend(validator.problems)
    return _File(path, values)


class Settings:
    """All settings files of the given layers, validated at construction."""

    def __init__(self, layers: Sequence[Path]) -> None:
        self.layers = [layer for layer in layers if layer.is_dir()]
        problems: list[str] = []
        self._defaults: _File | None = None
        self._packages: dict[NormalizedName, _File] = {}
        for layer in self.layers:
            defaults = layer / "settings.yaml"
            if self._defaults is None and defaults.is_file():
                self._defaults = _load_file(defaults, problems)
            settings_dir = layer / "settings"
            if not settings_dir.is_dir():
                continue
            for path in sorted(settings_dir.iterdir()):
                if path.suffix not in (".yaml", ".yml"):
                    problems.append(
                        f"{path}: not a .yaml file; settings files are settings/<name>.yaml"
                    )
                    continue
                name = canonicalize_name(path.stem)
                if path.stem != name:
                    problems.append(
                        f"{path}: name the file after the normalized project name: {name}.yaml"
                    )
                    continue
                if name not in self._packages:
                    loaded = _load_file(path, problems)
                    if loaded is not None:
                        self._packages[name] = loaded
        if problems:
            raise SettingsError(problems)

    @property
    def packages(self) -> list[NormalizedName]:
        return sorted(self._packages)

    def variants(self) -> set[str]:
        found: set[str] = set()
        for file in [self._defaults, *self._packages.values()]:
            if file is not None:
                found.update(file.values.get("variants", {}))
        return found

    def for_package(self, name: NormalizedName, variant: str | None = None) -> PackageSettings:
        """Defaults, then the package's file, then the variant's part of each."""
        merged: dict[str, Any] = {}
        files: list[str] = []
        for file in (self._defaults, self._packages.get(name)):
            if file is None:
                continue
            files.append(str(file.path))
            _merge(merged, {k: v for k, v in file.values.items() if k != "variants"})
            if variant is not None:
                _merge(merged, file.values.get("variants", {}).get(variant, {}))
        return PackageSettings(**merged, files=tuple(files))


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Later layers win key by key; ``env`` and ``config-settings`` merge variable by
    variable, so a variant can add one variable without repeating the rest."""
    for key, value in layer.items():
        if key in ("env", "config_settings") and key in into:
            into[key] = {**into[key], **value}
        else:
            into[key] = value


def default_layers(user_dir: Path | None) -> list[Path]:
    """The user's overrides directory first, then the recipes shipped with bootstrapper."""
    layers = [user_dir] if user_dir is not None else []
    layers.append(recipes_dir() / "overrides")
    return unique_dirs(layers)


def unique_dirs(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without repeats of the same directory (the user may point at ours)."""
    seen: set[Path] = set()
    unique = []
    for path in paths:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique


def recipes_dir() -> Path:
    """Where the curated recipes live: beside the package in a checkout, inside it when
    installed."""
    packaged = Path(__file__).parent / "recipes"
    checkout = Path(__file__).parent.parent
    if (checkout / "overrides").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout
    return packaged
