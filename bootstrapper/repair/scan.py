"""The ELF files inside a wheel: the shared libraries it provides (by SONAME) and the
libraries its files need."""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BootstrapError
from .elf import MAGIC, ElfError, read_dynamic

_SHARED_NAME = re.compile(r".+\.so(\.[0-9]+)*$")


@dataclass(frozen=True)
class ElfMember:
    """One ELF file of a wheel."""

    path: str
    soname: str | None
    needed: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def provides(self) -> str | None:
        """The name the dynamic loader knows this library by: its SONAME, or the file
        name of a shared library that has none; None for an extension module or a
        program (nothing links against those by name)."""
        if self.soname:
            return self.soname
        if _SHARED_NAME.fullmatch(self.name) and "." not in self.name.split(".so")[0]:
            return self.name
        return None


@dataclass(frozen=True)
class WheelElf:
    """The ELF files of one wheel."""

    members: tuple[ElfMember, ...]

    @property
    def compiled(self) -> bool:
        return bool(self.members)

    def member(self, path: str) -> ElfMember | None:
        return next((m for m in self.members if m.path == path), None)

    def provided(self) -> dict[str, str]:
        """Each library name the wheel provides, with the file that provides it."""
        found: dict[str, str] = {}
        for member in sorted(self.members, key=lambda m: m.path):
            if member.provides is not None:
                found.setdefault(member.provides, member.path)
        return found

    def needed(self) -> set[str]:
        """The libraries its files need that it does not ship itself."""
        needed = {name for member in self.members for name in member.needed}
        return needed - set(self.provided()) - {m.name for m in self.members}


def scan_wheel(wheel: Path) -> WheelElf:
    """The ELF files of ``wheel`` (each read only as far as its headers need)."""
    members = []
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.file_size < 64:
                    continue
                with zf.open(info) as f:
                    if f.read(len(MAGIC)) != MAGIC:
                        continue
                    dynamic = read_dynamic(f)
                if dynamic is not None:
                    members.append(ElfMember(info.filename, dynamic.soname, dynamic.needed))
    except (OSError, zipfile.BadZipFile, ElfError) as e:
        raise BootstrapError(f"cannot read the ELF files of {wheel.name}: {e}") from e
    return WheelElf(tuple(members))


def member_sha256(wheel: Path, path: str) -> str:
    """The sha256 of one file inside ``wheel``."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf, zf.open(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
