"""Unit tests for bootstrapper.graph: typed edges, build order, cycles, graph.json."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bootstrapper.errors import BuildCycleError
from bootstrapper.graph import SCHEMA, DependencyGraph, EdgeKind, Node, NodeKey
from bootstrapper.outputs import line_per_item

Edge = tuple[str, str, EdgeKind]

INSTALL = EdgeKind.INSTALL
BUILD_SYSTEM = EdgeKind.BUILD_SYSTEM
BUILD_BACKEND = EdgeKind.BUILD_BACKEND
BUILD_SDIST = EdgeKind.BUILD_SDIST


def key(spec: str) -> NodeKey:
    """``name`` or ``name==version`` (version 1.0 by default)."""
    name, _, version = spec.partition("==")
    return NodeKey(canonicalize_name(name), Version(version or "1.0"))


def node(spec: str) -> Node:
    k = key(spec)
    return Node(k, f"{k.name}-{k.version}-py3-none-any.whl", f"{k.name}-{k.version}.tar.gz")


def make_graph(edges: Sequence[Edge], extra_nodes: Sequence[str] = ()) -> DependencyGraph:
    graph = DependencyGraph()
    specs = dict.fromkeys([*extra_nodes, *(s for e in edges for s in e[:2])])
    for spec in specs:
        graph.add_node(node(spec))
    for parent, child, kind in edges:
        graph.add_edge(key(parent), key(child), kind, Requirement(key(child).name))
    return graph


def order_names(graph: DependencyGraph) -> list[str]:
    return [str(k.name) for k in graph.build_order()]


def assert_before(order: list[str], first: str, then: str) -> None:
    assert order.index(first) < order.index(then), f"{first} should come before {then}: {order}"


# -- nodes and edges --------------------------------------------------------------------


def test_nodes_membership_and_lookup() -> None:
    graph = DependencyGraph()
    graph.add_node(node("app"))
    assert key("app") in graph
    assert key("app==2.0") not in graph
    assert "app" not in graph
    assert graph.node(key("app")) == node("app")


def test_edge_endpoint_without_node_is_not_a_member() -> None:
    graph = DependencyGraph()
    graph.add_node(node("app"))
    graph.add_edge(key("app"), key("lib"), INSTALL, Requirement("lib"))
    assert key("lib") not in graph
    assert graph.build_order() == [key("app")]


def test_edges_are_deduplicated_by_kind_and_requirement() -> None:
    graph = make_graph([])
    for _ in range(2):
        graph.add_edge(key("app"), key("lib"), INSTALL, Requirement("lib>=1"))
    graph.add_edge(key("app"), key("lib"), INSTALL, Requirement("lib<2"))
    graph.add_edge(key("app"), key("lib"), BUILD_SYSTEM, Requirement("lib>=1"))
    assert graph.edges() == [
        (key("app"), key("lib"), BUILD_SYSTEM, "lib>=1"),
        (key("app"), key("lib"), INSTALL, "lib<2"),
        (key("app"), key("lib"), INSTALL, "lib>=1"),
    ]


@pytest.mark.parametrize(
    ("kind", "is_build"),
    [
        (EdgeKind.TOPLEVEL, False),
        (INSTALL, False),
        (BUILD_SYSTEM, True),
        (BUILD_BACKEND, True),
        (BUILD_SDIST, True),
    ],
)
def test_edge_kind_is_build(kind: EdgeKind, is_build: bool) -> None:
    assert kind.is_build is is_build


def test_edge_kind_values_match_the_documented_names() -> None:
    assert {k.value for k in EdgeKind} == {
        "toplevel",
        "install",
        "build-system",
        "build-backend",
        "build-sdist",
    }


def test_node_key_str_and_order() -> None:
    assert str(key("Foo_Bar==1.0")) == "foo-bar==1.0"
    assert sorted([key("b"), key("a==2.0"), key("a==1.10"), key("a==1.9")]) == [
        key("a==1.9"),
        key("a==1.10"),
        key("a==2.0"),
        key("b"),
    ]


# -- build order ------------------------------------------------------------------------


def test_build_order_dependencies_first() -> None:
    graph = make_graph(
        [
            ("app", "libone", INSTALL),
            ("app", "libtwo", INSTALL),
            ("libtwo", "libone", INSTALL),
        ]
    )
    assert order_names(graph) == ["libone", "libtwo", "app"]


def test_build_order_build_requirements_and_their_install_closure_first() -> None:
    graph = make_graph(
        [
            ("app", "lib", INSTALL),
            ("app", "setuptools", BUILD_SYSTEM),
            ("app", "cython", BUILD_BACKEND),
            ("setuptools", "packaging", INSTALL),
            ("packaging", "pyparsing", INSTALL),
            ("cython", "flit-core", BUILD_SYSTEM),
            ("lib", "hatchling", BUILD_SDIST),
            ("hatchling", "pathspec", INSTALL),
        ],
        extra_nodes=["unrelated"],
    )
    order = order_names(graph)
    assert sorted(order) == sorted(
        [
            "app",
            "lib",
            "setuptools",
            "cython",
            "packaging",
            "pyparsing",
            "flit-core",
            "hatchling",
            "pathspec",
            "unrelated",
        ]
    )
    for built, needed in [
        ("app", "setuptools"),
        ("app", "packaging"),  # install closure of a build requirement
        ("app", "pyparsing"),
        ("app", "cython"),
        ("cython", "flit-core"),
        ("app", "lib"),
        ("lib", "hatchling"),
        ("lib", "pathspec"),
        ("setuptools", "packaging"),
    ]:
        assert_before(order, needed, built)


def test_build_order_is_deterministic_whatever_the_insertion_order() -> None:
    edges: list[Edge] = [
        ("app", "b", INSTALL),
        ("app", "a", INSTALL),
        ("app", "c", BUILD_SYSTEM),
        ("b", "d", INSTALL),
        ("a", "d", INSTALL),
    ]
    orders = {
        tuple(order_names(make_graph(list(permutation))))
        for permutation in itertools.permutations(edges)
    }
    assert len(orders) == 1
    # independent packages come by name
    assert next(iter(orders)) == ("c", "d", "a", "b", "app")


def test_build_order_distinguishes_versions() -> None:
    graph = make_graph(
        [("app==1.0", "tool==2.0", BUILD_SYSTEM), ("tool==2.0", "tool==1.0", BUILD_SYSTEM)]
    )
    assert graph.build_order() == [key("tool==1.0"), key("tool==2.0"), key("app==1.0")]


def test_install_cycle_is_allowed_members_adjacent() -> None:
    graph = make_graph(
        [
            ("app", "torch", INSTALL),
            ("torch", "triton", INSTALL),
            ("triton", "torch", INSTALL),
            ("torch", "cmake", BUILD_SYSTEM),
            ("triton", "setuptools", BUILD_SYSTEM),
            ("app", "zzz", INSTALL),
        ]
    )
    order = order_names(graph)
    assert len(order) == 6
    torch, triton = order.index("torch"), order.index("triton")
    assert abs(torch - triton) == 1
    assert triton == torch + 1  # sorted by name inside the cycle
    for needed in ("cmake", "setuptools"):
        assert_before(order, needed, "torch")
        assert_before(order, needed, "triton")
    assert order[-1] == "app"


def test_install_cycle_order_is_deterministic() -> None:
    edges: list[Edge] = [
        ("app", "torch", INSTALL),
        ("torch", "triton", INSTALL),
        ("triton", "torch", INSTALL),
        ("triton", "filelock", INSTALL),
        ("torch", "cmake", BUILD_SYSTEM),
    ]
    orders = {
        tuple(order_names(make_graph(list(permutation))))
        for permutation in itertools.permutations(edges)
    }
    assert orders == {("cmake", "filelock", "torch", "triton", "app")}


def test_longer_install_cycle_is_allowed() -> None:
    graph = make_graph(
        [
            ("c", "a", INSTALL),
            ("a", "b", INSTALL),
            ("b", "c", INSTALL),
            ("a", "a", INSTALL),  # a self-loop at install time is harmless too
            ("root", "b", INSTALL),
        ]
    )
    assert order_names(graph) == ["a", "b", "c", "root"]


@pytest.mark.parametrize("kind", [BUILD_SYSTEM, BUILD_BACKEND, BUILD_SDIST])
def test_build_cycle_raises_and_names_the_cycle(kind: EdgeKind) -> None:
    graph = make_graph([("app", "a", INSTALL), ("a", "b", kind), ("b", "a", INSTALL)])
    with pytest.raises(BuildCycleError) as info:
        graph.build_order()
    message = info.value.message
    assert message.startswith("build cycle: ")
    cycle = message.removeprefix("build cycle: ").split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a==1.0", "b==1.0"}
    assert "app" not in message


def test_build_cycle_through_two_build_edges() -> None:
    graph = make_graph(
        [("setuptools", "wheel", BUILD_SYSTEM), ("wheel", "setuptools", BUILD_SYSTEM)]
    )
    with pytest.raises(BuildCycleError) as info:
        graph.build_order()
    assert "setuptools==1.0" in info.value.message
    assert "wheel==1.0" in info.value.message


def _assert_message_names_a_build_cycle(graph: DependencyGraph, message: str) -> None:
    cycle = [key(s) for s in message.removeprefix("build cycle: ").split(" -> ")]
    assert cycle[0] == cycle[-1]
    steps = list(itertools.pairwise(cycle))
    edge_kinds: dict[tuple[NodeKey, NodeKey], set[EdgeKind]] = {step: set() for step in steps}
    for u, v, kind, _ in graph.edges():
        if (u, v) in edge_kinds:
            edge_kinds[(u, v)].add(kind)
    assert all(edge_kinds[step] for step in steps), "every step must be an edge"
    assert any(kind.is_build for kinds in edge_kinds.values() for kind in kinds)


def test_build_cycle_message_steps_are_real_edges() -> None:
    graph = make_graph([("a", "b", BUILD_SYSTEM), ("b", "c", INSTALL), ("c", "a", INSTALL)])
    with pytest.raises(BuildCycleError) as info:
        graph.build_order()
    _assert_message_names_a_build_cycle(graph, info.value.message)


def test_build_cycle_message_names_the_cycle_through_the_build_edge() -> None:
    graph = make_graph(
        [
            ("a", "b", INSTALL),
            ("b", "a", INSTALL),
            ("b", "c", BUILD_SYSTEM),
            ("c", "a", INSTALL),
        ]
    )
    with pytest.raises(BuildCycleError) as info:
        graph.build_order()
    _assert_message_names_a_build_cycle(graph, info.value.message)


def test_build_self_loop_is_a_build_cycle() -> None:
    graph = make_graph([("app", "tool", INSTALL), ("tool", "tool", BUILD_SYSTEM)])
    with pytest.raises(BuildCycleError) as info:
        graph.build_order()
    assert "tool==1.0" in info.value.message


# -- graph.json -------------------------------------------------------------------------


def test_to_json_matches_documented_format() -> None:
    graph = DependencyGraph()
    app, libone, setuptools = key("app==1.0"), key("libone==1.4"), key("setuptools==70.0")
    graph.add_node(Node(app, "app-1.0-py3-none-any.whl", "app-1.0.tar.gz"))
    graph.add_node(
        Node(
            libone,
            "libone-1.4-py3-none-any.whl",
            "libone-1.4.tar.gz",
            extra={"origin": "upstream"},
        )
    )
    graph.add_node(Node(setuptools, "setuptools-70.0-py3-none-any.whl", "setuptools-70.0.tar.gz"))
    graph.add_root(app, Requirement("app"))
    graph.add_root(app, Requirement("app"))  # recorded once
    graph.add_edge(app, libone, INSTALL, Requirement("libone>=1,<2"))
    graph.add_edge(app, setuptools, BUILD_SYSTEM, Requirement("setuptools>=61"))
    graph.add_edge(libone, setuptools, BUILD_BACKEND, Requirement("setuptools"))

    document = graph.to_json(["app"])

    assert document == {
        "schema": 1,
        "roots": ["app"],
        "nodes": [
            {
                "name": "app",
                "version": "1.0",
                "wheel": "app-1.0-py3-none-any.whl",
                "sdist": "app-1.0.tar.gz",
            },
            {
                "name": "libone",
                "version": "1.4",
                "wheel": "libone-1.4-py3-none-any.whl",
                "sdist": "libone-1.4.tar.gz",
                "origin": "upstream",
            },
            {
                "name": "setuptools",
                "version": "70.0",
                "wheel": "setuptools-70.0-py3-none-any.whl",
                "sdist": "setuptools-70.0.tar.gz",
            },
        ],
        "edges": [
            {"from": None, "to": "app==1.0", "kind": "toplevel", "requirement": "app"},
            {
                "from": "app==1.0",
                "to": "libone==1.4",
                "kind": "install",
                "requirement": "libone<2,>=1",
            },
            {
                "from": "app==1.0",
                "to": "setuptools==70.0",
                "kind": "build-system",
                "requirement": "setuptools>=61",
            },
            {
                "from": "libone==1.4",
                "to": "setuptools==70.0",
                "kind": "build-backend",
                "requirement": "setuptools",
            },
        ],
    }
    assert SCHEMA == 1
    # Plain JSON types only, so it round-trips exactly.
    assert json.loads(json.dumps(document)) == document
    assert all(type(edge["kind"]) is str for edge in document["edges"])
    assert all(type(n["name"]) is str for n in document["nodes"])


def test_to_json_several_roots_and_normalized_names() -> None:
    graph = DependencyGraph()
    app, torch = key("My_App==1.0"), key("Torch==2.3.0")
    graph.add_node(node("My_App==1.0"))
    graph.add_node(node("Torch==2.3.0"))
    graph.add_root(app, Requirement("My_App"))
    graph.add_root(torch, Requirement("torch>=2"))
    graph.add_edge(app, torch, INSTALL, Requirement("Torch>=2"))
    document = graph.to_json(["My_App", "torch>=2"])
    assert document["roots"] == ["My_App", "torch>=2"]
    assert [n["name"] for n in document["nodes"]] == ["my-app", "torch"]
    assert [(e["from"], e["to"], e["kind"]) for e in document["edges"]] == [
        (None, "my-app==1.0", "toplevel"),
        (None, "torch==2.3.0", "toplevel"),
        ("my-app==1.0", "torch==2.3.0", "install"),
    ]


def test_to_json_empty_graph() -> None:
    assert DependencyGraph().to_json([]) == {"schema": 1, "roots": [], "nodes": [], "edges": []}


def _networkx_order(keys: Sequence[NodeKey], edges: Sequence[Edge]) -> list[NodeKey]:
    """The build order as networkx computes it (what every earlier build-order.json has)."""
    import networkx as nx

    reference = nx.MultiDiGraph()
    reference.add_nodes_from(keys)
    reference.add_edges_from(
        (key(a), key(b)) for a, b, _ in edges if key(a) in keys and key(b) in keys
    )
    condensed = nx.condensation(reference)
    members = nx.get_node_attributes(condensed, "members")
    order = nx.lexicographical_topological_sort(
        condensed.reverse(copy=True), key=lambda c: min(str(k) for k in members[c])
    )
    return [k for component in order for k in sorted(members[component])]


@pytest.mark.parametrize("seed", range(200))
def test_build_order_is_networkx_lexicographic_order_of_the_condensation(seed: int) -> None:
    """The graph computes its order itself: components of install cycles, dependencies
    first, ties broken by the least member's name, as networkx's would."""
    import random

    rng = random.Random(seed)
    specs = [f"p{i}=={rng.choice(['1.0', '2.0'])}" for i in range(rng.randint(1, 14))]
    edges = [(rng.choice(specs), rng.choice(specs), INSTALL) for _ in range(rng.randint(0, 24))]
    graph = make_graph(edges, extra_nodes=specs)
    assert graph.build_order() == _networkx_order([key(s) for s in specs], edges)
    kept = [key(s) for s in specs if rng.random() < 0.7]
    assert graph.restricted(kept).build_order() == _networkx_order(kept, edges)


def test_graph_json_has_each_node_and_edge_on_a_line_of_its_own() -> None:
    """So that a diff between two runs' graph.json names what changed, line by line."""
    graph = DependencyGraph()
    app, lib = key("app==1.0"), key("lib==2.0")
    graph.add_node(node("app==1.0"))
    graph.add_node(node("lib==2.0"))
    graph.add_root(app, Requirement("app"))
    graph.add_edge(app, lib, EdgeKind.INSTALL, Requirement("lib>=2"))
    document = graph.to_json(["app"])
    text = line_per_item(document)
    assert json.loads(text) == document
    lines = [line.strip().rstrip(",") for line in text.splitlines()]
    for item in [*document["nodes"], *document["edges"]]:
        assert json.dumps(item) in lines
    assert line_per_item([]) == "[]\n"


def test_a_node_key_unpickled_in_another_process_is_found_there() -> None:
    """Keys travel to Dask workers; their hash is computed once, and again on arrival
    (a str hashes differently in each process)."""
    import pickle
    import subprocess
    import sys

    data = pickle.dumps(key("some-project==1.2.3"))
    script = (
        "import pickle, sys\n"
        "from bootstrapper.graph import NodeKey\n"
        "from packaging.version import Version\n"
        "k = pickle.loads(sys.stdin.buffer.read())\n"
        "print({NodeKey('some-project', Version('1.2.3')): 'found'}[k])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=data,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "found"


def test_graph_json_keeps_no_credentials_of_a_url_in_a_requirement() -> None:
    graph = DependencyGraph()
    app, lib = key("app==1.0"), key("lib==2.0")
    graph.add_node(node("app==1.0"))
    graph.add_node(node("lib==2.0"))
    graph.add_root(app, Requirement("app"))
    graph.add_edge(app, lib, EdgeKind.INSTALL, Requirement("lib @ https://u:tok@host/lib.whl"))
    text = json.dumps(graph.to_json(["app", "x @ https://u:tok@host/x.whl"]))
    assert "tok" not in text and "https://host/lib.whl" in text
