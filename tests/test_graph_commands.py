"""Issue 11: ``bootstrapper graph why|duplicates|subset|rounds|to-dot`` over the output of
a real bootstrap, run as users type them: from the output directory's parent with the
default ``--output-dir``, and from elsewhere with a relative one.

The tree (one bootstrap, shared by the tests, which only read it):

    app -> libone>=1,<2 (1.4) -> libthree (0.5)
        -> libthree<0.6 (0.5)
        -> libtwo (2.0)   built with fixture-backend, libone==2.0, libthree>=0.5 (0.6),
                          and dyn-req (asked for by the backend)
        -> libfour[speed] (1.0) -> speedup -> tritonish -> speedup (an install cycle,
                          reached through the extra); libfour is built with midtool,
                          which needs libtwo to install
    libone<2 and loner are top-level requirements too.

libone (1.4 and 2.0) and libthree (0.5 and 0.6) are each present in two versions: a build
requirement pinned apart from the install closure.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main
from bootstrapper.isolation import isolation_prefix

from .conftest import helper_project, installed, pip_install
from .support import FixtureIndex, Project, backend_package

TREE = {
    "app": ["1.0"],
    "dyn-req": ["1.0"],
    "fixture-backend": ["1.0"],
    "fixture-helper": ["1.0"],
    "libfour": ["1.0"],
    "libone": ["1.4", "2.0"],
    "libthree": ["0.5", "0.6"],
    "libtwo": ["2.0"],
    "loner": ["1.0"],
    "midtool": ["1.0"],
    "speedup": ["1.0"],
    "tritonish": ["1.0"],
}


def projects() -> list[Project]:
    return [
        backend_package(),
        helper_project(),
        Project(
            "app", "1.0", dependencies=["libone>=1,<2", "libtwo", "libthree<0.6", "libfour[speed]"]
        ),
        Project("libone", "1.4", dependencies=["libthree"]),
        Project("libone", "2.0"),
        Project("libthree", "0.5"),
        Project("libthree", "0.6"),
        Project(
            "libtwo",
            "2.0",
            build_requires=["fixture-backend", "libone==2.0", "libthree>=0.5"],
            backend_requires=["dyn-req"],
            tool={"import": ["fixture_helper", "dyn_req"]},
        ),
        Project("dyn-req", "1.0", tool={"modules": ["dyn_req"]}, files={"src/dyn_req.py": ""}),
        Project(
            "libfour",
            "1.0",
            build_requires=["fixture-backend", "midtool"],
            optional={"speed": ["speedup"]},
        ),
        Project("midtool", "1.0", dependencies=["libtwo"]),
        Project("speedup", "1.0", dependencies=["tritonish"]),
        Project("tritonish", "1.0", dependencies=["speedup"]),
        Project("loner", "1.0"),
    ]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(*args: str | Path) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


@dataclass(frozen=True)
class Tree:
    """One bootstrap of the tree into ``root/bootstrap-output``."""

    root: Path

    @property
    def out(self) -> Path:
        return self.root / "bootstrap-output"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    root = tmp_path_factory.mktemp("graph-tree")
    index = FixtureIndex()
    index.start()
    try:
        index.add_all(projects(), root / "index-files")
        for name in ("overrides", "patches"):
            (root / name).mkdir()
        result = run(
            "bootstrap",
            "--index-url",
            index.url,
            "--output-dir",
            root / "bootstrap-output",
            "--overrides-dir",
            root / "overrides",
            "--patches-dir",
            root / "patches",
            "--jobs",
            "2",
            "app",
            "libone<2",
            "loner",
        )
        assert result.code == 0, result.err
        yield Tree(root)
    finally:
        index.stop()


@pytest.fixture
def in_root(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """Working in the output directory's parent: the default --output-dir finds it."""
    monkeypatch.chdir(tree.root)
    return tree


@pytest.fixture
def elsewhere(tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Working in another directory; returns a relative --output-dir that names it."""
    monkeypatch.chdir(tmp_path)
    return Path(os.path.relpath(tree.out, tmp_path))


@functools.cache
def isolation_args() -> tuple[str, ...]:
    return () if isolation_prefix() is not None else ("--no-network-isolation",)


def chains(result: Result) -> list[list[tuple[str, list[tuple[str, str]]]]]:
    """A ``why --json`` answer's chains as (node, [(kind, requirement)]) steps."""
    return [
        [(step["node"], [(e["kind"], e["requirement"]) for e in step["edges"]]) for step in chain]
        for chain in result.json()["chains"]
    ]


def build_order(directory: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((directory / "build-order.json").read_text())
    return entries


# -- the run itself ----------------------------------------------------------------------


def test_the_run_holds_the_tree_the_tests_expect(tree: Tree) -> None:
    graph = json.loads((tree.out / "graph.json").read_text())
    found: dict[str, list[str]] = {}
    for node in graph["nodes"]:
        found.setdefault(node["name"], []).append(node["version"])
    assert found == TREE


# -- why ---------------------------------------------------------------------------------


def test_why_from_the_parent_directory_with_the_default_output_dir(in_root: Tree) -> None:
    result = run("graph", "why", "tritonish")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == ("1 chain leads from the top-level requirements to tritonish (1.0):")
    # The dependency reached through an extra, and the cycle back to speedup left out.
    assert [line.split() for line in lines[2:]] == [
        ["1.", "app==1.0", "top-level:", "app"],
        ["libfour==1.0", "install:", "libfour[speed]"],
        ["speedup==1.0", "install:", "speedup;", "extra", "==", '"speed"'],
        ["tritonish==1.0", "install:", "tritonish"],
    ]
    result = run("graph", "why", "speedup", "--json")
    assert result.code == 0, result.err
    assert chains(result) == [
        [
            ("app==1.0", [("toplevel", "app")]),
            ("libfour==1.0", [("install", "libfour[speed]")]),
            ("speedup==1.0", [("install", 'speedup; extra == "speed"')]),
        ]
    ]
    document = result.json()
    assert document["graph"] == str(in_root.out / "graph.json")
    assert (document["name"], document["versions"], document["selection"]) == (
        "speedup",
        ["1.0"],
        "all",
    )
    assert (document["total"], document["shown"], document["left_out"]) == (1, 1, 0)


def test_why_from_elsewhere_with_a_relative_output_dir(elsewhere: Path) -> None:
    result = run("graph", "why", "libtwo", "--output-dir", elsewhere, "--json")
    assert result.code == 0, result.err
    through_a_build = [
        ("app==1.0", [("toplevel", "app")]),
        ("libfour==1.0", [("install", "libfour[speed]")]),
        ("midtool==1.0", [("build-system", "midtool")]),
        ("libtwo==2.0", [("install", "libtwo")]),
    ]
    installed_with_app = [
        ("app==1.0", [("toplevel", "app")]),
        ("libtwo==2.0", [("install", "libtwo")]),
    ]
    assert chains(result) == [installed_with_app, through_a_build]
    only = run("graph", "why", "libtwo", "--output-dir", elsewhere, "--install-only", "--json")
    assert chains(only) == [installed_with_app]
    assert only.json()["selection"] == "install"
    only = run("graph", "why", "libtwo", "--output-dir", elsewhere, "--build-only", "--json")
    assert chains(only) == [through_a_build]


def test_why_names_build_requirements_and_each_version(in_root: Tree) -> None:
    result = run("graph", "why", "dyn-req", "--json")
    assert chains(result) == [
        [
            ("app==1.0", [("toplevel", "app")]),
            ("libtwo==2.0", [("install", "libtwo")]),
            ("dyn-req==1.0", [("build-backend", "dyn-req")]),
        ],
        [
            ("app==1.0", [("toplevel", "app")]),
            ("libfour==1.0", [("install", "libfour[speed]")]),
            ("midtool==1.0", [("build-system", "midtool")]),
            ("libtwo==2.0", [("install", "libtwo")]),
            ("dyn-req==1.0", [("build-backend", "dyn-req")]),
        ],
    ]
    result = run("graph", "why", "dyn-req", "--install-only")
    assert result.code == 0
    assert result.out.strip() == (
        "no chain of install requirements leads from the top-level requirements to "
        "dyn-req (1.0); try without --install-only"
    )
    # libthree 0.6 is there only for libtwo's build, 0.5 for the install closure.
    result = run("graph", "why", "libthree", "0.6", "--json")
    assert [chain[-2:] for chain in chains(result)] == [
        [
            ("libtwo==2.0", [("install", "libtwo")]),
            ("libthree==0.6", [("build-system", "libthree>=0.5")]),
        ],
        [
            ("libtwo==2.0", [("install", "libtwo")]),
            ("libthree==0.6", [("build-system", "libthree>=0.5")]),
        ],
    ]
    result = run("graph", "why", "libthree", "0.5", "--max-chains", "2")
    assert result.code == 0
    assert "3 chains lead from the top-level requirements to libthree (0.5):" in result.out
    assert "showing the 2 shortest; 1 more left out: raise --max-chains" in result.out
    assert "1.  app==1.0       top-level: app" in result.out
    assert "    libthree==0.5  install: libthree<0.6" in result.out
    assert "2.  libone==1.4    top-level: libone<2" in result.out


def test_why_an_unknown_name_or_version_suggests_what_is_there(in_root: Tree) -> None:
    result = run("graph", "why", "libtwoo")
    assert result.code == 2
    assert result.err.strip() == (
        f"bootstrapper: error: libtwoo is not in {in_root.out / 'graph.json'}; "
        "did you mean libtwo, libone?"
    )
    result = run("graph", "why", "libthree", "0.7")
    assert result.code == 2
    assert "libthree 0.7 is not in" in result.err and "(it has 0.5, 0.6)" in result.err


# -- duplicates --------------------------------------------------------------------------


def test_duplicates_says_who_needs_which_version_and_whether_one_would_do(
    in_root: Tree,
) -> None:
    result = run("graph", "duplicates")
    assert result.code == 0, result.err
    blocks = result.out.strip().split("\n\n")
    assert [block.splitlines()[0] for block in blocks[:2]] == [
        "libone: 2 versions (1.4, 2.0); no one version satisfies every requirement",
        "libthree: 2 versions (0.5, 0.6); 0.5 satisfies every requirement",
    ]
    assert [line.split() for line in blocks[0].splitlines()[1:]] == [
        ["1.4", "<-", "top-level", "requirement", "libone<2", "satisfied", "by", "1.4"],
        ["1.4", "<-", "app==1.0", "(install)", "libone<2,>=1", "satisfied", "by", "1.4"],
        ["2.0", "<-", "libtwo==2.0", "(build-system)", "libone==2.0", "satisfied", "by", "2.0"],
    ]
    assert blocks[-1] == "2 projects in several versions"
    document = run("graph", "duplicates", "--json").json()
    libthree = document["projects"][1]
    assert libthree == {
        "name": "libthree",
        "versions": ["0.5", "0.6"],
        "needs": [
            {
                "from": "app==1.0",
                "to": "libthree==0.5",
                "kind": "install",
                "requirement": "libthree<0.6",
                "satisfied_by": ["0.5"],
            },
            {
                "from": "libone==1.4",
                "to": "libthree==0.5",
                "kind": "install",
                "requirement": "libthree",
                "satisfied_by": ["0.5", "0.6"],
            },
            {
                "from": "libtwo==2.0",
                "to": "libthree==0.6",
                "kind": "build-system",
                "requirement": "libthree>=0.5",
                "satisfied_by": ["0.5", "0.6"],
            },
        ],
        "satisfy_all": ["0.5"],
    }


# -- rounds ------------------------------------------------------------------------------


def test_rounds_come_after_every_recorded_build_environment(elsewhere: Path, tree: Tree) -> None:
    result = run("graph", "rounds", "--output-dir", elsewhere, "--json")
    assert result.code == 0, result.err
    found = result.json()["rounds"]
    round_of = {label: i for i, members in enumerate(found) for label in members}
    assert sorted(round_of) == sorted(f"{n}=={v}" for n, vs in TREE.items() for v in vs)
    # What each build really had in its environment (the run's records) is built in an
    # earlier round.
    for entry in build_order(tree.out):
        for wheel in entry["build_env"]:
            env = f"{wheel['name']}=={wheel['version']}"
            assert round_of[env] < round_of[f"{entry['name']}=={entry['version']}"], (
                env,
                entry["name"],
            )
    # libtwo's build needs round 1 only; libfour's needs midtool, whose install closure
    # holds libtwo.
    assert found[1:] == [["libtwo==2.0"], ["libfour==1.0"]]
    text = run("graph", "rounds", "--output-dir", elsewhere).out.splitlines()
    assert text[1:] == [
        "round 2 (1): libtwo==2.0",
        "round 3 (1): libfour==1.0",
        "14 packages in 3 rounds; at most 12 at once",
    ]
    assert text[0].startswith("round 1 (12): app==1.0, dyn-req==1.0, fixture-backend==1.0")


# -- subset ------------------------------------------------------------------------------


def test_a_subset_of_dependencies_rebuilds_with_build_sequence_and_installs(
    in_root: Tree, tmp_path: Path
) -> None:
    result = run("graph", "subset", "libfour", "-o", "part-libfour")
    assert result.code == 0, result.err
    part = in_root.root / "part-libfour"
    try:
        assert result.out.splitlines()[0] == (
            f"wrote {part}: 10 packages (libfour==1.0 and everything it needs), "
            "10 source archives, 0 patches"
        )
        graph = json.loads((part / "graph.json").read_text())
        assert graph["roots"] == ["libfour==1.0"]
        labels = sorted(f"{n['name']}=={n['version']}" for n in graph["nodes"])
        assert labels == [
            "dyn-req==1.0",
            "fixture-backend==1.0",
            "fixture-helper==1.0",
            "libfour==1.0",
            "libone==2.0",
            "libthree==0.6",
            "libtwo==2.0",
            "midtool==1.0",
            "speedup==1.0",
            "tritonish==1.0",
        ]
        order = build_order(part)
        original = build_order(in_root.out)
        assert order == [e for e in original if f"{e['name']}=={e['version']}" in labels]
        # It carries each wheel's provenance, and every file that names.
        attested = run("verify-provenance", "part-libfour")
        assert attested.code == 0, attested.out
        assert attested.out.endswith("10 of 10 wheels verified\n")
        # The graph commands read the part like any output directory.
        why = run("graph", "why", "dyn-req", "--output-dir", "part-libfour", "--json")
        assert chains(why)[0] == [
            ("libfour==1.0", [("toplevel", "libfour==1.0")]),
            ("midtool==1.0", [("build-system", "midtool")]),
            ("libtwo==2.0", [("install", "libtwo")]),
            ("dyn-req==1.0", [("build-backend", "dyn-req")]),
        ]
        # build-sequence rebuilds it from the part alone, byte for byte.
        rebuilt = run(
            "build-sequence",
            "part-libfour/build-order.json",
            "--output-dir",
            tmp_path / "rebuilt",
            *isolation_args(),
        )
        assert rebuilt.code == 0, rebuilt.err
        wheels = sorted(p.name for p in (tmp_path / "rebuilt" / "wheels").glob("*.whl"))
        assert wheels == sorted(e["wheel"] for e in order)
        for wheel in wheels:
            assert (tmp_path / "rebuilt" / "wheels" / wheel).read_bytes() == (
                in_root.out / "wheels" / wheel
            ).read_bytes()
        # pip installs the part's root from its own index, with its constraints.
        assert (part / "constraints.txt").read_text() == (
            "libfour==1.0\nspeedup==1.0\ntritonish==1.0\n"
        )
        pip = pip_install(
            part, tmp_path / "venv", "libfour[speed]", options=["-c", str(part / "constraints.txt")]
        )
        assert pip.returncode == 0, pip.stderr
        assert installed(tmp_path / "venv") == {
            "libfour": "1.0",
            "speedup": "1.0",
            "tritonish": "1.0",
        }
    finally:
        shutil.rmtree(part)


def test_a_subset_of_dependents_is_the_trees_that_need_the_package(
    in_root: Tree, tmp_path: Path
) -> None:
    result = run("graph", "subset", "dyn-req", "--dependents", "-o", tmp_path / "part", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    # app needs dyn-req (libtwo's build asks for it); libone<2 and loner do not.
    assert summary["roots"] == ["app"]
    assert summary["direction"] == "dependents"
    assert summary["dependents"] == ["app==1.0", "libfour==1.0", "libtwo==2.0", "midtool==1.0"]
    assert "loner==1.0" not in summary["packages"]
    assert len(summary["packages"]) == 13
    order = build_order(tmp_path / "part")
    # Complete: every build environment of the part is in it.
    labels = {f"{e['name']}=={e['version']}" for e in order}
    for entry in order:
        assert {f"{w['name']}=={w['version']}" for w in entry["build_env"]} <= labels
    rebuilt = run(
        "build-sequence",
        tmp_path / "part" / "build-order.json",
        "--output-dir",
        tmp_path / "rebuilt",
        *isolation_args(),
    )
    assert rebuilt.code == 0, rebuilt.err
    assert "rebuilt 13 wheels" in rebuilt.err


def test_a_subset_without_o_prints_its_graph_json(elsewhere: Path, tmp_path: Path) -> None:
    result = run("graph", "subset", "libtwo", "--output-dir", elsewhere)
    assert result.code == 0, result.err
    document = result.json()
    assert document["schema"] == 1 and document["roots"] == ["libtwo==2.0"]
    assert sorted(n["name"] for n in document["nodes"]) == [
        "dyn-req",
        "fixture-backend",
        "fixture-helper",
        "libone",
        "libthree",
        "libtwo",
    ]
    assert [n["version"] for n in document["nodes"] if n["name"] in ("libone", "libthree")] == [
        "2.0",
        "0.6",
    ]
    # It is a graph.json the commands read.
    (tmp_path / "just-the-graph").mkdir()
    (tmp_path / "just-the-graph" / "graph.json").write_text(result.out)
    rounds = run("graph", "rounds", "--output-dir", "just-the-graph", "--json").json()["rounds"]
    assert rounds[1:] == [["libtwo==2.0"]]
    assert run("graph", "subset", "libtwo", "--output-dir", elsewhere, "--json").out == result.out


def test_a_subset_goes_only_into_a_new_or_empty_directory(in_root: Tree, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = run("graph", "subset", "loner", "-o", tmp_path / "full")
    assert result.code == 2
    assert f"{tmp_path / 'full'} is not empty; give -o a new or empty directory" in result.err
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert run("graph", "subset", "loner", "-o", tmp_path / "empty").code == 0
    assert json.loads((tmp_path / "empty" / "graph.json").read_text())["roots"] == ["loner==1.0"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_tampered_build_order_cannot_make_a_subset_write_elsewhere(
    in_root: Tree, tmp_path: Path
) -> None:
    """An output directory may come from elsewhere: its build order names files, never
    paths."""
    copy = tmp_path / "copied"
    shutil.copytree(in_root.out, copy)
    order = json.loads((copy / "build-order.json").read_text())
    for entry in order:
        if entry["name"] == "loner":
            entry["wheel"] = "../../evil.txt"
    (copy / "build-order.json").write_text(json.dumps(order))
    result = run("graph", "subset", "loner", "--output-dir", copy, "-o", tmp_path / "a" / "b")
    assert result.code == 1, result.err
    assert "is not a build order bootstrapper wrote" in result.err
    assert "'../../evil.txt' is not a file name" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "a").exists()


def test_a_subset_where_no_directory_can_be_made_is_a_clear_error(
    in_root: Tree, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    result = run("graph", "subset", "loner", "-o", tmp_path / "file" / "part")
    assert result.code == 1
    assert f"cannot write the part to {tmp_path / 'file' / 'part'}" in result.err
    assert "internal error" not in result.err


# -- to-dot ------------------------------------------------------------------------------


def test_to_dot_draws_the_graph_by_kind(in_root: Tree) -> None:
    result = run("graph", "to-dot")
    assert result.code == 0, result.err
    text = result.out
    assert text.startswith("digraph bootstrap {")
    assert '"app==1.0" [peripheries=2, tooltip="top-level: app"];' in text
    assert (
        '"libfour==1.0" -> "speedup==1.0" [tooltip="install: speedup; extra == \\"speed\\""];'
        in text
    )
    assert re.search(
        r'"libtwo==2.0" -> "dyn-req==1.0" '
        r'\[style=dashed, color="[^"]+", tooltip="build-backend: dyn-req"\]',
        text,
    )
    install = run("graph", "to-dot", "--install-only").out
    assert "dyn-req" not in install and "midtool" not in install and '"libone==2.0"' not in install
    assert '"app==1.0" -> "libtwo==2.0"' in install
    build = run("graph", "to-dot", "--build-only", "--json").json()
    assert {e["kind"] for e in build["edges"]} == {"build-system", "build-backend"}
    assert sorted(n["id"] for n in build["nodes"]) == [
        "dyn-req==1.0",
        "fixture-backend==1.0",
        "libfour==1.0",
        "libone==2.0",
        "libthree==0.6",
        "libtwo==2.0",
        "midtool==1.0",
    ]
    assert build["svg"] is None and build["dot"].startswith("digraph bootstrap {")


@pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot is not installed here (no 'dot' on PATH); .ci/run installs it",
)
def test_to_dot_renders_svg_with_graphviz(in_root: Tree, tmp_path: Path) -> None:
    result = run("graph", "to-dot", "--svg", tmp_path / "tree.svg")
    assert result.code == 0, result.err
    assert result.out == ""
    assert f"wrote {tmp_path / 'tree.svg'} (14 packages, " in result.err
    svg = (tmp_path / "tree.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for label in ("app==1.0", "libthree==0.6", "tritonish==1.0"):
        assert f">{label}</text>" in svg


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_to_dot_svg_under_a_file_says_which_file_is_in_the_way(
    in_root: Tree, tmp_path: Path
) -> None:
    (tmp_path / "notes").write_text("")
    result = run("graph", "to-dot", "--svg", tmp_path / "notes" / "tree.svg")
    assert result.code == 1
    assert f"{tmp_path / 'notes'} is a file, not a directory" in result.err


def test_to_dot_svg_without_graphviz_says_how_to_get_it(
    in_root: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = run("graph", "to-dot", "--svg", tmp_path / "tree.svg")
    assert result.code == 1
    assert result.err.startswith(
        f"error: cannot write {tmp_path / 'tree.svg'}: Graphviz's 'dot' program is not "
        "installed (there is no 'dot' on PATH); install Graphviz (apt-get install graphviz"
    )
    assert not (tmp_path / "tree.svg").exists()


# -- a directory that is not a run's output ----------------------------------------------


def test_a_missing_or_malformed_graph_is_named_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["why", "app"], ["duplicates"], ["subset", "app"], ["rounds"], ["to-dot"]):
        result = run("graph", *command)
        assert result.code == 2, command
        assert result.err.strip() == (
            f"bootstrapper: error: there is no {tmp_path / 'bootstrap-output' / 'graph.json'}: "
            "give --output-dir the directory a bootstrap wrote (default ./bootstrap-output)"
        )
    (tmp_path / "bootstrap-output").mkdir()
    (tmp_path / "bootstrap-output" / "graph.json").write_text('{"schema": 1, "roots": []')
    result = run("graph", "rounds")
    assert result.code == 1
    assert result.err.startswith(
        f"error: {tmp_path / 'bootstrap-output' / 'graph.json'} is not a graph.json "
        "bootstrapper wrote: "
    )
    assert "Traceback" not in result.err
    assert run("graph").code == 2


def test_the_readme_reference_names_the_options_the_parser_takes() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    reference = readme.split("## Command line\n", 1)[1].split("\n```\n", 2)[1]
    lines = [line for line in reference.splitlines() if line.startswith("bootstrapper graph ")]
    assert [line.split()[2] for line in lines] == [
        "why",
        "duplicates",
        "subset",
        "rounds",
        "to-dot",
        "metadata-diff",
    ]
    for line in lines:
        command = line.split()[2]
        out = io.StringIO()
        with redirect_stdout(out), pytest.raises(SystemExit) as exited:
            main(["graph", command, "--help"])
        assert exited.value.code == 0
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line):
            assert re.search(rf"(?<![\w-]){option}\b", out.getvalue()), (command, option)
        for option in ("--output-dir", "--json"):
            assert option in out.getvalue()


def test_why_says_so_when_the_chains_are_too_many_to_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A graph.json written here: twelve packages that all need each other at install
    # time, each needing the bottom one.
    cycle = [f"c{i}==1.0" for i in range(12)]
    nodes = [
        {"name": label.split("==")[0], "version": "1.0", "wheel": "w", "sdist": "s"}
        for label in ["app==1.0", "bottom==1.0", *cycle]
    ]
    edges = [{"from": None, "to": "app==1.0", "kind": "toplevel", "requirement": "app"}]
    edges.append({"from": "app==1.0", "to": "c0==1.0", "kind": "install", "requirement": "c0"})
    for a in cycle:
        edges.append({"from": a, "to": "bottom==1.0", "kind": "install", "requirement": "bottom"})
        edges.extend(
            {"from": a, "to": b, "kind": "install", "requirement": b.split("==")[0]}
            for b in cycle
            if b != a
        )
    (tmp_path / "tangle").mkdir()
    (tmp_path / "tangle" / "graph.json").write_text(
        json.dumps({"schema": 1, "roots": ["app"], "nodes": nodes, "edges": edges})
    )
    monkeypatch.chdir(tmp_path)
    result = run("graph", "why", "bottom", "--output-dir", "tangle")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        "Many chains (more than can be counted) lead from the top-level requirements to "
        "bottom (1.0):"
    )
    assert lines[-1] == (
        "showing the 20 shortest; more (too many to count) left out: raise --max-chains, or "
        "narrow the question (a VERSION, --install-only, --build-only)"
    )
    document = run("graph", "why", "bottom", "--output-dir", "tangle", "--json").json()
    assert (document["total"], document["shown"], document["left_out"]) == (None, 20, None)
    assert [step["node"] for step in document["chains"][0]] == [
        "app==1.0",
        "c0==1.0",
        "bottom==1.0",
    ]
