"""The run log and report of a command that builds (``bootstrap``, ``build-sequence``),
written when the run ends (succeeded or failed; an interrupted run leaves none), and the
progress reporter with its ETA."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import BootstrapError
from ..eta import Forecast, read_history
from ..failures import RunReport
from ..graph import DependencyGraph
from ..progress import StreamReporter
from ..report import save_run
from ..timeline import Edge, RunRecorder


class RunRecord:
    """The record a command keeps of its run, written once when the run ends: by the
    command (to name the report in its summary), else when :func:`recorded_run` ends."""

    def __init__(self, output_dir: Path, recorder: RunRecorder) -> None:
        self.output_dir = output_dir
        self.recorder = recorder
        #: The run's dependency graph (a bootstrap's), as far as it got.
        self.graph: DependencyGraph | None = None
        #: The dependencies of a run that has no graph (a build sequence's).
        self.edges: Sequence[Edge] = ()
        #: With --keep-going: what failed and what was published.
        self.report: RunReport | None = None
        self.written = False

    def write(self, error: BootstrapError | None = None) -> Path | None:
        """``DIR/logs/run.json`` and ``DIR/report.html`` (the report's path; None when it
        could not be written: a warning, for the run's outcome stands)."""
        self.written = True
        if self.graph is not None:
            self.recorder.dependencies(
                Edge(parent, child, str(kind), requirement)
                for parent, child, kind, requirement in self.graph.edges()
            )
        elif self.edges:
            self.recorder.dependencies(self.edges)
        try:
            return save_run(self.output_dir, self.recorder.run_log(error=error, report=self.report))
        except OSError as e:
            print(f"warning: cannot write the run's report: {e}", file=sys.stderr)
        except Exception as e:  # a bug here must not hide how the run itself ended
            print(
                "warning: the run's report was not written, because of a bug in "
                f"bootstrapper: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
        return None


def progress_reporter(quiet: bool, history_dirs: Sequence[Path], jobs: int) -> StreamReporter:
    """Progress on stderr: a live status line on a terminal, with an ETA when earlier
    runs' build records tell one (never in quiet mode)."""
    live = sys.stderr.isatty() and not quiet
    forecast = Forecast(read_history(history_dirs), jobs) if live else None
    return StreamReporter(sys.stderr, live=live, quiet=quiet, forecast=forecast)


@contextmanager
def recorded_run(output_dir: Path, recorder: RunRecorder, *, quiet: bool) -> Iterator[RunRecord]:
    """Write the run's record when the block ends, unless the block did: whether the run
    succeeded or a :class:`BootstrapError` stopped it (an internal error is one by then),
    naming the report unless ``quiet``."""
    record = RunRecord(output_dir, recorder)
    try:
        yield record
    except BootstrapError as e:
        if not record.written:
            _named(record.write(e), quiet)
        raise
    if not record.written:
        _named(record.write(), quiet)


def _named(path: Path | None, quiet: bool) -> None:
    if path is not None and not quiet:
        print(f"report: {path}", file=sys.stderr)
