"""``DIR/run.json``: what a bootstrap was asked for, so that ``find-updates`` and
``update`` can ask the index the same question again.

It holds what decides which versions a run resolves (the requirements as given, the
constraints, the index, ``--pre``, the variant and the release age), never how they
were built, and never the credentials of an index URL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from .credentials import redact_text, redact_url
from .errors import BootstrapError
from .fsutil import write_text_if_changed
from .releaseage import ReleaseAge, format_timestamp, parse_timestamp

RUN_FILE = "run.json"
SCHEMA = 1


@dataclass(frozen=True)
class RunRecord:
    #: The top-level requirements as given (with ``--keep-going``, those not published
    #: too: an update tries them again).
    requirements: tuple[Requirement, ...]
    #: The constraints (``-c``), one merged line per project.
    constraints: tuple[Requirement, ...]
    #: The source index, without credentials.
    index_url: str
    #: Whether the index URL given carried credentials (which are not kept here).
    index_credentials: bool = False
    pre: bool = False
    variant: str | None = None
    release_age: ReleaseAge | None = None
    #: Each requirement was resolved on its own (``--each``).
    each: bool = False
    #: The Pythons built for (``--python``, as ``3.12``); empty: the one bootstrapper
    #: ran under.
    pythons: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        requirements: tuple[Requirement, ...],
        constraints: tuple[Requirement, ...],
        index_url: str,
        *,
        pre: bool,
        variant: str | None,
        release_age: ReleaseAge | None,
        each: bool = False,
        pythons: tuple[str, ...] = (),
    ) -> RunRecord:
        """The record of a run given ``index_url`` as the user typed it."""
        clean = redact_url(index_url)
        return cls(
            requirements,
            constraints,
            clean,
            index_credentials=clean != index_url,
            pre=pre,
            variant=variant,
            release_age=release_age,
            each=each,
            pythons=pythons,
        )

    def to_json(self) -> dict[str, Any]:
        age = self.release_age
        return {
            "schema": SCHEMA,
            # A direct URL (``name @ https://...``) may carry credentials too.
            "requirements": [redact_text(str(r)) for r in self.requirements],
            "constraints": [redact_text(str(c)) for c in self.constraints],
            "index_url": self.index_url,
            "index_credentials": self.index_credentials,
            "pre": self.pre,
            "variant": self.variant,
            "exclude_newer": _timestamp(age.exclude_newer if age else None),
            "min_release_age_days": age.min_release_age_days if age else None,
            "uploaded_before": _timestamp(age.uploaded_before if age else None),
            "each": self.each,
            "pythons": list(self.pythons),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """Raises ``ValueError`` (or ``KeyError``, ``TypeError``) on a malformed record."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unknown schema {data.get('schema')!r}")
        age = None
        if data.get("uploaded_before") is not None:
            exclude_newer = data.get("exclude_newer")
            age = ReleaseAge(
                parse_timestamp(data["uploaded_before"]),
                parse_timestamp(exclude_newer) if exclude_newer is not None else None,
                _days(data.get("min_release_age_days")),
            )
        index_url = data["index_url"]
        variant = data.get("variant")
        if not isinstance(index_url, str) or not (variant is None or isinstance(variant, str)):
            raise TypeError("index_url and variant must be strings")
        return cls(
            requirements=tuple(Requirement(r) for r in _strings(data["requirements"])),
            constraints=tuple(Requirement(c) for c in _strings(data.get("constraints", []))),
            index_url=index_url,
            index_credentials=bool(data.get("index_credentials", False)),
            pre=bool(data.get("pre", False)),
            variant=variant,
            release_age=age,
            each=bool(data.get("each", False)),
            pythons=tuple(_strings(data.get("pythons", []))),
        )


def _timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _days(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"min_release_age_days is {value!r}, not a number")
    return float(value)


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{value!r} is not a list of strings")
    return value


def write_run_record(output_dir: Path, record: RunRecord) -> None:
    """Write ``DIR/run.json`` atomically (left as it is when it says the same)."""
    write_text_if_changed(output_dir / RUN_FILE, json.dumps(record.to_json(), indent=2) + "\n")


def read_run_record(output_dir: Path) -> RunRecord | None:
    """``DIR/run.json``, or ``None`` when the run that made ``DIR`` wrote none (it came
    before bootstrapper kept one)."""
    path = output_dir / RUN_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BootstrapError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return RunRecord.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError, InvalidRequirement) as e:
        raise BootstrapError(
            f"{path} is not a run record this bootstrapper can read ({type(e).__name__}: {e}); "
            "run the bootstrap again to write a new one"
        ) from None
