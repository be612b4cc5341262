"""Rewrite a wheel: edit its Requires-Dist, stamp a rebuild number.

Only what the edit concerns changes: METADATA (and WHEEL for a build tag), the dist-info
and data directory names when the version changes, and RECORD, which is regenerated with
every file's hash and size. Every other member keeps its bytes, order, timestamps and
permissions.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .errors import BootstrapError
from .fsutil import replacing

REBUILD_SCHEMES = ("build-tag", "post", "local")


class WheelEditError(BootstrapError):
    """A wheel edit that cannot be applied (absent requirement, bad version, ...)."""


@dataclass(frozen=True)
class WheelEdit:
    remove_requires: frozenset[NormalizedName] = frozenset()
    add_requires: tuple[Requirement, ...] = ()
    #: The rebuild number and how to show it (``build-tag``, ``post`` or ``local``).
    rebuild: int = 0
    scheme: str = "build-tag"
    #: For the ``local`` scheme: the label before the number (``1.4+rebuild2``), or with
    #: ``local`` the whole label (``1.4+cpu3``).
    local_label: str = "rebuild"
    local: str | None = None
    #: Names whose absence is not an error (an edit shared by several versions).
    optional_removals: frozenset[NormalizedName] = field(default_factory=frozenset)

    @property
    def is_empty(self) -> bool:
        return not (self.remove_requires or self.add_requires or self.rebuild or self.local)

    def new_version(self, version: Version) -> Version:
        if self.scheme == "local" and self.local:
            local = f"{version.local}.{self.local}" if version.local else self.local
            try:
                return Version(f"{version.public}+{local}")
            except InvalidVersion as e:
                raise WheelEditError(f"invalid local version label {self.local!r}") from e
        if not self.rebuild or self.scheme == "build-tag":
            return version
        if self.scheme == "post":
            if version.post is not None or version.dev is not None or version.local:
                raise WheelEditError(
                    f"cannot stamp rebuild {self.rebuild} on {version} with the 'post' scheme: "
                    "it already has a post, dev or local part; use 'build-tag' or 'local'"
                )
            return Version(f"{version.public}.post{self.rebuild}")
        if self.scheme == "local":
            label = f"{self.local_label}{self.rebuild}"
            local = f"{version.local}.{label}" if version.local else label
            try:
                return Version(f"{version.public}+{local}")
            except InvalidVersion as e:
                raise WheelEditError(f"invalid local version label {local!r}") from e
        raise WheelEditError(
            f"unknown rebuild scheme {self.scheme!r} (one of {', '.join(REBUILD_SCHEMES)})"
        )


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def edit_metadata(text: str, edit: WheelEdit, new_version: Version) -> str:
    """METADATA with the edit applied: pure text in, text out."""
    head, sep, body = text.partition("\n\n")
    if not sep:  # headers only, no description
        head, sep = head.rstrip("\n"), "\n"
    lines = head.split("\n")
    removed: set[NormalizedName] = set()
    kept: list[str] = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            requirement = Requirement(line.split(":", 1)[1].strip())
            name = canonicalize_name(requirement.name)
            if name in edit.remove_requires:
                removed.add(name)
                continue
        if line.startswith("Version:"):
            line = f"Version: {new_version}"
        kept.append(line)
    missing = edit.remove_requires - removed - edit.optional_removals
    if missing:
        raise WheelEditError(
            f"cannot remove {', '.join(sorted(missing))}: not among the wheel's requirements"
        )
    insert_at = max(
        (i + 1 for i, line in enumerate(kept) if line.startswith("Requires-Dist:")),
        default=len(kept),
    )
    additions = [f"Requires-Dist: {r}" for r in edit.add_requires]
    kept[insert_at:insert_at] = additions
    return "\n".join(kept) + sep + body


def _edit_wheel_file(text: str, build_tag: int | None) -> str:
    """WHEEL with ``Build:`` set to ``build_tag``; unchanged when there is none to set (a
    requires edit keeps the wheel's own build tag, as its file name does)."""
    if not build_tag:
        return text
    lines = [line for line in text.rstrip("\n").split("\n") if not line.startswith("Build:")]
    lines.append(f"Build: {build_tag}")
    return "\n".join(lines) + "\n"


def edited_filename(filename: str, edit: WheelEdit) -> str:
    name_part, _, *rest = filename[: -len(".whl")].split("-")
    _, version, build, _ = parse_wheel_filename(filename)
    tags = "-".join(rest[-3:])
    new_version = edit.new_version(version)
    build_tag = (
        str(edit.rebuild)
        if edit.rebuild and edit.scheme == "build-tag"
        else (f"{build[0]}{build[1]}" if build else "")
    )
    version_text = str(new_version).replace("-", "_")
    return "-".join(p for p in (name_part, version_text, build_tag, tags) if p) + ".whl"


def edit_wheel(source: Path, dest_dir: Path, edit: WheelEdit) -> Path:
    """Write the edited copy of ``source`` into ``dest_dir`` and return its path."""
    name, version, _, _ = parse_wheel_filename(source.name)
    new_version = edit.new_version(version)
    try:
        opened = zipfile.ZipFile(source)
    except zipfile.BadZipFile as e:
        raise WheelEditError(f"{source} is not a wheel: {e}") from None
    with opened as zf:
        infos = zf.infolist()
        dist_info = _dist_info_dir(infos, name, source.name)
        prefix = dist_info[: -len(".dist-info")]
        old_data = f"{prefix}.data"
        new_prefix = f"{prefix.rsplit('-', 1)[0]}-{str(new_version).replace('-', '_')}"
        renames = {
            f"{dist_info}/": f"{new_prefix}.dist-info/",
            f"{old_data}/": f"{new_prefix}.data/",
        }
        contents: dict[str, bytes] = {}
        entries: list[tuple[zipfile.ZipInfo, str]] = []
        for info in infos:
            if info.filename in (f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"):
                continue  # a signature over the old RECORD would be a lie
            new_name = _renamed(info.filename, renames)
            data = zf.read(info)
            if info.filename == f"{dist_info}/METADATA":
                try:
                    data = edit_metadata(data.decode("utf-8"), edit, new_version).encode()
                except UnicodeDecodeError as e:
                    raise WheelEditError(f"{source.name}: METADATA is not UTF-8") from e
            elif info.filename == f"{dist_info}/WHEEL":
                tag = edit.rebuild if edit.scheme == "build-tag" and edit.rebuild else None
                data = _edit_wheel_file(data.decode("utf-8"), tag).encode()
            contents[new_name] = data
            entries.append((info, new_name))
    record_name = f"{new_prefix}.dist-info/RECORD"
    contents[record_name] = _record(
        ((n, d) for n, d in contents.items() if n != record_name and not n.endswith("/")),
        record_name,
    ).encode()
    if record_name not in {new for _, new in entries}:
        entries.append((zipfile.ZipInfo(record_name, (1980, 1, 1, 0, 0, 0)), record_name))
    dest = dest_dir / edited_filename(source.name, edit)
    with replacing(dest) as tmp, zipfile.ZipFile(tmp, "w") as out:
        for info, new_name in entries:
            clone = zipfile.ZipInfo(new_name, info.date_time)
            clone.compress_type = info.compress_type
            clone.external_attr = info.external_attr
            clone.create_system = info.create_system
            clone.comment = info.comment
            clone.extra = info.extra
            out.writestr(clone, contents[new_name])
    return dest


def _renamed(name: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def _record(files: Iterable[tuple[str, bytes]], record_name: str) -> str:
    rows = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files]
    rows.append(f"{record_name},,")  # RECORD cannot hash itself
    return "\n".join(rows) + "\n"


_DIST_INFO = re.compile(r"^([^/]+)\.dist-info/METADATA$")


def _dist_info_dir(infos: list[zipfile.ZipInfo], name: NormalizedName, filename: str) -> str:
    for info in infos:
        match = _DIST_INFO.match(info.filename)
        if match and canonicalize_name(match.group(1).rsplit("-", 1)[0]) == name:
            return f"{match.group(1)}.dist-info"
    raise WheelEditError(f"{filename} has no {name} .dist-info/METADATA")


def record_problems(wheel: Path) -> list[str]:
    """Every way ``wheel``'s RECORD disagrees with its files (empty when it is right)."""
    problems = []
    with zipfile.ZipFile(wheel) as zf:
        names = [i.filename for i in zf.infolist() if not i.filename.endswith("/")]
        record_name = next((n for n in names if n.endswith(".dist-info/RECORD")), None)
        if record_name is None:
            return ["no RECORD"]
        rows = {}
        for line in zf.read(record_name).decode().splitlines():
            if line:
                path, digest, size = line.rsplit(",", 2)
                rows[path] = (digest, size)
        for name in names:
            if name not in rows:
                problems.append(f"{name}: not in RECORD")
                continue
            if name == record_name:
                continue
            data = zf.read(name)
            if rows[name] != (_record_hash(data), str(len(data))):
                problems.append(f"{name}: hash or size differs from RECORD")
        problems.extend(
            f"{path}: in RECORD but not in the wheel" for path in rows.keys() - set(names)
        )
    return problems
