"""Give a command a read-only view of the machine, except the directories it may write.

Run as a script (``python -I -S fsview.py --writable DIR ... --uid U --gid G -- CMD ...``)
as root of a fresh user and mount namespace (``unshare --map-root-user --mount``): it
bind-mounts each writable directory onto itself, remounts every other mount read-only
(``/proc`` and ``/dev`` excepted: builds need their devices and process files), then
enters a nested user and mount namespace in which it is the real user again and executes
CMD. The nested namespace locks the read-only flags: the build cannot remount them.

This file imports nothing but the standard library, and nothing of bootstrapper, so that
it runs with ``-I -S`` in a few milliseconds. ``fsview.c`` does the same in C and is used
instead wherever a C compiler made it (see ``isolation.compiled_view``): a change here is
a change there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Sequence

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_RELATIME = 1 << 21
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000

#: Per-mount options that a remount must repeat: the kernel refuses to drop them in a
#: user namespace (they are locked), and dropping them would weaken the mount anyway.
KEPT_OPTIONS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}
#: Left as they are: device nodes, terminals, shared memory and process files.
UNTOUCHED = ("/proc", "/dev")
#: The exit status when the view cannot be made (the command did not run).
SETUP_FAILED = 125

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(
        _libc.mount(
            None if source is None else os.fsencode(source),
            os.fsencode(target),
            None,
            ctypes.c_ulong(flags),
            None,
        ),
        f"mount {target}",
    )


def _unescape(field: str) -> str:
    r"""Mount points in mountinfo escape space, tab, newline and backslash as ``\ooo``."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[tuple[str, set[str]]]:
    """Each mount point of this namespace (once, in mount order) with its options."""
    seen: dict[str, set[str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            fields = line.split()
            seen[_unescape(fields[4])] = set(fields[5].split(","))
    return list(seen.items())


def _within(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def make_view(writable: Sequence[str]) -> list[str]:
    """Make everything but ``writable`` read-only; returns notes on mounts left alone."""
    for path in writable:
        _mount(path, path, MS_BIND | MS_REC)
    notes = []
    for point, options in mounts():
        if _within(point, UNTOUCHED) or _within(point, writable) or "ro" in options:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, flag in KEPT_OPTIONS.items():
            if name in options:
                flags |= flag
        try:
            _mount(None, point, flags)
        except OSError as e:
            # A mount this user cannot even reach (another user's) is not writable by the
            # build either; any other failure on the root is the end of the view.
            if point == "/" or e.errno not in (errno.EACCES, errno.ENOENT, errno.EPERM):
                raise
            notes.append(f"{point} stays as it is ({e})")
    return notes


def become(uid: int, gid: int) -> None:
    """Enter a nested user and mount namespace as ``uid``/``gid`` of the outside."""
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} 0 1"),
        ("gid_map", f"{gid} 0 1"),
    ):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write(text)


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if "--" not in args:
        print("usage: fsview.py [--writable DIR ...] --uid U --gid G -- CMD ...", file=sys.stderr)
        return 2
    split = args.index("--")
    options, command = args[:split], args[split + 1 :]
    writable: list[str] = []
    uid = gid = -1
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag == "--writable":
            writable.append(os.path.realpath(value))
        elif flag == "--uid":
            uid = int(value)
        elif flag == "--gid":
            gid = int(value)
    try:
        notes = make_view(writable)
        become(uid, gid)
    except OSError as e:
        print(f"bootstrapper: cannot make the build's read-only view: {e}", file=sys.stderr)
        return SETUP_FAILED
    for note in notes:
        print(f"bootstrapper: read-only view: {note}", file=sys.stderr)
    # The working directory still refers to the mount it was entered on (now read-only):
    # enter it again by name, through the writable bind mount where there is one.
    try:
        os.chdir(os.getcwd())
    except OSError as e:
        print(f"bootstrapper: cannot enter the working directory again: {e}", file=sys.stderr)
        return SETUP_FAILED
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"bootstrapper: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
