"""The run log and report of a command that builds (``bootstrap``, ``build-sequence``),
written when the run ends (succeeded or failed; an interrupted run leaves none), and the
progress reporter with its ETA."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import BootstrapError
from ..eta import Forecast, read_history
from ..failures import RunReport
from ..graph import DependencyGraph
from ..progress import StreamReporter
from ..report import save_run
from ..timeline import Edge, RunRecorder


@dataclass
class RunEnd:
    """What the command learns during the run that its record needs at the end."""

    #: The run's dependency graph (a bootstrap's), as far as it got.
    graph: DependencyGraph | None = None
    #: The dependencies of a run that has no graph (a build sequence's).
    edges: Sequence[Edge] = ()
    #: With --keep-going: what failed and what was published.
    report: RunReport | None = None


def progress_reporter(quiet: bool, history_dirs: Sequence[Path], jobs: int) -> StreamReporter:
    """Progress on stderr: a live status line on a terminal, with an ETA when earlier
    runs' build records tell one (never in quiet mode)."""
    live = sys.stderr.isatty() and not quiet
    forecast = Forecast(read_history(history_dirs), jobs) if live else None
    return StreamReporter(sys.stderr, live=live, quiet=quiet, forecast=forecast)


@contextmanager
def recorded_run(output_dir: Path, recorder: RunRecorder, *, quiet: bool) -> Iterator[RunEnd]:
    """Write ``DIR/logs/run.json`` and ``DIR/report.html`` when the block ends, whether
    the run succeeded or a :class:`BootstrapError` stopped it (an internal error is one
    by then). A report that cannot be written is a warning: the run's outcome stands."""
    end = RunEnd()
    try:
        yield end
    except BootstrapError as e:
        save(output_dir, recorder, end, e, quiet=quiet)
        raise
    save(output_dir, recorder, end, None, quiet=quiet)


def save(
    output_dir: Path,
    recorder: RunRecorder,
    end: RunEnd,
    error: BootstrapError | None,
    *,
    quiet: bool,
) -> Path | None:
    if end.graph is not None:
        recorder.dependencies(
            Edge(parent, child, str(kind), requirement)
            for parent, child, kind, requirement in end.graph.edges()
        )
    elif end.edges:
        recorder.dependencies(end.edges)
    try:
        path = save_run(output_dir, recorder.run_log(error=error, report=end.report))
    except OSError as e:
        print(f"warning: cannot write the run's report: {e}", file=sys.stderr)
        return None
    except Exception as e:  # a bug here must not hide how the run itself ended
        print(
            f"warning: the run's report was not written, because of a bug in bootstrapper: "
            f"{type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return None
    if path is not None and not quiet:
        print(f"report: {path}", file=sys.stderr)
    return path
