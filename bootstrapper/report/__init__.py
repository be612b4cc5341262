"""``DIR/report.html``: the run for a browser, drawn from ``DIR/logs/run.json`` and the
build records (:mod:`.data` reads them, :mod:`.page` draws the page)."""

from __future__ import annotations

from pathlib import Path

from ..fsutil import atomic_write_text
from ..timeline import RUN_FILE, RunLog, read_run_log, write_run_log
from .data import collect
from .page import render

REPORT_FILE = "report.html"


def write_report_page(output_dir: Path, run: RunLog | None = None) -> Path | None:
    """``DIR/report.html`` (atomically) from ``run``, else from the run log in
    ``DIR/logs``; None when there is no run log to draw."""
    if run is None:
        run = read_run_log(output_dir / "logs" / RUN_FILE)
    if run is None:
        return None
    path = output_dir / REPORT_FILE
    atomic_write_text(path, render(collect(output_dir, run)))
    return path


def save_run(output_dir: Path, run: RunLog) -> Path | None:
    """The run log (``DIR/logs/run.json``), then the report drawn from it."""
    write_run_log(output_dir / "logs" / RUN_FILE, run)
    return write_report_page(output_dir, run)


__all__ = ["REPORT_FILE", "save_run", "write_report_page"]
