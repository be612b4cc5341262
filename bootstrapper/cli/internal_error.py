"""The last resort for a bug: an exception no layer turned into a :class:`BootstrapError`.

The user gets one paragraph naming the exception and the file its traceback went to;
the terminal never shows a traceback. Everything shown or written is stripped of URL
credentials, like every other message.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..credentials import redact_text
from ..errors import InternalError
from ..fsutil import atomic_write_text

#: The longest exception message quoted on the terminal (the file has all of it).
MAX_SHOWN = 300


def internal_error(error: BaseException, traceback_file: Path | None) -> InternalError:
    """The one-paragraph error for a bug, given where its traceback was written."""
    kind = type(error).__qualname__
    if type(error).__module__ != "builtins":
        kind = f"{type(error).__module__}.{kind}"
    text = redact_text(str(error)).strip()
    shown = text.splitlines()[0] if text else ""
    if len(shown) > MAX_SHOWN or shown != text:
        shown = shown[:MAX_SHOWN].rstrip() + " ..."
    where = (
        f"the full traceback is in {traceback_file}"
        if traceback_file is not None
        else "its traceback could not be written to a file"
    )
    return InternalError(
        f"internal error: {kind}" + (f": {shown}" if shown else "") + ". This is a bug in "
        f"bootstrapper, not a problem with what you asked for; {where}. Please report it "
        "to bootstrapper's maintainers with that file and the command you ran."
    )


def write_traceback(
    error: BaseException, argv: Sequence[str], directory: Path | None
) -> Path | None:
    """Write the traceback of ``error`` (with the command line and versions) to a new file
    in ``directory`` if that is possible, else in the system's temporary directory; return
    the file, or ``None`` when neither can be written."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = f"internal-error-{stamp}-{os.getpid()}.log"
    report = "".join(
        [
            f"bootstrapper {__version__} on Python {platform.python_version()} ({sys.platform})\n",
            "command: bootstrapper " + " ".join(redact_text(arg) for arg in argv) + "\n\n",
            *(redact_text(line) for line in traceback.format_exception(error)),
        ]
    )
    places = []
    # Only beside an output directory that exists: a bug is no reason to make one.
    if directory is not None and directory.parent.is_dir():
        places.append(directory / name)
    places.append(Path(tempfile.gettempdir()) / f"bootstrapper-{name}")
    for path in places:
        try:
            atomic_write_text(path, report)
        except OSError:
            continue
        return path
    return None
