"""``repair: true``: portable (manylinux) wheels that do not duplicate each other.

After a run has built every wheel and settled every install closure, and before it
publishes, each wheel whose settings say ``repair`` goes through ``auditwheel repair``.
A shared library that a wheel of the package's install closure already ships (found by
the SONAMEs of the ELF files in those wheels) is excluded, not grafted: the extension
finds it at run time in the wheel that provides it, as torch's extensions find libtorch.
The repaired wheel is published instead of the one built; the one built is kept beside
it in ``DIR/wheels`` (unlisted): it is what other builds had in their environments, and
what ``build-sequence`` rebuilds and repairs again with the recorded exclusions.

Results are kept in ``DIR/.work/repaired/``, by the sha256 of the wheel built, the
exclusions and the platform asked for, so a re-run does not repair again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, parse_wheel_filename

from ..fsutil import copy_unless_identical, sha256_file, write_text_if_changed
from ..graph import EdgeKind, NodeKey
from ..records import RECORD_SUFFIX, BuildRecord
from ..reproducible import ZIP_EPOCH, normalize_wheel
from ..settings import PackageSettings
from ..single_build import PREBUILT_BACKEND, BuiltWheel
from ..store import WheelStore
from .auditwheel import RepairError, auditwheel_version, run_auditwheel
from .scan import WheelElf, member_sha256, scan_wheel

__all__ = ["REPAIRED_DIR", "RepairError", "repair_recorded", "repair_run"]

logger = logging.getLogger(__name__)

#: Where the repaired wheels are kept, under a command's private ``.work`` directory.
REPAIRED_DIR = "repaired"
#: What ``--plat`` auditwheel is given unless the settings name a platform.
AUTO = "auto"
_FACTS = "repair.json"
#: The hash auditwheel puts in the name of a library it grafts (``libz-1a2b3c4d.so.1``).
_GRAFT_HASH = re.compile(r"-[0-9a-f]{8}(?=\.so)")


@dataclass(frozen=True)
class Provider:
    """A closure wheel's file that provides a library (why it is excluded)."""

    key: NodeKey
    file: str


@dataclass(frozen=True)
class RepairJob:
    """One wheel to repair: what it excludes (by SONAME, each with the reason kept in its
    record) and the platform asked for."""

    built: BuiltWheel
    exclude: Mapping[str, Mapping[str, str]]
    plat: str


def install_closures(
    edges: Iterable[tuple[NodeKey, NodeKey, EdgeKind, str]],
    keys: Iterable[NodeKey],
    published: Iterable[NodeKey],
) -> dict[NodeKey, list[NodeKey]]:
    """For each of ``keys``, the published packages its install requirements reach
    (itself left out; cycles are fine), sorted."""
    children: dict[NodeKey, set[NodeKey]] = {}
    for parent, child, kind, _ in edges:
        if kind == EdgeKind.INSTALL:
            children.setdefault(parent, set()).add(child)
    kept = set(published)
    closures = {}
    for key in keys:
        seen: set[NodeKey] = set()
        todo = [key]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in seen and child in kept:
                    seen.add(child)
                    todo.append(child)
        seen.discard(key)
        closures[key] = sorted(seen)
    return closures


def exclusions(
    needed: Iterable[str], closure: Sequence[tuple[NodeKey, WheelElf]]
) -> dict[str, Provider]:
    """The libraries of ``needed`` that a wheel of ``closure`` provides, each with the
    first (in the closure's order) that does."""
    providers: dict[str, Provider] = {}
    for key, scanned in closure:
        for soname, file in scanned.provided().items():
            providers.setdefault(soname, Provider(key, file))
    return {soname: providers[soname] for soname in sorted(needed) if soname in providers}


class _Scans:
    """The ELF scans of wheels, each made once (by the wheel's path and sha256)."""

    def __init__(self) -> None:
        self._done: dict[tuple[Path, str], WheelElf] = {}

    def of(self, wheel: BuiltWheel) -> WheelElf:
        key = (wheel.path, wheel.record.wheel_sha256)
        if key not in self._done:
            self._done[key] = scan_wheel(wheel.path)
        return self._done[key]


def repair_run(
    built: Mapping[NodeKey, BuiltWheel],
    edges: Iterable[tuple[NodeKey, NodeKey, EdgeKind, str]],
    settings_for: Callable[[NormalizedName], PackageSettings],
    work_dir: Path,
    wheels_dir: Path,
    jobs: int,
) -> dict[NodeKey, BuiltWheel]:
    """``built`` (the wheels a bootstrap publishes) with each one whose settings say
    ``repair`` replaced by its repaired form, its exclusions found in its install
    closure (``edges`` of the run's graph). The wheels repaired ones were made from are
    kept in ``wheels_dir``, unlisted."""
    wanted = {key: settings_for(key.name) for key in sorted(built)}
    wanted = {key: settings for key, settings in wanted.items() if settings.repair}
    if not wanted:
        return dict(built)
    closures = install_closures(edges, wanted, built)
    scans = _Scans()
    found: dict[NodeKey, dict[str, Provider]] = {}
    for key in wanted:
        if _skip_reason(built[key], scans) is None:
            closure = [(dep, scans.of(built[dep])) for dep in closures[key]]
            found[key] = exclusions(scans.of(built[key]).needed(), closure)
    requests = [
        RepairJob(
            built[key],
            {
                soname: {"project": p.key.name, "version": str(p.key.version), "file": p.file}
                for soname, p in found.get(key, {}).items()
            },
            settings.repair_plat or AUTO,
        )
        for key, settings in wanted.items()
    ]
    repaired = _repair_all(requests, work_dir / REPAIRED_DIR, wheels_dir, jobs, scans)
    # The reasons name the wheel each provider publishes (a repaired one, maybe).
    names = {key: (repaired.get(key) or built[key]).path.name for key in built}
    for key, wheel in list(repaired.items()):
        for soname, why in wheel.record.repair.get("excluded", {}).items():
            why["wheel"] = names[found[key][soname].key]
        repaired[key] = _with_record(wheel, wheel.record)
    return {**built, **repaired}


def repair_recorded(
    built: Sequence[BuiltWheel],
    recorded: Mapping[NodeKey, Mapping[str, Any]],
    work_dir: Path,
    wheels_dir: Path,
    jobs: int,
) -> list[BuiltWheel]:
    """``built`` (a rebuilt build order) with each wheel whose recorded ``repair`` asked
    for one repaired again as recorded: the same exclusions (and reasons), the same
    platform asked for; no closure is scanned."""
    requests = []
    for wheel in built:
        repair = recorded.get(wheel.key, {})
        if repair.get("requested"):
            excluded = repair.get("excluded", {})
            requests.append(
                RepairJob(
                    wheel,
                    {s: dict(excluded.get(s, {})) for s in repair.get("exclude", [])},
                    str(repair.get("plat", AUTO)),
                )
            )
    repaired = _repair_all(requests, work_dir / REPAIRED_DIR, wheels_dir, jobs, _Scans())
    return [
        _with_record(repaired[w.key], repaired[w.key].record) if w.key in repaired else w
        for w in built
    ]


def _repair_all(
    requests: Sequence[RepairJob], root: Path, wheels_dir: Path, jobs: int, scans: _Scans
) -> dict[NodeKey, BuiltWheel]:
    if not requests:
        return {}
    # Checked once for all: the message names every package that needs the tools.
    to_make = [
        r.built.key.name
        for r in requests
        if _skip_reason(r.built, scans) is None and _kept(root / _cache_key(r)) is None
    ]
    version = auditwheel_version(to_make) if to_make else ""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # what a killed run left half made
        shutil.rmtree(stale, ignore_errors=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = list(pool.map(lambda r: _repair_one(r, root, version, scans), requests))
    for request, wheel in zip(requests, done, strict=True):
        if wheel.path.name != request.built.path.name:
            # What the other builds used, and what build-sequence repairs again.
            original = request.built
            copy_unless_identical(
                original.path, wheels_dir / original.path.name, original.record.wheel_sha256
            )
            copy_unless_identical(
                WheelStore.record_path(original.path),
                wheels_dir / (original.path.name + RECORD_SUFFIX),
            )
    return {wheel.key: wheel for wheel in done}


def _skip_reason(built: BuiltWheel, scans: _Scans) -> str | None:
    """Why a wheel asked to be repaired is published as built; None to repair it."""
    if built.record.build_backend == PREBUILT_BACKEND:
        return "an upstream wheel taken as it is is published as it is"
    if not scans.of(built).compiled:
        return "no ELF file in the wheel (pure Python): nothing to repair, published as built"
    return None


def _cache_key(request: RepairJob) -> str:
    wanted = {
        "wheel_sha256": request.built.record.wheel_sha256,
        "exclude": sorted(request.exclude),
        "plat": request.plat,
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:32]


def _repair_one(request: RepairJob, root: Path, version: str, scans: _Scans) -> BuiltWheel:
    built = request.built
    record = built.record
    skip = _skip_reason(built, scans)
    place = root / _cache_key(request)
    if skip is not None:
        # The same wheel, with a record that says why it was not repaired.
        place.mkdir(exist_ok=True)
        copy_unless_identical(built.path, place / built.path.name, record.wheel_sha256)
        note = {"requested": True, "repaired": False, "reason": skip, "plat": request.plat}
        return dataclasses.replace(
            built, path=place / built.path.name, record=dataclasses.replace(record, repair=note)
        )
    facts = _kept(place)
    if facts is None:
        facts = _make(request, root, place, version, scans)
    else:
        logger.info("%s: repaired %s kept from an earlier run", built.key, facts["wheel"])
    repair = {
        "requested": True,
        "repaired": True,
        "tool": "auditwheel",
        "auditwheel": facts["auditwheel"],
        "plat": request.plat,
        "platform": facts["platform"],
        "from_wheel": built.path.name,
        "from_sha256": record.wheel_sha256,
        "exclude": sorted(request.exclude),
        "excluded": {s: dict(why) for s, why in sorted(request.exclude.items())},
        "grafted": facts["grafted"],
    }
    path = place / facts["wheel"]
    return dataclasses.replace(
        built,
        path=path,
        record=dataclasses.replace(
            record, wheel=path.name, wheel_sha256=facts["sha256"], repair=repair
        ),
    )


def _kept(place: Path) -> dict[str, Any] | None:
    """The facts of a repair made earlier in ``place``, if its wheel is still intact."""
    try:
        facts: dict[str, Any] = json.loads((place / _FACTS).read_text(encoding="utf-8"))
        if sha256_file(place / facts["wheel"]) == facts["sha256"]:
            return facts
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _make(
    request: RepairJob, root: Path, place: Path, version: str, scans: _Scans
) -> dict[str, Any]:
    """Run auditwheel, and keep its wheel and what it did in ``place`` (made whole in a
    temporary directory, then renamed: a killed run leaves no half repair there)."""
    built = request.built
    epoch = int(built.record.environment.get("SOURCE_DATE_EPOCH", ZIP_EPOCH))
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=root) as tmp:
        made = Path(tmp) / "made"
        made.mkdir()
        wheel = run_auditwheel(
            built.path,
            exclude=sorted(request.exclude),
            plat=request.plat,
            out_dir=made,
            epoch=epoch,
            log=built.log,
            package=built.key.name,
        )
        if wheel.name == built.path.name:
            raise RepairError(
                f"{built.key.name}: auditwheel kept the name {wheel.name} (platform "
                f"{request.plat}); the repaired wheel needs a manylinux or musllinux tag",
                package=built.key.name,
                log_path=built.log,
            )
        # Only file contents can vary (auditwheel dates them by SOURCE_DATE_EPOCH; this
        # also fixes their order and permissions as every built wheel has them).
        normalize_wheel(wheel, epoch)
        after = scan_wheel(wheel)
        facts = {
            "wheel": wheel.name,
            "sha256": sha256_file(wheel),
            "auditwheel": version,
            "platform": sorted({t.platform for t in parse_wheel_filename(wheel.name)[3]}),
            "grafted": _grafted(scans.of(built), after, wheel),
        }
        (made / _FACTS).write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(place, ignore_errors=True)
        made.rename(place)
    with built.log.open("ab") as log:
        log.write(f"== repair: {built.path.name} -> {facts['wheel']}\n".encode())
    logger.info("%s: repaired into %s", built.key, facts["wheel"])
    return facts


def _grafted(before: WheelElf, after: WheelElf, wheel: Path) -> dict[str, dict[str, str]]:
    """The libraries auditwheel copied into ``wheel``, by the name they were needed by
    (``liblzma.so.5``), each with its file in the wheel and that file's sha256."""
    renamed: dict[str, str] = {}
    for member in before.members:
        now = after.member(member.path)
        if now is not None and len(now.needed) == len(member.needed):
            renamed.update(
                (new, old) for old, new in zip(member.needed, now.needed, strict=True) if old != new
            )
    old_paths = {m.path for m in before.members}
    grafted = {}
    for member in after.members:
        if member.path in old_paths:
            continue
        needed_as = renamed.get(member.name) or renamed.get(member.soname or "")
        grafted[needed_as or _GRAFT_HASH.sub("", member.name)] = {
            "file": member.path,
            "sha256": member_sha256(wheel, member.path),
        }
    return dict(sorted(grafted.items()))


def _with_record(wheel: BuiltWheel, record: BuildRecord) -> BuiltWheel:
    """``wheel`` with ``record``, written beside it (where publishing takes it from)."""
    write_text_if_changed(WheelStore.record_path(wheel.path), record.to_json())
    return dataclasses.replace(wheel, record=record)
