"""The newest-everywhere pass of ``resolve``: one look at each project when taking the
newest allowed release of every project is a resolution, resolvelib otherwise, with the
same answer either way."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from resolvelib import BaseReporter

from bootstrapper.errors import BootstrapError
from bootstrapper.resolve import Candidate, Resolution, resolve
from tests.test_resolve import ENV, FakeIndex, Pkg, pkg


class Searches(BaseReporter[Requirement, Candidate, str]):
    """Counts how often resolvelib started: zero when the newest-everywhere pass answered."""

    def __init__(self) -> None:
        self.started = 0

    def starting(self) -> None:
        self.started += 1


def run(
    index: FakeIndex,
    *requirements: str,
    constraints: dict[NormalizedName, SpecifierSet] | None = None,
    backtracking_only: bool = False,
    reporter: Searches | None = None,
) -> Resolution:
    return resolve(
        [Requirement(r) for r in requirements],
        index,
        index,
        constraints=constraints,
        environment=ENV,
        reporter=reporter,
        backtracking_only=backtracking_only,
    )


def summary(resolution: Resolution) -> dict[str, object]:
    return {
        "pins": {n: str(r.version) for n, r in resolution.pins.items()},
        "extras": {n: sorted(e) for n, e in resolution.extras.items()},
        "dependencies": {
            n: sorted(str(r) for r in deps) for n, deps in resolution.dependencies.items()
        },
        "chains": dict(resolution.chains),
    }


def test_an_unconflicted_tree_is_resolved_in_one_look_at_each_project() -> None:
    index = FakeIndex(
        {
            "app": [pkg("2.0", "lib>=1", "tool[fast]"), pkg("1.0")],
            "lib": [pkg("1.5", "leaf<3"), pkg("1.0")],
            "leaf": [pkg("3.0"), pkg("2.1"), pkg("2.0")],
            "tool": [pkg("1.0", 'speedup; extra == "fast"', extras=("fast",))],
            "speedup": [pkg("0.9")],
        }
    )
    searches = Searches()
    result = run(index, "app", reporter=searches)
    assert searches.started == 0
    assert summary(result)["pins"] == {
        "app": "2.0",
        "lib": "1.5",
        "leaf": "2.1",
        "tool": "1.0",
        "speedup": "0.9",
    }
    assert result.extras[NormalizedName("tool")] == {"fast"}
    assert result.chains[NormalizedName("speedup")] == ("app", "tool", "speedup")
    # Only the chosen releases' metadata was asked for.
    assert {release for release, _ in index.metadata_calls} == {
        f"{name}=={release.version}" for name, release in result.pins.items()
    }
    assert summary(result) == summary(run(index, "app", backtracking_only=True))


def test_a_requirement_that_narrows_an_earlier_pick_is_left_to_resolvelib() -> None:
    """``leaf`` is first picked at 3.0; ``lib``'s requirement, met later, wants less."""
    index = FakeIndex(
        {
            "app": [pkg("1.0", "leaf", "lib")],
            "lib": [pkg("1.0", "leaf<3")],
            "leaf": [pkg("3.0"), pkg("2.0")],
        }
    )
    searches = Searches()
    result = run(index, "app", reporter=searches)
    assert searches.started == 1
    assert summary(result)["pins"] == {"app": "1.0", "lib": "1.0", "leaf": "2.0"}


def test_an_extra_asked_for_after_the_pick_adds_its_requirements() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "tool", "plugin")],
            "plugin": [pkg("1.0", "tool[cli]")],
            "tool": [pkg("1.0", 'click; extra == "cli"', extras=("cli",))],
            "click": [pkg("8.0")],
        }
    )
    searches = Searches()
    result = run(index, "app", reporter=searches)
    assert searches.started == 0
    assert NormalizedName("click") in result.pins
    assert result.extras[NormalizedName("tool")] == {"cli"}
    assert summary(result) == summary(run(index, "app", backtracking_only=True))


def test_requires_python_known_only_from_metadata_falls_back() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "lib")],
            "lib": [pkg("2.0", requires_python=">=3.12"), pkg("1.0")],
        }
    )
    searches = Searches()
    result = run(index, "app", reporter=searches)
    assert searches.started == 1
    assert summary(result)["pins"] == {"app": "1.0", "lib": "1.0"}


def test_metadata_that_needs_a_build_is_not_waited_for() -> None:
    """The pass stops at the first release whose metadata only a build gives, before
    asking for it: resolvelib takes such projects last, while the build runs."""
    index = FakeIndex(
        {
            "app": [pkg("1.0", "slow", "fast")],
            "slow": [pkg("1.0")],
            "fast": [pkg("1.0")],
        }
    )
    index.needs_build = {NormalizedName("slow")}
    searches = Searches()
    run(index, "app", reporter=searches)
    assert searches.started == 1
    firsts = [release for release, _ in index.metadata_calls]
    assert firsts.index("fast==1.0") < firsts.index("slow==1.0")


def test_constraints_and_yanked_releases_apply() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "lib", "old==1.0")],
            "lib": [pkg("3.0"), pkg("2.0"), pkg("1.0")],
            "old": [pkg("1.1"), pkg("1.0", yanked=True)],
        }
    )
    constraints = {NormalizedName("lib"): SpecifierSet("<3")}
    searches = Searches()
    result = run(index, "app", constraints=constraints, reporter=searches)
    assert searches.started == 0
    assert summary(result)["pins"] == {"app": "1.0", "lib": "2.0", "old": "1.0"}


def random_index(rng: random.Random) -> FakeIndex:
    """A few projects of a few versions each, whose requirements often disagree."""
    names = [f"p{i}" for i in range(rng.randint(3, 9))]
    projects: dict[str, list[Pkg]] = {}
    for i, name in enumerate(names):
        versions = []
        for major in range(rng.randint(1, 4), 0, -1):
            later = names[i + 1 :]
            requires: list[str] = []
            for dep in rng.sample(later, k=min(len(later), rng.randint(0, 3))):
                bound = rng.randint(1, 4)
                spec = rng.choice(["", f">={bound}", f"<{bound}", f"=={bound}.0", f"!={bound}.0"])
                extra = rng.random() < 0.2
                requires.append(
                    f"{dep}[x]{spec}" if extra else f"{dep}{spec}",
                )
            if later and rng.random() < 0.3:
                requires.append(f'{rng.choice(later)}; extra == "x"')
            versions.append(
                pkg(
                    f"{major}.0",
                    *requires,
                    extras=("x",),
                    yanked=rng.random() < 0.1,
                    requires_python=">=3.12" if rng.random() < 0.1 else None,
                )
            )
        projects[name] = versions
    return FakeIndex(projects)


@pytest.mark.parametrize("seed", range(4))
def test_the_answer_is_the_backtracking_resolvers_on_random_trees(seed: int) -> None:
    """Both ways give the same pins, extras, dependencies and chains (or both fail), and
    the one pass answers a fair share of the trees by itself."""
    rng = random.Random(seed)
    answered_alone = fallbacks = 0
    for _ in range(300):
        index = random_index(rng)
        roots = ["p0", *(["p1[x]"] if rng.random() < 0.3 else [])]
        searches = Searches()
        try:
            got: object = summary(run(index, *roots, reporter=searches))
        except BootstrapError as e:
            got = type(e)
        try:
            expected: object = summary(run(index, *roots, backtracking_only=True))
        except BootstrapError as e:
            expected = type(e)
        assert got == expected, roots_and_index(roots, index)
        if searches.started:
            fallbacks += 1
        else:
            answered_alone += 1
    assert answered_alone > 50 and fallbacks > 50, (answered_alone, fallbacks)


def roots_and_index(roots: Sequence[str], index: FakeIndex) -> str:
    return f"{roots}: {index.projects}"
