"""Release age: leave out files uploaded after a cut-off (``--exclude-newer``,
``--min-release-age``), by the upload times an index gives (PEP 700).

Pure: the cut-off is computed from a clock reading the caller passes in, and a page is
filtered without I/O.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ReleaseAgeUnsupportedError
from .index import ProjectPage

#: A date alone: ``2024-05-01``.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 timestamp with a time zone (``2024-05-01T12:00:00Z``,
    ``2024-05-01T14:00:00+02:00``), or a date alone, which means the start of that day
    in UTC. Returned aware, in UTC; raises ``ValueError`` with the reason."""
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a timestamp: {text!r} (give e.g. 2024-05-01T12:00:00Z or 2024-05-01)"
        ) from None
    if _DATE.fullmatch(text):
        return parsed.replace(tzinfo=UTC)
    if parsed.tzinfo is None:
        raise ValueError(
            f"{text!r} has no time zone: add one (Z for UTC, or e.g. +02:00), or give a date alone"
        )
    return parsed.astimezone(UTC)


def parse_days(text: str) -> float:
    """A number of days (fractions allowed), 0 or more."""
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"not a number of days: {text!r}") from None
    if not 0 <= days < 100_000:
        raise ValueError(f"must be a number of days from 0 to 99999: {text!r}")
    return days


def format_timestamp(moment: datetime) -> str:
    """``moment`` as RFC 3339 in UTC, with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ReleaseAge:
    """The release-age options of a run and the one cut-off they make for all of it."""

    #: Files uploaded after this are left out (the earlier of the two options).
    uploaded_before: datetime
    exclude_newer: datetime | None = None
    min_release_age_days: float | None = None

    @classmethod
    def of(
        cls, now: datetime, exclude_newer: datetime | None, min_release_age_days: float | None
    ) -> ReleaseAge | None:
        """The release age the options ask for at ``now``, or ``None`` when neither is
        given. With both, a file must pass both: the earlier cut-off applies."""
        cutoffs = []
        if exclude_newer is not None:
            cutoffs.append(exclude_newer)
        if min_release_age_days is not None:
            cutoffs.append(now - timedelta(days=min_release_age_days))
        if not cutoffs:
            return None
        return cls(min(cutoffs), exclude_newer, min_release_age_days)

    def describe(self) -> str:
        """The options as a person would have typed them."""
        parts = []
        if self.exclude_newer is not None:
            parts.append(f"--exclude-newer {format_timestamp(self.exclude_newer)}")
        if self.min_release_age_days is not None:
            parts.append(f"--min-release-age {self.min_release_age_days:g}")
        return " and ".join(parts)


def uploaded_by(page: ProjectPage, age: ReleaseAge, index_url: str) -> ProjectPage:
    """``page`` without the files uploaded after ``age``'s cut-off. An index that does
    not give the upload time of a file cannot say whether it is too new: refused."""
    for file in page.files:
        if file.upload_time is None:
            raise ReleaseAgeUnsupportedError(
                f"{age.describe()} needs the upload time of every file, and the index "
                f"{index_url} gives none for {file.filename} (its pages are not PEP 691 "
                "JSON with PEP 700 upload times); use an index that gives them (such as "
                "https://pypi.org/simple/), or run without the option",
                package=page.name,
            )
    kept = tuple(
        file
        for file in page.files
        if file.upload_time is not None and file.upload_time <= age.uploaded_before
    )
    return page if len(kept) == len(page.files) else dataclasses.replace(page, files=kept)
