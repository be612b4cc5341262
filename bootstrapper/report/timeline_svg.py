"""The run's timeline as inline SVG: one lane per job slot, a bar for each time a package
held one (its build proper darker), and below them how many packages waited for a slot."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..eta import format_duration
from ..timeline import PackageTimes

#: Sizes in pixels.
LABEL = 70
PLOT = 1000
LANE = 26
BAR = 18
WAIT_ROW = 44
AXIS = 22
#: Tick spacings (seconds) to choose from: the first giving at most ten ticks.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)


def tick_step(duration: float) -> int:
    return next((s for s in STEPS if duration / s <= 10), STEPS[-1])


def waiting_steps(packages: Sequence[PackageTimes], end: float) -> list[tuple[float, int]]:
    """How many packages waited for a slot, from each time it changed: (time, count)."""
    changes: list[tuple[float, int]] = []
    for package in packages:
        for span in package.spans:
            if span.taken > span.asked:
                changes += [(span.asked, 1), (span.taken, -1)]
        if package.still_waiting is not None:
            changes += [(package.still_waiting, 1), (end, -1)]
    steps: list[tuple[float, int]] = []
    count = 0
    for at, change in sorted(changes):
        count += change
        if steps and steps[-1][0] == at:
            steps[-1] = (at, count)
        else:
            steps.append((at, count))
    return steps


def _tooltip(package: PackageTimes, index: int, end: float) -> str:
    span = package.spans[index]
    released = span.given_back if span.given_back is not None else end
    lines = [f"{package.key.name} {package.key.version} on slot {span.slot + 1}"]
    if package.queued is not None:
        lines.append(f"queued at {package.queued:.1f}s")
    if span.waited >= 0.05:
        lines.append(f"waited {span.waited:.1f}s for a slot")
    lines.append(
        f"held the slot from {span.taken:.1f}s to {released:.1f}s ({released - span.taken:.1f}s)"
    )
    for phase in package.phases:
        if span.taken - 0.001 <= phase.at <= released + 0.001:
            lines.append(f"{phase.what} from {phase.at:.1f}s")
    build = package.build_seconds()
    if build is not None:
        lines.append(f"build {build:.1f}s, {package.outcome}")
    elif package.ended is not None:
        lines.append(str(package.outcome))
    if package.where:
        lines.append(f"on {package.where}")
    return "\n".join(lines)


def timeline_svg(packages: Sequence[PackageTimes], duration: float, jobs: int) -> str:
    """The lanes of the job slots over the run's ``duration`` (seconds)."""
    lanes = max([jobs, *(s.slot + 1 for p in packages for s in p.spans)])
    end = max([duration, *(s.given_back or 0.0 for p in packages for s in p.spans)], default=0)
    end = max(end, 0.001)
    scale = PLOT / end

    def x(at: float) -> float:
        return LABEL + at * scale

    height = AXIS + lanes * LANE + WAIT_ROW + 8
    width = LABEL + PLOT + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" '
        f'aria-label="builds on {lanes} job slots over {format_duration(duration)}">'
    ]
    step = tick_step(end)
    parts.append('<g class="axis">')
    tick = 0
    while tick <= end + 1e-9:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{AXIS - 4}" '
            f'y2="{AXIS + lanes * LANE + WAIT_ROW}"/>'
            f'<text x="{x(tick):.1f}" y="{AXIS - 8}">{format_duration(tick)}</text>'
        )
        tick += step
    parts.append("</g>")
    for lane in range(lanes):
        y = AXIS + lane * LANE
        parts.append(
            f'<g class="lane"><rect class="lane-bg" x="{LABEL}" y="{y}" width="{PLOT}" '
            f'height="{LANE}"/><text class="lane-label" x="4" y="{y + LANE / 2 + 4}">'
            f"slot {lane + 1}</text></g>"
        )
    for package in packages:
        building = [p.at for p in package.phases if p.what.startswith("building")]
        for index, span in enumerate(package.spans):
            released = span.given_back if span.given_back is not None else end
            bar_y = AXIS + span.slot * LANE + (LANE - BAR) / 2
            x1, x2 = x(span.taken), x(released)
            label = str(package.key)
            parts.append(
                f'<g class="bar {package.outcome}" data-package="{escape(label)}">'
                f"<title>{escape(_tooltip(package, index, end))}</title>"
                f'<rect class="held" x="{x1:.1f}" y="{bar_y:.1f}" width="{max(x2 - x1, 1.5):.1f}" '
                f'height="{BAR}" rx="3"/>'
            )
            if building and span.taken - 0.001 <= building[-1] <= released + 0.001:
                b = x(building[-1])
                parts.append(
                    f'<rect class="build" x="{b:.1f}" y="{bar_y:.1f}" '
                    f'width="{max(x2 - b, 1.5):.1f}" height="{BAR}" rx="3"/>'
                )
            # A name only where it fits (about 6.5 pixels a character).
            if x2 - x1 > 6.5 * len(label) + 8:
                parts.append(
                    f'<text x="{x1 + 4:.1f}" y="{bar_y + BAR - 5:.1f}">{escape(label)}</text>'
                )
            parts.append("</g>")
    steps = waiting_steps(packages, end)
    top = AXIS + lanes * LANE + 6
    most = max((count for _, count in steps), default=0)
    parts.append(
        f'<g class="waiting"><text class="lane-label" x="4" y="{top + 14}">waiting</text>'
        f'<text class="lane-label" x="4" y="{top + 28}">for a slot</text>'
    )
    if most:
        points = [f"{x(0):.1f},{top + WAIT_ROW - 8}"]
        level: float = top + WAIT_ROW - 8
        for at, count in steps:
            points.append(f"{x(at):.1f},{level:.1f}")
            level = top + WAIT_ROW - 8 - (WAIT_ROW - 12) * count / most
            points.append(f"{x(at):.1f},{level:.1f}")
        points.append(f"{x(end):.1f},{level:.1f}")
        points.append(f"{x(end):.1f},{top + WAIT_ROW - 8}")
        parts.append(
            f'<polygon class="waiting-area" points="{" ".join(points)}">'
            f"<title>at most {most} package{'s' if most != 1 else ''} waiting for a job slot"
            "</title></polygon>"
        )
    else:
        parts.append(
            f'<text class="note" x="{LABEL + 6}" y="{top + 20}">no build waited for a slot</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)
