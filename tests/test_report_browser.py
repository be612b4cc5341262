"""report.html of real runs: drawn by a real browser (headless Chromium) from a real
bootstrap with a failing package, and read back from build-sequence and stopped runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from bootstrapper.cli import main

from .browser import Browser, find_chromium
from .support import FixtureIndex, Project
from .test_report import Texts

HOSTILE = "<script>document.title='pwned'</script>"
FAIL = f"compiler exploded: {HOSTILE}"


def tree() -> list[Project]:
    """good -> shared; bad -> shared, onlybad, mid[fancy]; mid's extra 'fancy' needs
    broken, whose build fails (its log ends with hostile text); tooluser's build needs
    tool, which is built first and makes builds wait for a slot."""
    return [
        Project("good", dependencies=["shared"], tool={"sleep": 0.6}),
        Project("shared", tool={"sleep": 0.4}),
        Project("bad", dependencies=["shared", "onlybad", "mid[fancy]"]),
        Project("onlybad", tool={"sleep": 0.4}),
        Project("mid", optional={"fancy": ["broken"]}),
        Project("broken", pkg_info_version="2.2", tool={"fail": FAIL}),
        Project(
            "tooluser",
            build_requires=["tool"],
            backend="tool",
            pkg_info_version="2.2",
            tool={"sleep": 0.8},
        ),
        Project("tool", tool={"modules": ["tool"]}, files={"src/tool.py": _backend_copy()}),
    ]


def _backend_copy() -> str:
    return (Path(__file__).parent / "fixtures" / "fixture_backend.py").read_text()


def cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("no chromium here: apt-get install chromium (.ci/run installs it)")
    return found


@pytest.fixture
def keep_going_run(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Path]:
    """``bootstrapper bootstrap --keep-going good bad tooluser`` from a working directory,
    into the default ./bootstrap-output."""
    index.add_all(tree(), tmp_path / "sdists")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = cli(
        "bootstrap", "--index-url", index.url, "--jobs", "2", "--keep-going",
        "good", "bad", "tooluser",
    )  # fmt: skip
    assert code == 1
    out = work / "bootstrap-output"
    # The summary names the report, and still ends with the command that installs.
    lines = capsys.readouterr().err.splitlines()
    assert f"report: {out / 'report.html'}" in lines
    assert lines[-1].startswith("install with: pip install")
    yield out


VISIBLE = """
(function (selector) {
  return Array.prototype.map.call(document.querySelectorAll(selector), function (el) {
    var box = el.getBoundingClientRect(), style = getComputedStyle(el);
    return {text: el.textContent, top: box.top + window.scrollY, width: box.width,
            height: box.height, visible: style.visibility !== "hidden" &&
            style.display !== "none" && box.width > 0 && box.height > 0,
            classes: el.getAttribute("class") || "",
            key: el.getAttribute("data-key") || el.getAttribute("data-package")};
  });
})
"""


def shown(browser: Browser, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = browser.evaluate(f"{VISIBLE}({json.dumps(selector)})")
    return found


def test_the_report_of_a_run_with_a_failure_in_a_browser(
    keep_going_run: Path, chromium: str, tmp_path: Path
) -> None:
    out = keep_going_run
    report = out / "report.html"
    assert report.is_file()
    with Browser(chromium, tmp_path / "profile") as browser:
        browser.open(report.as_uri())
        # The log's hostile text did not run.
        assert browser.evaluate("document.title") == "bootstrapper bootstrap: failed"
        assert browser.evaluate("document.scripts.length") == 1

        # The outcome first: above everything else, visible without scrolling.
        [outcome] = shown(browser, "#outcome")
        assert outcome["visible"] and outcome["top"] < 200
        assert outcome["top"] < shown(browser, "#timeline")[0]["top"]
        assert "✗ Failed" in outcome["text"]
        assert "1 package failed" in outcome["text"]
        assert "Published: good, tooluser." in outcome["text"]
        assert "Not published: bad (misses broken==1.0)" in outcome["text"]
        [failure] = shown(browser, "#outcome .failure")
        assert failure["visible"] and failure["key"] == "broken"
        assert "broken 1.0" in failure["text"]
        assert re.search(r"required by bad → mid → broken", failure["text"])
        [error] = shown(browser, "#outcome .failure pre.error")
        assert error["visible"]
        assert "the build backend failed in build_wheel" in error["text"]
        # The log's last lines, shown when opened, as text.
        browser.evaluate("document.querySelector('#outcome details').open = true")
        [details] = shown(browser, "#outcome details pre")
        assert details["visible"] and FAIL in details["text"]
        [log] = shown(browser, "#outcome a.log")
        assert log["visible"] and log["text"] == "full log: logs/broken-1.0.log"

        # The timeline: a visible bar for each time a package held a slot.
        bars = shown(browser, "svg.timeline .bar")
        assert bars and all(bar["visible"] for bar in bars)
        keys = {bar["key"] for bar in bars}
        built = {"good==1.0", "shared==1.0", "onlybad==1.0", "tool==1.0", "tooluser==1.0"}
        assert built | {"broken==1.0", "bad==1.0", "mid==1.0"} <= keys
        assert any("failed" in b["classes"] for b in bars if b["key"] == "broken==1.0")
        lanes = shown(browser, "svg.timeline .lane")
        assert [lane["text"] for lane in lanes] == ["slot 1", "slot 2"]

        # The packages table: one row each, with relative links to files that exist.
        rows = shown(browser, "#packages-table tbody tr")
        assert len(rows) == 8 and all(row["visible"] for row in rows)
        status = {r["key"]: r["classes"] for r in rows}
        assert status["broken==1.0"] == "failed"
        assert status["good==1.0"] == "built"
        links = browser.evaluate(
            "Array.prototype.map.call(document.querySelectorAll('a[href]'), "
            "function (a) { return a.getAttribute('href'); })"
        )
        assert "wheels/good-1.0-py3-none-any.whl" in links
        assert "wheels/good-1.0-py3-none-any.whl.build.json" in links
        assert "logs/broken-1.0.log" in links
        for link in links:
            assert not re.match(r"^[a-z]+:|^/", link), link
            assert (out / unquote(link)).is_file(), link
        # bad was built but not published: its wheel is named, not linked.
        bad = browser.evaluate(
            "document.querySelector('tr[data-package=\"bad==1.0\"]').textContent"
        )
        assert "wheel (not published)" in bad

        # Sorting by build time (twice: descending) puts the slowest build first.
        browser.evaluate(
            "var th = document.querySelectorAll('#packages-table th')[3]; th.click(); th.click()"
        )
        first = browser.evaluate(
            "document.querySelector('#packages-table tbody tr').dataset.package"
        )
        assert first == "tooluser==1.0"
        browser.evaluate(
            "var f = document.getElementById('packages-filter'); f.value = 'tool';"
            "f.dispatchEvent(new Event('input'))"
        )
        left = [r["key"] for r in shown(browser, "#packages-table tbody tr") if r["visible"]]
        assert sorted(left) == ["tool==1.0", "tooluser==1.0"]

        # The graph: every package a visible node, the failure marked, edges drawn.
        nodes = shown(browser, "svg.graph .node")
        assert {n["key"] for n in nodes} == {r["key"] for r in rows}
        assert all(n["visible"] for n in nodes)
        by_key = {n["key"]: n for n in nodes}
        assert "failed" in by_key["broken==1.0"]["classes"]
        assert "root" in by_key["bad==1.0"]["classes"]
        edges = browser.evaluate(
            "Array.prototype.map.call(document.querySelectorAll('svg.graph .edge'), "
            "function (e) { return [e.getAttribute('data-from'), e.getAttribute('data-to'), "
            "e.getAttribute('class'), e.getBoundingClientRect().width > 0]; })"
        )
        assert sorted((a, b) for a, b, _, _ in edges) == [
            ("bad==1.0", "mid==1.0"),
            ("bad==1.0", "onlybad==1.0"),
            ("bad==1.0", "shared==1.0"),
            ("good==1.0", "shared==1.0"),
            ("mid==1.0", "broken==1.0"),  # through mid's extra
            ("tooluser==1.0", "tool==1.0"),
        ]
        assert all(drawn for _, _, _, drawn in edges)
        assert [a for a, _, kind, _ in edges if "build" in kind] == ["tooluser==1.0"]
        # Hovering a node brings its edges forward.
        browser.evaluate(
            "document.querySelector('svg.graph .node[data-key=\"mid==1.0\"]')"
            ".dispatchEvent(new Event('mouseenter'))"
        )
        on = browser.evaluate(
            "Array.prototype.map.call(document.querySelectorAll('svg.graph .edge.on'), "
            "function (e) { return e.getAttribute('data-from') + '>' + "
            "e.getAttribute('data-to'); })"
        )
        assert sorted(on) == ["bad==1.0>mid==1.0", "mid==1.0>broken==1.0"]

        browser.evaluate("document.querySelector('#outcome details').open = false")
        browser.screenshot(tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000


def page_text(path: Path) -> tuple[str, Texts]:
    parsed = Texts()
    parsed.feed(path.read_text(encoding="utf-8"))
    return " ".join(" ".join(parsed.text).split()), parsed


def test_a_run_that_stops_at_a_failure_still_writes_its_report(
    tmp_path: Path, index: FixtureIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = work / "bootstrap-output"
    assert cli("bootstrap", "--index-url", index.url, "--jobs", "2", "bad") == 1

    run = json.loads((out / "logs" / "run.json").read_text())
    assert run["status"] == "failed"
    assert run["error"]["chain"] == ["bad", "mid", "broken"]
    text, parsed = page_text(out / "report.html")
    assert "✗ Failed" in text and "1 package failed" in text
    assert "required by bad → mid → broken" in text
    assert FAIL in text  # the log's last lines, as text
    assert [t for t, _ in parsed.tags if t == "script"] == ["script"]
    # The graph draws how the failure was reached, though no set settled.
    failing = {
        (attrs["data-from"], attrs["data-to"])
        for tag, attrs in parsed.tags
        if tag == "path" and "failing" in (attrs.get("class") or "")
    }
    assert failing == {("bad==1.0", "mid==1.0"), ("mid==1.0", "broken==1.0")}

    # Fixed upstream: the same command succeeds and the report says so.
    index.add(Project("broken", pkg_info_version="2.2"), tmp_path / "fixed")
    assert cli("bootstrap", "--index-url", index.url, "--jobs", "2", "bad") == 0
    text, parsed = page_text(out / "report.html")
    assert "✓ Succeeded" in text and "Failed" not in text
    rows = {
        attrs["data-package"]: attrs["class"]
        for tag, attrs in parsed.tags
        if tag == "tr" and attrs.get("data-package")
    }
    # broken (fixed) is built; what the first run finished before it stopped is reused.
    outcomes = {
        f"{p['name']}=={p['version']}": p["outcome"]
        for p in json.loads((out / "logs" / "run.json").read_text())["packages"]
    }
    assert rows == outcomes
    assert rows["broken==1.0"] == "built"
    assert set(rows.values()) <= {"built", "reused"}


def test_build_sequence_writes_its_report(keep_going_run: Path, tmp_path: Path) -> None:
    work = keep_going_run.parent
    assert (
        cli("build-sequence", "bootstrap-output/build-order.json", "--output-dir", "rebuilt") == 0
    )
    report = work / "rebuilt" / "report.html"
    text, parsed = page_text(report)
    assert "bootstrapper build-sequence" in text and "✓ Succeeded" in text
    order = json.loads((keep_going_run / "build-order.json").read_text())
    rows = {
        attrs["data-package"]: attrs["class"]
        for tag, attrs in parsed.tags
        if tag == "tr" and attrs.get("data-package")
    }
    assert rows == {f"{e['name']}=={e['version']}": "built" for e in order}
    nodes = {
        attrs["data-key"] for tag, attrs in parsed.tags if tag == "g" and attrs.get("data-key")
    }
    assert nodes == set(rows)
    # tooluser's build environment held tool: an edge of the drawing.
    edges = {
        (attrs["data-from"], attrs["data-to"])
        for tag, attrs in parsed.tags
        if tag == "path" and attrs.get("data-from")
    }
    assert ("tooluser==1.0", "tool==1.0") in edges
    assert json.loads((work / "rebuilt" / "logs" / "run.json").read_text())["command"] == (
        "build-sequence"
    )


def test_a_report_that_cannot_be_written_does_not_change_the_outcome(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("good"), tmp_path / "sdists")
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)  # where the page would go, a directory
    run = bootstrap("good", output=out)
    assert run.code == 0, run.stderr
    assert "warning: cannot write the run's report: " in run.stderr
    assert "Traceback" not in run.stderr
    assert (out / "simple" / "good").is_dir()
    assert json.loads((out / "logs" / "run.json").read_text())["status"] == "succeeded"
