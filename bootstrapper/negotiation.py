"""PEP 691 content negotiation: which form of an index page (HTML or JSON) an ``Accept``
header asks for. Pure functions; the server (:mod:`.serve`) applies them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .simple_json import JSON_MEDIA_TYPE

HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"


class Form(Enum):
    """The two forms a page of the index exists in."""

    HTML = "html"
    JSON = "json"


@dataclass(frozen=True)
class Choice:
    """The form to answer with and the media type to label it with."""

    form: Form
    media_type: str


#: What a page can be served as, in the server's order of preference (the first wins a
#: tie the client leaves open, as ``*/*`` does: HTML, which every client and browser reads).
_OFFERS: tuple[tuple[str, Form, tuple[str, ...]], ...] = (
    (TEXT_HTML, Form.HTML, (TEXT_HTML,)),
    (HTML_V1, Form.HTML, (HTML_V1, "application/vnd.pypi.simple.latest+html")),
    (JSON_MEDIA_TYPE, Form.JSON, (JSON_MEDIA_TYPE, "application/vnd.pypi.simple.latest+json")),
)


@dataclass(frozen=True)
class _Range:
    media_range: str
    quality: float
    position: int

    def specificity(self, media_type: str, aliases: Sequence[str]) -> int | None:
        """How closely this range names ``media_type`` (2 exactly, 1 by ``type/*``,
        0 by ``*/*``), or ``None`` if it does not."""
        if self.media_range in aliases:
            return 2
        kind = media_type.split("/", 1)[0]
        if self.media_range == f"{kind}/*":
            return 1
        if self.media_range == "*/*":
            return 0
        return None


def _parse_accept(header: str) -> list[_Range]:
    ranges = []
    for position, part in enumerate(header.split(",")):
        media_range, *params = (p.strip() for p in part.split(";"))
        if not media_range or "/" not in media_range:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0  # a range whose weight cannot be read is not relied on
        ranges.append(_Range(media_range.lower(), quality, position))
    return ranges


def choose(accept: str | None, available: Sequence[Form]) -> Choice | None:
    """The form (and media type) to serve for an ``Accept`` header among the forms
    ``available``, or ``None`` when the client accepts none of them (HTTP 406).

    Each media type takes the weight of the most specific range that names it (RFC 9110:
    ``text/html;q=0`` refuses HTML even beside ``*/*``); the highest weight wins, then a
    type named exactly over one reached by a wildcard, then the client's order, then the
    server's. No header at all accepts anything (HTML first)."""
    offers = [offer for offer in _OFFERS if offer[1] in available]
    if not offers:
        return None
    if accept is None or not accept.strip():
        media_type, form, _ = offers[0]
        return Choice(form, media_type)
    ranges = _parse_accept(accept)
    best: tuple[float, int, int, int] | None = None
    chosen: Choice | None = None
    for preference, (media_type, form, aliases) in enumerate(offers):
        matches = [
            (specificity, r)
            for r in ranges
            if (specificity := r.specificity(media_type, aliases)) is not None
        ]
        if not matches:
            continue
        specificity, matched = max(matches, key=lambda m: (m[0], m[1].quality))
        if matched.quality <= 0:
            continue
        rank = (matched.quality, specificity, -matched.position, -preference)
        if best is None or rank > best:
            best, chosen = rank, Choice(form, media_type)
    return chosen


def choose_by_format(value: str, available: Sequence[Form]) -> Choice | None:
    """PEP 691's ``?format=`` URL parameter: the one media type it names, if served."""
    for media_type, form, aliases in _OFFERS:
        if value.strip().lower() in aliases and form in available:
            return Choice(form, media_type)
    return None
