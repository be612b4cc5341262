"""``report.html`` from a :class:`~.data.ReportData`: a pure function, one self-contained
page (its style and script inline, nothing fetched), every text from the run escaped.

The page's content security policy allows no network and only the page's own script
(by its hash), so even a text that escaped escaping could not run.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterable
from html import escape
from itertools import pairwise

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..eta import format_duration
from ..failures import Failure, Status
from ..metadiff import MetadataDiff
from .data import FileLink, PackageRow, ReportData, Shown
from .graph_svg import graph_svg
from .timeline_svg import timeline_svg

#: The order the packages table and the counts list statuses in.
STATUS_ORDER = tuple(Shown)

STYLE = """
:root { --fg:#1d2330; --muted:#5b6577; --line:#d9dee7; --bg:#f6f7f9; --card:#fff;
  --built:#2e9d5b; --build:#1f6e40; --reused:#8fa7c9; --pre-built:#8e6cc4;
  --fallback:#c98a2b; --failed:#d64545; --blocked:#e39b3a; --unfinished:#a9afba; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
main { max-width:1240px; margin:0 auto; padding:20px 24px 48px; }
header p { margin:2px 0; color:var(--muted); }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:17px; margin:28px 0 10px; }
section.card, .outcome { background:var(--card); border:1px solid var(--line);
  border-radius:10px; padding:16px 18px; }
.outcome { margin-top:16px; border-left:6px solid var(--built); }
.outcome.failed { border-left-color:var(--failed); }
.outcome h2 { margin:0 0 6px; font-size:20px; }
.outcome.failed h2 { color:var(--failed); }
.outcome.succeeded h2 { color:var(--build); }
.failure { border-top:1px solid var(--line); padding:12px 0 4px; }
.failure h3 { margin:0; font-size:15px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px;
  color:#fff; background:var(--unfinished); vertical-align:1px; }
.badge.failed, .badge.unresolved { background:var(--failed); }
.badge.blocked { background:var(--blocked); }
.badge.built { background:var(--built); }
.badge.reused { background:var(--reused); }
.badge.pre-built { background:var(--pre-built); }
.badge.fallback { background:var(--fallback); }
ul.changes { margin:0; padding-left:0; list-style:none; font-family:monospace; }
ul.changes li.minus { color:var(--failed); }
ul.changes li.plus { color:var(--build); }
.chain { color:var(--muted); margin:4px 0; }
.chain b { color:var(--fg); }
pre { background:#f2f3f6; border:1px solid var(--line); border-radius:6px; padding:8px 10px;
  overflow:auto; max-height:320px; margin:6px 0; white-space:pre-wrap;
  font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
pre.error { background:#fdf0f0; border-color:#f1c4c4; }
.counts { display:flex; flex-wrap:wrap; gap:10px; margin-top:14px; }
.count { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:10px 14px; min-width:120px; }
.count b { display:block; font-size:22px; }
.count span { color:var(--muted); font-size:12.5px; }
.scroll { overflow:auto; max-height:80vh; background:var(--card); border:1px solid var(--line);
  border-radius:10px; }
svg text { font:11px system-ui,sans-serif; fill:var(--fg); }
svg.timeline { display:block; width:100%; height:auto; }
.axis line { stroke:#e6e9ef; } .axis text { fill:var(--muted); text-anchor:middle; }
.lane-bg { fill:#fafbfc; stroke:#eef0f4; } .lane-label { fill:var(--muted); }
.bar .held { fill:var(--built); opacity:.55; } .bar .build { fill:var(--build); }
.bar.failed .held { fill:var(--failed); opacity:.6; } .bar.failed .build { fill:#a82c2c; }
.bar.unfinished .held { fill:var(--unfinished); } .bar.unfinished .build { fill:#7c828c; }
.bar.reused .held { fill:var(--reused); } .bar.blocked .held { fill:var(--blocked); }
.bar text { fill:#fff; pointer-events:none; }
.bar:hover rect { stroke:var(--fg); stroke-width:1.5; }
.waiting-area { fill:var(--blocked); opacity:.55; } .note { fill:var(--muted); }
.legend { display:flex; flex-wrap:wrap; gap:14px; color:var(--muted); font-size:12.5px;
  margin:6px 0 8px; }
.legend i { display:inline-block; width:12px; height:12px; border-radius:3px;
  vertical-align:-2px; margin-right:5px; background:var(--unfinished); }
.legend i.build-edge { height:3px; vertical-align:3px; background:var(--fallback); }
.legend i.install-edge { height:3px; vertical-align:3px; background:#9aa3b2; }
.legend i.chain-edge { height:3px; vertical-align:3px; background:var(--failed); }
table { border-collapse:collapse; width:100%; background:var(--card); font-size:13px; }
th, td { text-align:left; padding:5px 10px; border-bottom:1px solid var(--line);
  white-space:nowrap; }
th { position:sticky; top:0; background:#eef1f5; cursor:pointer; user-select:none; }
th[aria-sort=ascending]::after { content:" ▲"; } th[aria-sort=descending]::after { content:" ▼"; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.failed td, tr.blocked td { background:#fff6f4; }
tr.hidden { display:none; }
.muted { color:var(--muted); }
input[type=search] { padding:6px 10px; border:1px solid var(--line); border-radius:6px;
  width:280px; margin-bottom:8px; font:inherit; }
.graph .edge { fill:none; stroke:#9aa3b2; stroke-width:1; opacity:.55; }
.graph .edge.build { stroke:var(--fallback); stroke-dasharray:4 3; }
.graph .edge.failing { stroke:var(--failed); stroke-width:2; opacity:.9; }
.graph .node rect { fill:#fff; stroke:var(--unfinished); stroke-width:1.5; }
.graph .node.built rect { stroke:var(--built); fill:#eaf6ef; }
.graph .node.reused rect { stroke:var(--reused); fill:#eef3fa; }
.graph .node.pre-built rect { stroke:var(--pre-built); fill:#f3eefa; }
.graph .node.fallback rect { stroke:var(--fallback); fill:#fbf2e4; }
.graph .node.failed rect { stroke:var(--failed); fill:#fbe5e5; stroke-width:2.5; }
.graph .node.blocked rect { stroke:var(--blocked); fill:#fcf0df; }
.graph .node.root rect { stroke-width:3; }
.graph .node { cursor:pointer; }
.graph.focus .edge { opacity:.07; } .graph.focus .node { opacity:.35; }
.graph.focus .edge.on { opacity:1; stroke-width:2; }
.graph.focus .node.on { opacity:1; }
footer { margin-top:30px; color:var(--muted); font-size:12px; }
"""

SCRIPT = """
(function () {
  var table = document.getElementById("packages-table");
  if (table) {
    var body = table.tBodies[0];
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
          other.removeAttribute("aria-sort");
        });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column].getAttribute("data-sort") || a.cells[column].textContent;
          var y = b.cells[column].getAttribute("data-sort") || b.cells[column].textContent;
          var nx = parseFloat(x), ny = parseFloat(y);
          var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
    var filter = document.getElementById("packages-filter");
    filter.addEventListener("input", function () {
      var wanted = filter.value.toLowerCase();
      Array.prototype.forEach.call(body.rows, function (row) {
        row.classList.toggle("hidden", row.textContent.toLowerCase().indexOf(wanted) < 0);
      });
    });
  }
  var graph = document.querySelector("svg.graph");
  if (graph) {
    var focus = function (key) {
      graph.classList.toggle("focus", key !== null);
      Array.prototype.forEach.call(graph.querySelectorAll(".on"), function (el) {
        el.classList.remove("on");
      });
      if (key === null) { return; }
      Array.prototype.forEach.call(graph.querySelectorAll(".edge"), function (edge) {
        var from = edge.getAttribute("data-from"), to = edge.getAttribute("data-to");
        if (from === key || to === key) {
          edge.classList.add("on");
          Array.prototype.forEach.call(graph.querySelectorAll(".node"), function (node) {
            var other = node.getAttribute("data-key");
            if (other === from || other === to) { node.classList.add("on"); }
          });
        }
      });
      Array.prototype.forEach.call(graph.querySelectorAll(".node"), function (node) {
        if (node.getAttribute("data-key") === key) { node.classList.add("on"); }
      });
    };
    Array.prototype.forEach.call(graph.querySelectorAll(".node"), function (node) {
      node.addEventListener("mouseenter", function () { focus(node.getAttribute("data-key")); });
      node.addEventListener("focus", function () { focus(node.getAttribute("data-key")); });
      node.addEventListener("mouseleave", function () { focus(null); });
    });
  }
})();
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _link(file: FileLink | None, text: str) -> str:
    if file is None:
        return ""
    if file.href is None:
        return (
            f'<span class="muted" title="{_e(file.name)}, kept in the private store">'
            f"{_e(text)} (not published)</span>"
        )
    return f'<a href="{_e(file.href)}" title="{_e(file.name)}">{_e(text)}</a>'


def _seconds(seconds: float) -> str:
    """A duration with tenths below ten seconds (a fixture's builds take a second)."""
    return f"{seconds:.1f}s" if seconds < 9.95 else format_duration(seconds)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _chain(chain: Iterable[str]) -> str:
    names = [f"<b>{_e(n)}</b>" for n in chain]
    return " → ".join(names)


def _failure(failure: Failure, data: ReportData) -> str:
    label = failure.label
    parts = [
        f'<article class="failure" data-package="{_e(failure.name)}">',
        f'<h3>{_e(label)} <span class="badge {_e(failure.status)}">{_e(failure.status)}</span>',
    ]
    if failure.fallback:
        parts.append(' <span class="badge fallback">took the index\'s wheel</span>')
    parts.append("</h3>")
    if failure.chain:
        parts.append(f'<div class="chain">required by {_chain(failure.chain)}</div>')
    if failure.blocked_by:
        blockers = ", ".join(f"<b>{_e(b)}</b>" for b in failure.blocked_by)
        parts.append(f'<div class="chain">blocked by {blockers}</div>')
    parts.append(f'<pre class="error">{_e(failure.error)}</pre>')
    if failure.details:
        parts.append(
            f"<details><summary>last lines of the log</summary><pre>{_e(failure.details)}"
            "</pre></details>"
        )
    if failure.log is not None:
        parts.append(_log_link(data, str(failure.log)))
    parts.append("</article>")
    return "".join(parts)


def _run_error(data: ReportData) -> str:
    error = data.run.error
    assert error is not None
    parts = ['<article class="failure run-error">', f"<h3>{_e(error.message)}</h3>"]
    if error.chain:
        parts.append(f'<div class="chain">required by {_chain(error.chain)}</div>')
    if error.details:
        parts.append(f'<pre class="error">{_e(error.details)}</pre>')
    if error.log:
        parts.append(_log_link(data, error.log))
    parts.append("</article>")
    return "".join(parts)


def _log_link(data: ReportData, log: str) -> str:
    """A link to the full log where the report can reach it, else its path as text."""
    link = data.log_links.get(log)
    if link:
        return f'<p><a class="log" href="{_e(link)}">full log: {_e(link)}</a></p>'
    return f'<p class="muted">full log: {_e(log)}</p>'


def _headline(data: ReportData, counts: Counter[Shown]) -> str:
    run = data.run
    if run.status == "succeeded":
        done = counts[Shown.BUILT] + counts[Shown.REUSED] + counts[Shown.PREBUILT]
        return (
            f"{_plural(done, 'wheel')}: {counts[Shown.BUILT]} built, "
            f"{counts[Shown.REUSED]} reused"
            + (f", {counts[Shown.PREBUILT]} pre-built" if counts[Shown.PREBUILT] else "")
            + f", in {_seconds(run.duration)}"
        )
    failed = [f for f in run.failures if f.status is not Status.BLOCKED]
    blocked = [f for f in run.failures if f.status is Status.BLOCKED]
    said = []
    if failed:
        said.append(f"{_plural(len(failed), 'package')} failed")
    if blocked:
        said.append(f"{len(blocked)} blocked by {'it' if len(failed) == 1 else 'them'}")
    if not said and run.error is not None:
        said.append("the run stopped")
    return ", ".join(said) + f" after {_seconds(run.duration)}"


def _outcome(data: ReportData, counts: Counter[Shown]) -> str:
    run = data.run
    ok = run.status == "succeeded"
    parts = [
        f'<section id="outcome" class="outcome {"succeeded" if ok else "failed"}">',
        f"<h2>{'✓ Succeeded' if ok else '✗ Failed'}</h2>",
        f'<p class="headline">{_e(_headline(data, counts))}</p>',
    ]
    if run.published is not None:
        published = ", ".join(run.published) or "nothing"
        parts.append(f"<p>Published: {_e(published)}.</p>")
        for requirement, missing in run.not_published:
            lacks = f" (misses {', '.join(missing)})" if missing else ""
            parts.append(f'<p class="not-published">Not published: {_e(requirement + lacks)}</p>')
    shown_error = run.error is not None and not any(
        f.error == run.error.message and f.name == run.error.package for f in run.failures
    )
    if shown_error:
        parts.append(_run_error(data))
    parts.extend(_failure(f, data) for f in run.failures)
    parts.append("</section>")
    return "".join(parts)


def _counts(data: ReportData, counts: Counter[Shown]) -> str:
    run = data.run
    held = sum(
        ((s.given_back if s.given_back is not None else run.duration) - s.taken)
        for row in data.rows
        if row.times is not None
        for s in row.times.spans
    )
    busy = held / (run.duration * max(run.jobs, 1)) if run.duration > 0 else 0.0
    built = [r for r in data.rows if r.build_seconds is not None and not r.earlier]
    longest = max(built, key=lambda r: r.build_seconds or 0.0, default=None)
    cards = [(str(len(data.rows)), "packages")]
    cards += [(str(counts[s]), str(s)) for s in STATUS_ORDER if counts[s]]
    cards.append((_seconds(run.duration), "wall time"))
    cards.append((f"{run.jobs}", "job slots" if run.jobs != 1 else "job slot"))
    cards.append((f"{busy:.0%}", "slot time in use"))
    if built:
        total = sum(r.build_seconds or 0.0 for r in built)
        cards.append((_seconds(total), "of builds, all slots"))
    if longest is not None and longest.build_seconds is not None:
        cards.append((_seconds(longest.build_seconds), f"longest build: {longest.key}"))
    return (
        '<div class="counts" id="counts">'
        + "".join(
            f'<div class="count"><b>{_e(value)}</b><span>{_e(what)}</span></div>'
            for value, what in cards
        )
        + "</div>"
    )


def _row(row: PackageRow) -> str:
    build = ""
    sort_build = "-1"
    if row.build_seconds is not None:
        build = f"{row.build_seconds:.1f}s" + (" (earlier)" if row.earlier else "")
        sort_build = f"{row.build_seconds:.3f}"
    wait = row.times.slot_wait() if row.times is not None else 0.0
    size = row.wheel.size if row.wheel is not None else None
    files = " · ".join(
        text
        for text in (
            _link(row.wheel, "wheel"),
            _link(row.record, "record"),
            _link(row.log, "log"),
        )
        if text
    )
    return (
        f'<tr class="{_e(row.status)}" data-package="{_e(row.key)}">'
        f"<td>{_e(row.key.name)}</td><td>{_e(row.key.version)}</td>"
        f'<td data-sort="{STATUS_ORDER.index(row.status)}">'
        f'<span class="badge {_e(row.status)}">{_e(row.status)}</span></td>'
        f'<td class="num" data-sort="{sort_build}">{_e(build)}</td>'
        f'<td class="num" data-sort="{wait:.3f}">{_e(f"{wait:.1f}s" if wait >= 0.05 else "")}</td>'
        f'<td class="num" data-sort="{size if size is not None else -1}">{_e(_size(size))}</td>'
        f"<td>{files}</td></tr>"
    )


def _packages(data: ReportData) -> str:
    head = "".join(
        f"<th>{_e(h)}</th>"
        for h in ("package", "version", "status", "build time", "waited", "wheel size", "files")
    )
    rows = "".join(_row(r) for r in data.rows)
    return (
        '<input type="search" id="packages-filter" placeholder="filter packages" '
        'aria-label="filter packages">'
        f'<div class="scroll"><table id="packages-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _metadata(diffs: tuple[MetadataDiff, ...]) -> str:
    """Where the metadata of our wheels differs from the upstream wheels' of the same
    version, the changes our settings made marked."""
    differ = [d for d in diffs if d.differs]
    unknown = [d for d in diffs if d.note is not None]
    compared = len(diffs) - len(unknown)
    by_settings = sum(1 for d in differ for c in (*d.added, *d.missing) if c.by_settings)
    summary = (
        f"<p>{_e(len(differ))} of {_e(compared)} compared package(s) differ from the "
        f"index's wheel of the same version; {_e(by_settings)} requirement change(s) made "
        "by their settings.</p>"
    )
    rows = []
    for diff in differ:
        items = [
            f'<li class="minus">&minus; {_e(c.text)}{_by_settings(c.by_settings, "removed")}</li>'
            for c in diff.missing
        ]
        items += [
            f'<li class="plus">+ {_e(c.text)}{_by_settings(c.by_settings, "added")}</li>'
            for c in diff.added
        ]
        if diff.requires_python is not None:
            ours, theirs = diff.requires_python
            items.append(
                f"<li>Requires-Python: {_e(ours or '(none)')} here, "
                f"{_e(theirs or '(none)')} upstream</li>"
            )
        if diff.extras_missing:
            items.append(f"<li>extras only upstream: {_e(', '.join(diff.extras_missing))}</li>")
        if diff.extras_added:
            items.append(f"<li>extras only here: {_e(', '.join(diff.extras_added))}</li>")
        rows.append(
            f"<tr><td>{_e(diff.name)}</td><td>{_e(diff.version)}</td>"
            f'<td>{_e(diff.upstream_wheel or "")}</td><td><ul class="changes">'
            f"{''.join(items)}</ul></td></tr>"
        )
    table = (
        '<div class="scroll"><table id="metadata-table"><thead><tr><th>package</th>'
        "<th>version</th><th>upstream wheel</th><th>differences</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else ""
    )
    missing = (
        f"<details><summary>{_e(len(unknown))} not compared</summary><ul>"
        + "".join(f"<li>{_e(d.name)} {_e(d.version)}: {_e(d.note)}</li>" for d in unknown)
        + "</ul></details>"
        if unknown
        else ""
    )
    return f'<section id="metadata">{summary}{table}{missing}</section>'


def _by_settings(made: bool, how: str) -> str:
    return f' <span class="badge">{how} by its settings</span>' if made else ""


def _graph(data: ReportData) -> str:
    nodes = [str(r.key) for r in data.rows]
    edges = [
        (str(e.parent), str(e.child), e.kind, e.requirement)
        for e in data.run.edges
        if e.parent is not None
    ]
    status = {str(r.key): str(r.status) for r in data.rows}
    titles = {str(r.key): f"{r.key} — {r.status}" for r in data.rows}
    top = {str(canonicalize_name(_requirement_name(r))) for r in data.run.requirements}
    if not nodes:
        return '<p class="muted">No packages.</p>'
    legend = "".join(
        f'<span><i style="background:var(--{s})"></i>{_e(s)}</span>'
        for s in STATUS_ORDER
        if any(r.status is s for r in data.rows)
    )
    kinds = {
        "build" if kind.startswith("build") else "install"
        for _, _, kind, _ in edges
        if kind != "chain"
    }
    legend += "".join(
        f'<span><i class="{kind}-edge"></i>{kind} dependency</span>' for kind in sorted(kinds)
    )
    failing = failure_steps(data)
    if failing:
        legend += '<span><i class="chain-edge"></i>chain to a failure</span>'

    if any(row.key.name in top for row in data.rows):
        legend += "<span>thick border: top-level</span>"
    return (
        f'<div class="legend">{legend}<span>left of a package: what it needs</span></div>'
        '<div class="scroll">'
        + graph_svg(nodes, edges, status=status, top_level=top, titles=titles, highlighted=failing)
        + "</div>"
    )


def failure_steps(data: ReportData) -> set[tuple[str, str]]:
    """The edges (``name==version`` pairs) along the chains of the run's failures."""
    by_name: dict[str, list[str]] = {}
    for row in data.rows:
        by_name.setdefault(row.key.name, []).append(str(row.key))
    chains = [f.chain for f in data.run.failures]
    if data.run.error is not None:
        chains.append(data.run.error.chain)
    steps: set[tuple[str, str]] = set()
    for chain in chains:
        names = [canonicalize_name(n) for n in chain]
        for parent, child in pairwise(names):
            for a in by_name.get(parent, ()):
                steps.update((a, b) for b in by_name.get(child, ()))
    return steps


def _requirement_name(text: str) -> str:
    try:
        return Requirement(text).name
    except InvalidRequirement:
        return text


def script_hash() -> str:
    """The CSP source that lets the page's own script run, and no other."""
    digest = hashlib.sha256(SCRIPT.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def render(data: ReportData) -> str:
    """The whole page."""
    run = data.run
    counts = Counter(r.status for r in data.rows)
    title = f"bootstrapper {run.command}: {'succeeded' if run.status == 'succeeded' else 'failed'}"
    requirements = " ".join(run.requirements)
    policy = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {script_hash()}"
    )
    slots = [r.times for r in data.rows if r.times is not None and r.times.spans]
    timeline = (
        timeline_svg([r.times for r in data.rows if r.times is not None], run.duration, run.jobs)
        if slots
        else '<p class="muted">No build ran in a job slot in this run (everything was reused).</p>'
    )
    metadata = (
        ""
        if data.metadata_diffs is None
        else '<h2 id="metadata-heading">Metadata against upstream wheels</h2>'
        + _metadata(data.metadata_diffs)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_e(policy)}">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<header>
<h1>bootstrapper {_e(run.command)}</h1>
<p>{_e(requirements)}</p>
<p>started {_e(run.started_at)} · took {_e(_seconds(run.duration))} · {_e(run.jobs)} job
slot{"" if run.jobs == 1 else "s"}</p>
</header>
{_outcome(data, counts)}
{_counts(data, counts)}
<h2 id="timeline">Timeline</h2>
<div class="legend"><span><i style="background:var(--built);opacity:.55"></i>holding a slot
(preparing, asking the backend)</span><span><i style="background:var(--build)"></i>building
</span><span><i style="background:var(--failed)"></i>failed</span><span><i
style="background:var(--blocked);opacity:.55"></i>packages waiting for a slot</span></div>
<div class="scroll">{timeline}</div>
<h2 id="packages">Packages</h2>
{_packages(data)}
{metadata}
<h2 id="graph">Dependency graph</h2>
{_graph(data)}
<footer>Written by bootstrapper from logs/run.json and the build records; hover a bar, a
node or an edge for details.</footer>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
