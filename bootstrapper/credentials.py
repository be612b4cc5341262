"""Credentials in URLs: used for requests, never shown.

A URL such as ``https://user:TOKEN@host/simple/`` carries its credentials in the
*userinfo*. :func:`split_credentials` takes them out once, at the edge where a URL enters
the process (the HTTP client keeps them per origin); :func:`redact_url` and
:func:`redact_text` are for whatever still has to be shown (git's own messages, a URL the
user gave that is echoed back).

Only ``scheme://`` URLs have userinfo. The scp-like git form ``git@host:org/repo.git`` is
left as it is: its ``git@`` is an ssh login name, not a secret (ssh authenticates with
keys), and it is what the user wrote in the settings.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

#: ``scheme://`` followed by userinfo, up to the last ``@`` before the end of the
#: authority (``/``, ``?``, ``#`` or whitespace), the way ``urllib.parse.urlsplit`` and
#: httpx find the host.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Credentials:
    """A user name and password (percent-decoded); the password never appears in a repr."""

    username: str
    password: str = ""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``https://u:p@host/x`` -> ``https://host/x``);
    anything else, including an scp-like ``git@host:path``, unchanged."""
    return _USERINFO.sub(r"\g<scheme>", url, count=1) if _USERINFO.match(url) else url


def redact_text(text: str) -> str:
    """``text`` with the userinfo of every ``scheme://`` URL in it removed (for messages
    written by other programs, such as git's)."""
    return _USERINFO.sub(r"\g<scheme>", text)


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """``url`` without its userinfo, and the credentials it carried (``None`` if none)."""
    clean = redact_url(url)
    if clean == url:
        return url, None
    parts = urllib.parse.urlsplit(url)
    username = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    return clean, Credentials(username, password)


def origin(url: str) -> tuple[str, str, int | None]:
    """The (scheme, host, port) that credentials given for ``url`` are sent to."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)
