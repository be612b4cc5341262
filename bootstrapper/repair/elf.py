"""What an ELF file says of its dynamic linking: its SONAME and the libraries it needs.

Read from the section headers (the ``.dynamic`` section and the string table it links
to), which every shared library and extension module a compiler writes has. The reader
seeks, so a large library inside a wheel is not read into memory whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

MAGIC = b"\x7fELF"
_SHT_DYNAMIC = 6
_DT_NULL, _DT_NEEDED, _DT_SONAME = 0, 1, 14


@dataclass(frozen=True)
class Dynamic:
    """The dynamic-linking facts of one ELF file."""

    soname: str | None
    needed: tuple[str, ...]


class ElfError(ValueError):
    """An ELF file too damaged to read its dynamic section."""


def _read(f: IO[bytes], offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfError(f"truncated: {size} bytes wanted at offset {offset}")
    return data


def read_dynamic(f: IO[bytes]) -> Dynamic | None:
    """The SONAME and DT_NEEDED entries of the ELF file ``f`` (seekable, at any
    position); None when it is not an ELF file. A file without a dynamic section (a
    static executable, an object file) needs nothing and names no SONAME."""
    f.seek(0)
    ident = f.read(16)
    if len(ident) < 16 or not ident.startswith(MAGIC):
        return None
    wide = {1: False, 2: True}.get(ident[4])
    order = {1: "<", 2: ">"}.get(ident[5])
    if wide is None or order is None:
        raise ElfError(f"unknown ELF class {ident[4]} or data encoding {ident[5]}")
    if wide:
        shoff, shentsize, shnum = _unpack(order + "40xQ10xHH", _read(f, 0, 64))
        section = struct.Struct(order + "4xI16xQQI12xQ")  # type, offset, size, link, entsize
    else:
        shoff, shentsize, shnum = _unpack(order + "32xI10xHH", _read(f, 0, 52))
        section = struct.Struct(order + "4xI8xIII8xI")
    if shoff == 0 or shnum == 0:
        return Dynamic(None, ())
    table = _read(f, shoff, shentsize * shnum)
    headers = [section.unpack_from(table, i * shentsize) for i in range(shnum)]
    for kind, offset, size, link, entsize in headers:
        if kind != _SHT_DYNAMIC:
            continue
        if link >= shnum:
            raise ElfError(f"the dynamic section links to section {link} of {shnum}")
        _, str_offset, str_size, _, _ = headers[link]
        strings = _read(f, str_offset, str_size)
        entry = struct.Struct(order + ("qQ" if wide else "iI"))
        entries = _read(f, offset, size)
        soname, needed = None, []
        for i in range(size // (entsize or entry.size)):
            tag, value = entry.unpack_from(entries, i * (entsize or entry.size))
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                needed.append(_string(strings, value))
            elif tag == _DT_SONAME:
                soname = _string(strings, value)
        return Dynamic(soname, tuple(needed))
    return Dynamic(None, ())


def _unpack(layout: str, data: bytes) -> tuple[int, ...]:
    return struct.unpack_from(layout, data)


def _string(table: bytes, offset: int) -> str:
    if offset >= len(table):
        raise ElfError(f"a dynamic entry names offset {offset} of a {len(table)}-byte table")
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")
