"""The run log and the pieces of report.html, as pure functions: the recorder's slots and
failures, the run log's JSON, the graph's layout, the SVG and HTML builders."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from bootstrapper.errors import BuildError
from bootstrapper.failures import Failure, Status
from bootstrapper.graph import NodeKey
from bootstrapper.report.data import FileLink, PackageRow, ReportData, Shown, href
from bootstrapper.report.graph_svg import graph_svg, layers, layout
from bootstrapper.report.page import SCRIPT, render, script_hash
from bootstrapper.report.timeline_svg import tick_step, timeline_svg, waiting_steps
from bootstrapper.timeline import (
    Edge,
    Outcome,
    PackageTimes,
    Phase,
    RunLog,
    RunRecorder,
    SlotSpan,
)

HOSTILE = "<script>document.title='pwned'</script>"


def key(name: str, version: str = "1.0") -> NodeKey:
    return NodeKey(canonicalize_name(name), Version(version))


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the recorder ----------------------------------------------------------------------


def test_recorder_puts_each_build_on_the_lowest_free_slot() -> None:
    clock = Clock()
    recorder = RunRecorder("bootstrap", ["app"], 2, clock=clock)
    a, b, c = key("a"), key("b"), key("c")
    for k in (a, b, c):
        recorder.queued(k)
        recorder.slot_asked(k)
    recorder.slot_taken(a)
    recorder.started(a, "building")
    clock.now += 1
    recorder.slot_taken(b)
    clock.now += 2
    recorder.slot_given_back(a)
    recorder.finished(a, reused=False)
    recorder.slot_taken(c)  # a's slot, which c waited three seconds for
    clock.now += 1
    recorder.slot_given_back(c)
    recorder.finished(c, reused=False)
    log = recorder.run_log()
    times = {p.key: p for p in log.packages}
    assert times[a].spans == (SlotSpan(0, 0.0, 0.0, 3.0),)
    assert times[b].spans == (SlotSpan(1, 0.0, 1.0, None),)  # still held at the end
    assert times[c].spans == (SlotSpan(0, 0.0, 3.0, 4.0),)
    assert times[c].slot_wait() == 3.0
    assert times[a].build_seconds() == 3.0
    assert times[b].outcome is Outcome.UNFINISHED
    assert log.duration == 4.0 and log.status == "succeeded"


def test_recorder_tells_a_failure_from_the_packages_it_blocked() -> None:
    recorder = RunRecorder("bootstrap", ["app"], 1, clock=Clock())
    error = BuildError("the build backend failed", package="tool", chain=("app", "tool"))
    recorder.failed(key("tool"), error)
    recorder.failed(key("app"), error)  # the same error, arriving where it waited
    log = recorder.run_log(error=error)
    assert log.status == "failed"
    assert log.error is not None and log.error.message == "the build backend failed"
    failures = {f.name: f for f in log.failures}
    assert failures["tool"].status is Status.FAILED
    assert failures["tool"].chain == ("app", "tool")
    assert failures["app"].status is Status.BLOCKED
    assert failures["app"].blocked_by == ("tool==1.0",)
    assert [f.name for f in log.failures] == ["tool", "app"]  # failures first


def test_a_stopped_run_draws_the_chain_of_its_failure() -> None:
    """A run stopped by a failure never recorded the edges of its unsettled sets: the
    failure's chain adds the steps the graph lacks, where each name is one package."""
    recorder = RunRecorder("bootstrap", ["app"], 1, clock=Clock())
    for name in ("app", "mid", "broken", "other"):
        recorder.queued(key(name))
    recorder.queued(key("other", "2.0"))
    recorder.dependencies([Edge(key("app"), key("mid"), "install", "mid[fancy]")])
    error = BuildError("boom", package="broken", chain=("app", "Mid", "broken", "other"))
    recorder.failed(key("broken"), error)
    log = recorder.run_log(error=error)
    assert log.edges == (
        Edge(key("app"), key("mid"), "install", "mid[fancy]"),
        Edge(key("mid"), key("broken"), "chain", "broken"),
    )


def test_run_log_round_trips_through_json() -> None:
    log = RunLog(
        command="bootstrap",
        started_at="2026-01-01T00:00:00Z",
        duration=12.5,
        jobs=2,
        requirements=("app[fancy]",),
        status="failed",
        failures=(
            Failure("broken", "1.0", Status.FAILED, ("app", "broken"), "boom", "last lines"),
        ),
        published=("good",),
        not_published=(("app[fancy]", ("broken==1.0",)),),
        packages=(
            PackageTimes(
                key("broken"),
                0.5,
                Outcome.FAILED,
                3.0,
                (Phase("building", 1.0),),
                (SlotSpan(0, 0.5, 1.0, 3.0),),
                None,
                "tcp://worker:1",
            ),
        ),
        edges=(Edge(key("app"), key("broken"), "install", "broken; extra == 'fancy'"),),
    )
    assert RunLog.from_json(log.to_json()) == log


# -- the graph -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ([], {"a": 0, "b": 0}),
        ([("a", "b")], {"a": 1, "b": 0}),
        # a diamond: d is under both, a above the longer way
        ([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")], None),
        # an install cycle a <-> b: broken where the walk meets it, below c
        ([("a", "b"), ("b", "a"), ("c", "a")], {"a": 1, "b": 0, "c": 2}),
        ([("a", "a")], {"a": 0, "b": 0}),
        # an edge to a node not drawn is left out
        ([("a", "zzz")], {"a": 0, "b": 0}),
    ],
)
def test_layers(edges: list[tuple[str, str]], expected: dict[str, int] | None) -> None:
    nodes = sorted({n for edge in edges for n in edge if n != "zzz"} | {"a", "b"})
    found = layers(nodes, edges)
    if expected is None:
        expected = {"a": 2, "b": 1, "c": 1, "d": 0}
    assert found == expected


def test_layout_gives_each_node_its_own_place_and_needs_to_the_left() -> None:
    nodes = [f"n{i}" for i in range(40)]
    edges = [(f"n{i}", f"n{j}") for i in range(40) for j in range(i) if (i * 7 + j) % 11 == 0]
    placed = layout(nodes, edges)
    assert set(placed.position) == set(nodes)
    assert len(set(placed.position.values())) == len(nodes)
    for parent, child in edges:
        assert placed.position[parent][0] > placed.position[child][0]
    assert placed.rows == max(
        sum(1 for c, _ in placed.position.values() if c == col) for col in range(placed.columns)
    )


def test_the_barycentre_sweeps_untangle_a_crossing() -> None:
    # Sorted by name, x1 sits over b's child and x2 over a's: the sweeps swap them.
    nodes = ["a", "b", "x1", "x2"]
    edges = [("a", "x2"), ("b", "x1")]
    placed = layout(nodes, edges)
    rows = {n: r for n, (_, r) in placed.position.items()}
    assert (rows["a"] < rows["b"]) == (rows["x2"] < rows["x1"])


def test_graph_svg_escapes_names_and_requirements() -> None:
    svg = graph_svg(
        ["a==1.0", "b==1.0"],
        [("a==1.0", "b==1.0", "install", f'b; extra == "{HOSTILE}"')],
        status={"a==1.0": "built", "b==1.0": "failed"},
        top_level=["a"],
        titles={"b==1.0": f"b — {HOSTILE}"},
    )
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    assert 'class="node failed"' in svg and 'class="node built root"' in svg
    assert svg.count("<path") == 1


# -- the timeline --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "step"), [(3, 1), (10, 1), (11, 2), (95, 10), (600, 60), (5000, 600)]
)
def test_tick_step(duration: float, step: int) -> None:
    assert tick_step(duration) == step


def test_waiting_steps_count_the_packages_waiting_for_a_slot() -> None:
    packages = [
        PackageTimes(key("a"), 0, Outcome.BUILT, 5, spans=(SlotSpan(0, 0, 0, 5),)),
        PackageTimes(key("b"), 0, Outcome.BUILT, 6, spans=(SlotSpan(0, 1, 5, 6),)),
        PackageTimes(key("c"), 0, Outcome.BUILT, 7, spans=(SlotSpan(0, 2, 6, 7),)),
        PackageTimes(key("d"), 0, Outcome.UNFINISHED, None, still_waiting=6.5),
    ]
    assert waiting_steps(packages, 8.0) == [(1, 1), (2, 2), (5, 1), (6, 0), (6.5, 1), (8.0, 0)]


def test_timeline_svg_draws_a_bar_per_slot_span() -> None:
    packages = [
        PackageTimes(
            key("a"), 0, Outcome.BUILT, 5, (Phase("building", 2),), (SlotSpan(0, 0, 0, 5),)
        ),
        PackageTimes(key("b"), 0, Outcome.FAILED, 4, spans=(SlotSpan(1, 1, 1, 4),)),
    ]
    svg = timeline_svg(packages, 6.0, 2)
    assert svg.count('class="bar built"') == 1 and svg.count('class="bar failed"') == 1
    assert svg.count('class="build"') == 1  # a's build proper, darker
    assert "slot 1" in svg and "slot 2" in svg
    assert "no build waited for a slot" in svg


# -- the page ------------------------------------------------------------------------


class Texts(HTMLParser):
    """The page's elements by tag, and its text, as a browser without scripts sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def hostile_report() -> ReportData:
    broken, app = key("broken"), key("app")
    run = RunLog(
        command="bootstrap",
        started_at="2026-01-01T00:00:00Z",
        duration=10.0,
        jobs=2,
        requirements=("app[fancy]",),
        status="failed",
        failures=(
            Failure(
                "broken",
                "1.0",
                Status.FAILED,
                ("app", "broken"),
                f"broken: the build failed: {HOSTILE}",
                f"error: {HOSTILE}\n<img src=x onerror=alert(1)>",
                Path("/out/logs/broken-1.0.log"),
            ),
        ),
        packages=(
            PackageTimes(
                app, 0, Outcome.BUILT, 4, (Phase("building", 1),), (SlotSpan(0, 0, 0, 4),)
            ),
            PackageTimes(broken, 0, Outcome.FAILED, 6, spans=(SlotSpan(1, 0, 2, 6),)),
        ),
        edges=(Edge(app, broken, "install", f"broken; extra == '{HOSTILE}'"),),
    )
    rows = (
        PackageRow(
            app,
            Shown.BUILT,
            run.packages[0],
            3.0,
            wheel=FileLink("app-1.0-py3-none-any.whl", "wheels/app-1.0-py3-none-any.whl", 2048),
            log=FileLink("app-1.0.log", "logs/app-1.0.log"),
        ),
        PackageRow(broken, Shown.FAILED, run.packages[1], None),
    )
    return ReportData(run, rows, {"/out/logs/broken-1.0.log": "logs/broken-1.0.log"})


def test_render_shows_hostile_text_as_text() -> None:
    page = render(hostile_report())
    parsed = Texts()
    parsed.feed(page)
    # One script: the page's own; no element came from the error or the log.
    assert [t for t, _ in parsed.tags if t == "script"] == ["script"]
    assert not any(t == "img" for t, _ in parsed.tags)
    text = "".join(parsed.text)
    assert f"broken: the build failed: {HOSTILE}" in text
    assert "<img src=x onerror=alert(1)>" in text


def test_render_marks_the_edges_along_a_failure_chain() -> None:
    parsed = Texts()
    parsed.feed(render(hostile_report()))
    paths = [attrs for tag, attrs in parsed.tags if tag == "path"]
    assert [(p["data-from"], p["data-to"], p["class"]) for p in paths] == [
        ("app==1.0", "broken==1.0", "edge install failing")
    ]


def test_render_puts_the_outcome_first() -> None:
    page = render(hostile_report())
    assert page.index('id="outcome"') < page.index('id="counts"') < page.index('id="timeline"')
    assert page.index('id="timeline"') < page.index('id="packages"') < page.index('id="graph"')
    parsed = Texts()
    parsed.feed(page)
    text = " ".join(parsed.text)
    assert "✗ Failed" in text and "1 package failed" in text
    assert re.search(r"required by\s+app\s+→\s+broken", text)


def test_render_links_stay_inside_the_directory() -> None:
    parsed = Texts()
    parsed.feed(render(hostile_report()))
    links = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert "logs/broken-1.0.log" in links and "wheels/app-1.0-py3-none-any.whl" in links
    assert all(link and not re.match(r"^[a-z]+:|/", link) for link in links), links
    # Nothing is fetched: no element names a source.
    assert not [attrs for _, attrs in parsed.tags if "src" in attrs]


def test_the_content_security_policy_lets_only_the_page_script_run() -> None:
    page = render(hostile_report())
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert script_hash() == f"'sha256-{digest}'"
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy is not None
    assert "default-src &#x27;none&#x27;" in policy.group(1)
    assert f"script-src &#x27;sha256-{digest}&#x27;" in policy.group(1)
    assert f"<script>{SCRIPT}</script>" in page


def test_render_of_a_run_that_reused_everything() -> None:
    app = key("app")
    times = PackageTimes(app, 0, Outcome.REUSED, 0.1)
    run = RunLog(
        "bootstrap", "2026-01-01T00:00:00Z", 0.4, 4, ("app",), "succeeded", packages=(times,)
    )
    rows = (PackageRow(app, Shown.REUSED, times, 42.0, earlier=True),)
    page = render(ReportData(run, rows))
    assert "✓ Succeeded" in page
    assert "1 wheel: 0 built, 1 reused" in page
    assert "everything was reused" in page
    assert "42.0s (earlier)" in page


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("logs/a-1.0.log", "logs/a-1.0.log"),
        ("wheels/a b#1.whl", "wheels/a%20b%231.whl"),
        ("../elsewhere.log", None),
    ],
)
def test_href_is_relative_to_the_report(tmp_path: Path, path: str, expected: str | None) -> None:
    base = tmp_path / "out"
    base.mkdir()
    assert href(base / path, base) == expected
