"""Unit tests for bootstrapper.graphquery and graph_dot: the answers of the ``graph``
commands over graphs written here, checked against brute force where one exists."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bootstrapper.errors import BuildCycleError, UsageError
from bootstrapper.graph import DependencyGraph, EdgeKind, Node, NodeKey
from bootstrapper.graph_dot import dot_text, drawing
from bootstrapper.graphquery import (
    Direction,
    GraphFileError,
    LoadedGraph,
    Selection,
    Step,
    duplicates,
    load_graph,
    rounds,
    subset,
    why,
)

INSTALL = EdgeKind.INSTALL
BUILD_SYSTEM = EdgeKind.BUILD_SYSTEM
BUILD_BACKEND = EdgeKind.BUILD_BACKEND

#: (parent, child, kind[, requirement]); names are ``name`` or ``name==version``.
Spec = tuple[str, ...]


def key(spec: str) -> NodeKey:
    name, _, version = spec.partition("==")
    return NodeKey(canonicalize_name(name), Version(version or "1.0"))


def make(
    edges: Sequence[tuple[str, str, EdgeKind] | tuple[str, str, EdgeKind, str]],
    roots: Sequence[str | tuple[str, str]] = ("app",),
    extra_nodes: Sequence[str] = (),
    published: dict[str, str] | None = None,
) -> LoadedGraph:
    """A graph as a run writes it, read back as the commands read it."""
    graph = DependencyGraph()
    specs = [*extra_nodes, *(s for e in edges for s in e[:2])]
    specs += [r if isinstance(r, str) else r[0] for r in roots]
    for spec in dict.fromkeys(specs):
        k = key(spec)
        version = (published or {}).get(spec)
        graph.add_node(
            Node(
                k,
                f"{k.name}-{version or k.version}-py3-none-any.whl",
                f"{k.name}.tar.gz",
                {"source_version": str(k.version)},
                version or str(k.version),
            )
        )
    for edge in edges:
        parent, child, kind = edge[0], edge[1], edge[2]
        requirement = edge[3] if len(edge) > 3 else key(child).name
        graph.add_edge(key(parent), key(child), kind, Requirement(requirement))
    texts = []
    for root in roots:
        spec, text = (root, key(root).name) if isinstance(root, str) else root
        graph.add_root(key(spec), Requirement(text))
        texts.append(text)
    document = json.loads(json.dumps(graph.to_json(texts)))
    loaded, read_roots = DependencyGraph.from_json(document)
    return LoadedGraph(loaded, read_roots, Path("/x/graph.json"))


def paths(graph: LoadedGraph, chains: Sequence[Sequence[Step]]) -> list[str]:
    return [" > ".join(graph.label(step.node) for step in chain) for chain in chains]


# -- loading -----------------------------------------------------------------------------


def test_a_graph_reads_back_field_for_field(tmp_path: Path) -> None:
    graph = make(
        [("app", "lib", INSTALL, "lib>=1"), ("lib", "tool==2.0", BUILD_SYSTEM, "tool==2.0")],
        roots=[("app", "app[x]")],
        published={"lib": "1.0.post2"},
    )
    document = graph.graph.to_json(graph.root_requirements)
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(document))
    again = load_graph(path)
    assert again.graph.to_json(again.root_requirements) == document
    assert again.label(key("lib")) == "lib==1.0.post2"
    assert again.find("LIB") == [key("lib")]
    assert again.find("lib", "1.0") == again.find("lib", "1.0.post2") == [key("lib")]
    assert [e.requirement for e in again.roots[key("app")]] == ["app[x]"]


def test_labels_written_by_hand_are_matched_by_normalized_name_and_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "graph.json"
    node = {"name": "Foo_Bar", "version": "1.0.0", "wheel": "w", "sdist": "s"}
    edges = [
        {"from": None, "to": "foo-bar==1.0", "kind": "toplevel", "requirement": "foo_bar"},
        {"from": "FOO.BAR==1", "to": "Foo_Bar==1.0.0", "kind": "install", "requirement": "x"},
    ]
    path.write_text(
        json.dumps({"schema": 1, "roots": ["foo_bar"], "nodes": [node], "edges": edges})
    )
    graph = load_graph(path)
    assert list(graph.nodes) == [NodeKey(canonicalize_name("foo-bar"), Version("1"))]
    assert len(graph.edges) == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "Expecting property name"),
        ("[]", "a JSON list where an object is expected"),
        ('{"schema": 2}', "schema 2, where 1 is expected"),
        ('{"schema": 1, "roots": [], "nodes": {}, "edges": []}', "no list 'nodes'"),
        (
            '{"schema": 1, "roots": [], "nodes": [{"name": "a"}], "edges": []}',
            "no string 'version'",
        ),
        (
            '{"schema": 1, "roots": [], "nodes": [{"name": "a", "version": "x y", "wheel": "w", '
            '"sdist": "s"}], "edges": []}',
            "Invalid version",
        ),
        (
            '{"schema": 1, "roots": [], "nodes": [], "edges": [{"from": null, "to": "a==1", '
            '"kind": "toplevel", "requirement": "a"}]}',
            "edges[0].to: 'a==1' is not one of the nodes",
        ),
        (
            '{"schema": 1, "roots": [], "nodes": [], "edges": [{"from": null, "to": "a==1", '
            '"kind": "sideways", "requirement": "a"}]}',
            "edges[0]: unknown kind 'sideways'",
        ),
        (
            '{"schema": 1, "roots": [], "nodes": [], "edges": [{"from": null, "to": "a==1"}]}',
            "edges[0]: no 'kind'",
        ),
    ],
)
def test_a_malformed_graph_is_named_with_what_is_wrong(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "graph.json"
    path.write_text(text)
    with pytest.raises(GraphFileError) as raised:
        load_graph(path)
    assert raised.value.message.startswith(f"{path} is not a graph.json bootstrapper wrote: ")
    assert problem in raised.value.message


def test_a_missing_graph_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        load_graph(tmp_path / "graph.json")
    assert f"there is no {tmp_path / 'graph.json'}" in raised.value.message
    assert "--output-dir" in raised.value.message


def test_an_unknown_name_suggests_close_ones() -> None:
    graph = make([("app", "requests", INSTALL), ("requests", "urllib3", INSTALL)])
    with pytest.raises(UsageError, match=r"requets is not in /x/graph.json; did you mean requests"):
        graph.find("requets")
    with pytest.raises(UsageError, match=r"urllib3 2.0 is not in /x/graph.json \(it has 1.0\)"):
        graph.find("urllib3", "2.0")
    with pytest.raises(UsageError, match="did you mean urllib3"):
        graph.find("lib3")  # a part of the name


# -- why ---------------------------------------------------------------------------------


def test_why_lists_every_chain_shortest_first_with_kinds_and_requirements() -> None:
    graph = make(
        [
            ("app", "lib", INSTALL, "lib>=1"),
            ("app", "cython", BUILD_SYSTEM, "cython<3"),
            ("lib", "cython", BUILD_BACKEND, "cython"),
            ("lib", "cython", INSTALL, "cython; extra == 'speed'"),
        ]
    )
    answer = why(graph, graph.find("cython"))
    assert paths(graph, answer.chains) == [
        "app==1.0 > cython==1.0",
        "app==1.0 > lib==1.0 > cython==1.0",
    ]
    assert answer.total == 2 and answer.left_out == 0
    first, second = answer.chains
    assert [(e.kind, e.requirement) for e in first[0].edges] == [(EdgeKind.TOPLEVEL, "app")]
    assert [(e.kind, e.requirement) for e in first[1].edges] == [(BUILD_SYSTEM, "cython<3")]
    # Two requirements between the same packages: one step, both edges.
    assert {(e.kind, e.requirement) for e in second[2].edges} == {
        (BUILD_BACKEND, "cython"),
        (INSTALL, 'cython; extra == "speed"'),
    }
    install = why(graph, graph.find("cython"), Selection.INSTALL)
    assert paths(graph, install.chains) == ["app==1.0 > lib==1.0 > cython==1.0"]
    assert [e.kind for e in install.chains[0][2].edges] == [INSTALL]
    build = why(graph, graph.find("cython"), Selection.BUILD)
    assert paths(graph, build.chains) == paths(graph, answer.chains)


def test_why_ends_in_install_cycles_and_lists_simple_chains() -> None:
    graph = make(
        [
            ("app", "torch", INSTALL),
            ("torch", "triton", INSTALL),
            ("triton", "torch", INSTALL),
            ("triton", "filelock", INSTALL),
            ("torch", "filelock", INSTALL),
            ("filelock", "filelock", INSTALL),  # a self-loop
        ]
    )
    answer = why(graph, graph.find("filelock"))
    assert sorted(paths(graph, answer.chains)) == [
        "app==1.0 > torch==1.0 > filelock==1.0",
        "app==1.0 > torch==1.0 > triton==1.0 > filelock==1.0",
    ]
    assert answer.total == 2
    assert paths(graph, why(graph, graph.find("torch")).chains) == ["app==1.0 > torch==1.0"]


def test_why_a_top_level_requirement_is_its_own_chain_and_passes_through_roots() -> None:
    graph = make([("app", "lib", INSTALL)], roots=["app", ("lib", "lib<2")])
    answer = why(graph, graph.find("lib"))
    assert paths(graph, answer.chains) == ["lib==1.0", "app==1.0 > lib==1.0"]
    assert answer.chains[0][0].edges[0].requirement == "lib<2"


def test_why_build_only_needs_a_build_edge_anywhere_in_the_chain() -> None:
    graph = make(
        [
            ("app", "lib", INSTALL),
            ("lib", "setuptools", BUILD_SYSTEM),
            ("setuptools", "packaging", INSTALL),
            ("app", "packaging", INSTALL),
        ]
    )
    build = why(graph, graph.find("packaging"), Selection.BUILD)
    assert paths(graph, build.chains) == ["app==1.0 > lib==1.0 > setuptools==1.0 > packaging==1.0"]
    install = why(graph, graph.find("packaging"), Selection.INSTALL)
    assert paths(graph, install.chains) == ["app==1.0 > packaging==1.0"]
    none = why(graph, graph.find("setuptools"), Selection.INSTALL)
    assert none.chains == () and none.total == 0


def _random_graph(
    rng: random.Random, size: int, density: float
) -> tuple[list[str], list[tuple[str, str, EdgeKind]]]:
    names = [f"p{i}" for i in range(size)]
    edges = []
    for parent, child in itertools.permutations(names, 2):
        if rng.random() < density:
            edges.append(
                (parent, child, rng.choice([INSTALL, INSTALL, BUILD_SYSTEM, BUILD_BACKEND]))
            )
    return names, edges


def _brute_force_chains(
    graph: LoadedGraph, targets: Sequence[NodeKey], selection: Selection
) -> set[tuple[NodeKey, ...]]:
    digraph = nx.DiGraph()
    digraph.add_nodes_from(graph.nodes)
    builds: dict[tuple[NodeKey, NodeKey], bool] = {}
    for e in graph.edges:
        if e.parent is None or e.parent == e.child:
            continue
        if selection is Selection.INSTALL and e.kind is not INSTALL:
            continue
        digraph.add_edge(e.parent, e.child)
        builds[(e.parent, e.child)] = builds.get((e.parent, e.child), False) or e.kind.is_build
    found = set()
    for root in graph.roots:
        for target in targets:
            candidates = [[root]] if root == target else nx.all_simple_paths(digraph, root, target)
            for path in candidates:
                built = any(builds[(a, b)] for a, b in itertools.pairwise(path))
                if selection is not Selection.BUILD or built:
                    found.add(tuple(path))
    return found


@pytest.mark.parametrize("seed", range(40))
def test_why_finds_exactly_the_simple_paths_and_counts_them(seed: int) -> None:
    rng = random.Random(seed)
    names, edges = _random_graph(rng, rng.randint(3, 8), rng.choice([0.2, 0.35, 0.5]))
    roots = rng.sample(names, rng.randint(1, 2))
    graph = make(edges, roots=roots, extra_nodes=names)
    target = [key(rng.choice(names))]
    for selection in Selection:
        expected = _brute_force_chains(graph, target, selection)
        everything = why(graph, target, selection, max_chains=10_000)
        got = [tuple(step.node for step in chain) for chain in everything.chains]
        assert set(got) == expected and len(got) == len(expected)
        assert everything.total == len(expected)
        lengths = [len(chain) for chain in got]
        assert lengths == sorted(lengths)  # the shortest first
        # Capped: the shortest ones, and an exact count of the rest.
        capped = why(graph, target, selection, max_chains=2)
        assert capped.total == len(expected)
        assert [len(c) for c in capped.chains] == lengths[:2]
        assert capped.left_out == max(0, len(expected) - 2)


def _layers(width: int, depth: int, cycles: bool) -> list[tuple[str, str, EdgeKind]]:
    """``depth`` layers of ``width`` packages, each needing every package of the next;
    with ``cycles``, each layer's packages also need each other (one install cycle)."""
    edges = [("app", f"l0n{i}", INSTALL) for i in range(width)]
    for layer in range(depth - 1):
        for i, j in itertools.product(range(width), repeat=2):
            kind = BUILD_SYSTEM if (i + j + layer) % 3 == 0 else INSTALL
            edges.append((f"l{layer}n{i}", f"l{layer + 1}n{j}", kind))
    edges += [(f"l{depth - 1}n{i}", "bottom", INSTALL) for i in range(width)]
    if cycles:
        for layer in range(depth):
            for i, j in itertools.permutations(range(width), 2):
                edges.append((f"l{layer}n{i}", f"l{layer}n{j}", INSTALL))
    return edges


def test_why_caps_a_huge_number_of_chains_and_counts_them_exactly_and_fast() -> None:
    width, depth = 6, 12  # 6**12 = 2,176,782,336 chains to the bottom
    graph = make(_layers(width, depth, cycles=False))
    started = time.monotonic()
    answer = why(graph, graph.find("bottom"))
    assert time.monotonic() - started < 10
    assert answer.total == width**depth
    assert len(answer.chains) == 20 and answer.left_out == width**depth - 20
    assert {len(chain) for chain in answer.chains} == {depth + 2}


def test_why_counts_chains_through_install_cycles_exactly() -> None:
    width, depth = 3, 6
    graph = make(_layers(width, depth, cycles=True))
    target = graph.find("bottom")
    # A chain enters a layer (3 packages that all need each other) at any of the 3, and
    # leaves it after visiting 0, 1 or 2 others: 1 + 2 + 2 = 5 ways from each entry.
    expected = (width * 5) ** depth
    answer = why(graph, target, max_chains=5)
    assert answer.total == expected
    small = make(_layers(2, 3, cycles=True))
    brute = _brute_force_chains(small, small.find("bottom"), Selection.ALL)
    assert why(small, small.find("bottom"), max_chains=1).total == len(brute)
    build = _brute_force_chains(small, small.find("bottom"), Selection.BUILD)
    assert why(small, small.find("bottom"), Selection.BUILD, max_chains=1).total == len(build)


def test_why_says_when_chains_are_too_many_to_count() -> None:
    # One install cycle of 12 packages that all need each other: more simple paths
    # through it than the counting budget allows.
    names = [f"c{i}" for i in range(12)]
    edges = [("app", "c0", INSTALL)] + [
        (a, b, INSTALL) for a, b in itertools.permutations(names, 2)
    ]
    edges += [(n, "bottom", INSTALL) for n in names]
    graph = make(edges)
    started = time.monotonic()
    answer = why(graph, graph.find("bottom"))
    assert time.monotonic() - started < 10
    assert answer.total is None and answer.left_out is None
    assert len(answer.chains) == 20
    assert paths(graph, answer.chains[:1]) == ["app==1.0 > c0==1.0 > bottom==1.0"]


def test_why_answers_quickly_on_a_graph_of_thousands_of_packages() -> None:
    rng = random.Random(7)
    size = 3000
    edges: list[tuple[str, str, EdgeKind]] = []
    for i in range(1, size):
        for j in rng.sample(range(i), min(i, 4)):
            edges.append((f"p{i}", f"p{j}", INSTALL))
        edges.append((f"p{i}", f"p{rng.randrange(min(i, 20))}", BUILD_SYSTEM))
    for i in range(100, size - 1, 50):  # torch <-> triton, here and there (not in tools)
        edges.append((f"p{i}", f"p{i + 1}", INSTALL))
    graph = make(edges, roots=[f"p{size - 1}", f"p{size - 2}"])
    started = time.monotonic()
    for name in ("p0", "p1", "p1500"):
        for selection in Selection:
            answer = why(graph, graph.find(name), selection)
            assert answer.total is None or answer.total >= len(answer.chains)
    rounds(graph)
    duplicates(graph)
    dot_text(graph, drawing(graph))
    assert time.monotonic() - started < 30


# -- duplicates --------------------------------------------------------------------------


def test_duplicates_evaluates_each_requirement_against_each_present_version() -> None:
    graph = make(
        [
            ("app", "setuptools==75.0", INSTALL, "setuptools>=70"),
            ("lib", "setuptools==68.0", BUILD_SYSTEM, "setuptools<70"),
            ("app", "lib", INSTALL),
            ("tool", "setuptools==75.0", BUILD_SYSTEM, "setuptools"),
            ("app", "tool", INSTALL),
            ("app", "six==1.16", INSTALL, "six"),
            ("lib", "six==1.15", BUILD_BACKEND, "six>=1.10"),
            ("app", "pkg==2.0rc1", INSTALL, "pkg>=2.0rc1"),
            ("tool", "pkg==1.0", BUILD_SYSTEM, "pkg>=1"),
        ],
        published={"six==1.16": "1.16.post1"},
    )
    found = {d.name: d for d in duplicates(graph)}
    assert sorted(found) == ["pkg", "setuptools", "six"]
    setuptools = found[canonicalize_name("setuptools")]
    assert [graph.version_label(k) for k in setuptools.versions] == ["68.0", "75.0"]
    table = [
        (
            graph.label(n.edge.parent) if n.edge.parent else None,
            n.edge.requirement,
            [graph.version_label(k) for k in n.satisfied_by],
        )
        for n in setuptools.needs
    ]
    assert table == [
        ("lib==1.0", "setuptools<70", ["68.0"]),
        ("app==1.0", "setuptools>=70", ["75.0"]),
        ("tool==1.0", "setuptools", ["68.0", "75.0"]),
    ]
    assert setuptools.satisfy_all == ()
    six = found[canonicalize_name("six")]
    # Compared as published: 1.16.post1 satisfies six>=1.10 as 1.16 would.
    assert [graph.version_label(k) for k in six.satisfy_all] == ["1.15", "1.16.post1"]
    pkg = found[canonicalize_name("pkg")]
    assert [graph.version_label(k) for k in pkg.satisfy_all] == ["2.0rc1"]  # pre-releases count


def test_duplicates_counts_a_top_level_requirement_as_a_need() -> None:
    graph = make(
        [("app", "lib==2.0", BUILD_SYSTEM, "lib>=2")], roots=["app", ("lib==1.0", "lib<2")]
    )
    [dup] = duplicates(graph)
    assert [(n.edge.parent, n.edge.requirement) for n in dup.needs] == [
        (None, "lib<2"),
        (key("app"), "lib>=2"),
    ]
    assert (
        make([("app", "lib", INSTALL)]).graph and duplicates(make([("app", "lib", INSTALL)])) == []
    )


# -- rounds ------------------------------------------------------------------------------


def test_rounds_wait_for_build_requirements_and_their_install_closure() -> None:
    graph = make(
        [
            ("app", "lib", INSTALL),
            ("lib", "setuptools", BUILD_SYSTEM),
            ("setuptools", "packaging", INSTALL),
            ("packaging", "flit-core", BUILD_SYSTEM),
            ("app", "hatchling", BUILD_SYSTEM),
            ("hatchling", "pathspec", INSTALL),
            ("pathspec", "flit-core", BUILD_SYSTEM),
            ("tool", "midtool", BUILD_SYSTEM),
            ("midtool", "lib", INSTALL),
            ("app", "tool", INSTALL),
        ]
    )
    names = [[k.name for k in r] for r in rounds(graph)]
    assert names == [
        # hatchling needs pathspec, and midtool lib, only to install
        ["flit-core", "hatchling", "midtool", "setuptools"],
        ["packaging", "pathspec"],
        ["app", "lib"],  # lib's install requirements need not be built before it
        ["tool"],  # midtool's install closure holds lib
    ]


def test_rounds_keep_an_install_cycle_apart_and_report_a_build_cycle() -> None:
    graph = make(
        [
            ("app", "torch", INSTALL),
            ("torch", "triton", INSTALL),
            ("triton", "torch", INSTALL),
            ("torch", "cmake", BUILD_SYSTEM),
            ("user", "triton", BUILD_SYSTEM),
        ],
        roots=["app", "user"],
    )
    names = [[k.name for k in r] for r in rounds(graph)]
    assert names == [["app", "cmake", "triton"], ["torch"], ["user"]]
    cyclic = make([("app", "a", BUILD_SYSTEM), ("a", "b", INSTALL), ("b", "a", BUILD_BACKEND)])
    with pytest.raises(BuildCycleError, match="build cycle: "):
        rounds(cyclic)


def _brute_force_rounds(graph: LoadedGraph) -> dict[NodeKey, int]:
    installs = {
        k: [e.child for e in graph.out_edges.get(k, []) if e.kind is INSTALL] for k in graph.nodes
    }
    builds = {
        k: [e.child for e in graph.out_edges.get(k, []) if e.kind.is_build] for k in graph.nodes
    }

    def closure(start: NodeKey) -> set[NodeKey]:
        seen, todo = {start}, [start]
        while todo:
            for child in installs[todo.pop()]:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    env = {k: set().union(*(closure(q) for q in builds[k])) for k in graph.nodes}
    found: dict[NodeKey, int] = {}
    while len(found) < len(graph.nodes):
        ready = {k for k in graph.nodes if k not in found and all(q in found for q in env[k])}
        assert ready, "a build cycle"
        for k in ready:
            found[k] = 1 + max((found[q] for q in env[k]), default=0)
    return found


@pytest.mark.parametrize("seed", range(60))
def test_rounds_match_brute_force_and_fail_exactly_on_build_cycles(seed: int) -> None:
    rng = random.Random(seed)
    names, edges = _random_graph(rng, rng.randint(2, 9), rng.choice([0.1, 0.2, 0.3]))
    graph = make(edges, roots=names[:1], extra_nodes=names)
    try:
        graph.graph.build_order()
    except BuildCycleError:
        with pytest.raises(BuildCycleError):
            rounds(graph)
        return
    expected = _brute_force_rounds(graph)
    got = {k: i for i, members in enumerate(rounds(graph), 1) for k in members}
    assert got == expected


# -- subset ------------------------------------------------------------------------------


def _subset_graph() -> LoadedGraph:
    return make(
        [
            ("app", "lib", INSTALL),
            ("lib", "setuptools", BUILD_SYSTEM),
            ("setuptools", "packaging", INSTALL),
            ("other", "six", INSTALL),
            ("other", "setuptools", BUILD_SYSTEM),
            ("loner", "flit-core", BUILD_SYSTEM),
        ],
        roots=["app", "other", "loner"],
    )


def test_subset_dependencies_is_the_package_and_everything_it_needs() -> None:
    graph = _subset_graph()
    part = subset(graph, graph.find("lib"), Direction.DEPENDENCIES)
    assert sorted(str(n.key.name) for n in part.graph.nodes()) == ["lib", "packaging", "setuptools"]
    document = part.graph.to_json(part.roots)
    assert document["roots"] == ["lib==1.0"]
    assert {
        "from": None,
        "to": "lib==1.0",
        "kind": "toplevel",
        "requirement": "lib==1.0",
    } in document["edges"]
    assert all(
        e["from"] is None or e["from"] in {"lib==1.0", "setuptools==1.0"} for e in document["edges"]
    )


def test_subset_dependents_is_the_whole_trees_of_the_roots_that_need_it() -> None:
    graph = _subset_graph()
    part = subset(graph, graph.find("packaging"), Direction.DEPENDENTS)
    assert part.roots == ("app", "other")
    assert sorted(str(n.key.name) for n in part.graph.nodes()) == [
        "app",
        "lib",
        "other",
        "packaging",
        "setuptools",
        "six",
    ]
    assert sorted(str(k.name) for k in part.dependents) == ["app", "lib", "other", "setuptools"]
    # A part is a graph of its own: the queries answer on it.
    reread, roots = DependencyGraph.from_json(
        json.loads(json.dumps(part.graph.to_json(part.roots)))
    )
    again = LoadedGraph(reread, roots, Path("/x/part.json"))
    assert paths(again, why(again, again.find("six")).chains) == ["other==1.0 > six==1.0"]


# -- to-dot ------------------------------------------------------------------------------


def test_dot_draws_each_kind_and_escapes_requirements() -> None:
    graph = make(
        [
            ("app", "lib", INSTALL, 'lib; extra == "x"'),
            ("app", "lib", BUILD_SYSTEM, "lib>=1"),
            ("lib", "tool", BUILD_BACKEND, "tool"),
        ]
    )
    text = dot_text(graph, drawing(graph))
    assert text.startswith("digraph bootstrap {\n") and text.endswith("}\n")
    assert '"app==1.0" [peripheries=2, tooltip="top-level: app"];' in text
    assert '"app==1.0" -> "lib==1.0" [tooltip="install: lib; extra == \\"x\\""];' in text
    assert (
        '"app==1.0" -> "lib==1.0" [style=dashed, color="#1f5fbf", tooltip="build-system: lib>=1"];'
        in text
    )
    assert (
        '"lib==1.0" -> "tool==1.0" [style=dashed, color="#2e8b57", tooltip="build-backend: tool"];'
        in text
    )
    install = drawing(graph, Selection.INSTALL)
    assert [graph.label(k) for k in install.nodes] == ["app==1.0", "lib==1.0"]
    assert [e.kind for e in install.edges] == [INSTALL]
    build = drawing(graph, Selection.BUILD)
    assert [graph.label(k) for k in build.nodes] == ["app==1.0", "lib==1.0", "tool==1.0"]
    assert {e.kind for e in build.edges} == {BUILD_SYSTEM, BUILD_BACKEND}


def test_why_settles_for_the_chains_found_within_its_search_budget() -> None:
    graph = make(_layers(4, 5, cycles=True))
    target = graph.find("bottom")
    full = why(graph, target, max_chains=50)
    assert len(full.chains) == 50
    for budget, found in ((10, 0), (60, 1)):
        short = why(graph, target, max_chains=50, search_budget=budget)
        assert (len(short.chains) > 0) == bool(found)
        # The count does not depend on the search: 1 + 3 + 6 + 6 ways through 4.
        assert short.total == full.total == (4 * 16) ** 5
        for chain in short.chains:
            nodes = [step.node for step in chain]
            assert nodes[0] in graph.roots and nodes[-1] in target
            assert len(set(nodes)) == len(nodes)
    assert why(graph, target, count_budget=10).total is None
