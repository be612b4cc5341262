"""Issue 12: the index's SBOM (``DIR/sbom.cdx.json``) and each wheel's own (PEP 770).

The integration tests read one bootstrap of a small tree, run as a user types it (in a
working directory, default output directory, relative patches directory): ``app``
needs ``libone[fast]`` (so ``libfast`` is reached through an extra) and ``libtwo``,
which is built by the packaged ``fixture-backend`` and asks it for ``dyn-req``;
``patched-pkg`` is patched.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import json
import shutil
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.model.license import LicenseExpression
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.utils import canonicalize_name

from bootstrapper.cli import main
from bootstrapper.isolation import isolation_prefix
from bootstrapper.records import BuildRecord
from bootstrapper.reproducible import first_difference, normalize_wheel
from bootstrapper.sbom._cdx import licenses
from bootstrapper.sbom.wheel import WHEEL_SBOM
from bootstrapper.wheeledit import record_problems

from .conftest import helper_project, installed, pip_install
from .support import FixtureIndex, Project, backend_package

PATCH = "01-set-flag.patch"
TOOL = {"import": ["fixture_helper", "dyn_req"]}


def projects() -> list[Project]:
    return [
        backend_package(),
        helper_project(),
        Project(
            "app",
            dependencies=["libone[fast]>=1", "libtwo"],
            tool={"metadata": ["License-Expression: mit OR Apache-2.0"]},
        ),
        Project(
            "libone",
            "1.4",
            optional={"fast": ["libfast"]},
            tool={
                "metadata": [
                    "Classifier: License :: OSI Approved",
                    "Classifier: License :: OSI Approved :: BSD License",
                ]
            },
        ),
        Project("libfast", tool={"metadata": ["License: Fast Public Licence"]}),
        Project(
            "libtwo",
            "2.0",
            build_requires=["fixture-backend"],
            backend_requires=["dyn-req"],
            tool=TOOL,
        ),
        Project("dyn-req", tool={"modules": ["dyn_req"]}, files={"src/dyn_req.py": ""}),
        Project(
            "patched-pkg",
            tool={"modules": ["patched_pkg"]},
            files={"src/patched_pkg.py": "PATCHED = False\n"},
        ),
    ]


def patch_text() -> str:
    return "".join(
        difflib.unified_diff(
            ["PATCHED = False\n"],
            ["PATCHED = True\n"],
            "a/src/patched_pkg.py",
            "b/src/patched_pkg.py",
        )
    )


@functools.cache
def isolation_args() -> tuple[str, ...]:
    return () if isolation_prefix() is not None else ("--no-network-isolation",)


def run(*args: str | Path) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


@dataclass(frozen=True)
class Tree:
    root: Path
    index_url: str

    @property
    def out(self) -> Path:
        return self.root / "bootstrap-output"

    def wheel(self, name: str) -> Path:
        (found,) = self.out.glob(f"wheels/{name.replace('-', '_')}-*.whl")
        return found

    def record(self, name: str) -> BuildRecord:
        wheel = self.wheel(name)
        return BuildRecord.from_json(wheel.with_name(wheel.name + ".build.json").read_text())

    def sbom(self) -> dict[str, Any]:
        return load(self.out / "sbom.cdx.json")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    root = tmp_path_factory.mktemp("sbom-tree")
    index = FixtureIndex()
    index.start()
    patch = root / "patches" / "patched-pkg" / PATCH
    patch.parent.mkdir(parents=True)
    patch.write_text(patch_text())
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        try:
            index.add_all(projects(), root / "index-files")
            code, err = bootstrap(index.url)
            assert code == 0, err
            yield Tree(root, index.url)
        finally:
            index.stop()


def bootstrap(index_url: str) -> tuple[int, str]:
    """The tree's bootstrap, as typed in the directory that holds the patches."""
    return run(
        "bootstrap",
        "--index-url",
        index_url,
        "--patches-dir",
        "patches",
        "--jobs",
        "2",
        *isolation_args(),
        "app",
        "patched-pkg",
    )


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def assert_valid(text: str) -> None:
    """Valid against the CycloneDX 1.6 JSON schema (the library's strict validator)."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["components"]}


def props(component: dict[str, Any], name: str) -> list[str]:
    return sorted(p["value"] for p in component.get("properties", []) if p["name"] == name)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the index's SBOM ------------------------------------------------------------------


def test_the_index_sbom_is_valid_and_names_every_published_wheel(tree: Tree) -> None:
    assert_valid((tree.out / "sbom.cdx.json").read_text())
    document = tree.sbom()
    assert document["specVersion"] == "1.6"
    assert "timestamp" not in document.get("metadata", {})
    wheels = sorted((tree.out / "wheels").glob("*.whl"))
    assert len(wheels) == 8
    components = {c["purl"]: c for c in document["components"]}
    assert sorted(components) == sorted(
        f"pkg:pypi/{canonicalize_name(w.name.split('-')[0])}@{w.name.split('-')[1]}"
        f"?file_name={w.name}"
        for w in wheels
    )
    for wheel in wheels:
        component = components[next(p for p in components if p.endswith(wheel.name))]
        assert component["hashes"] == [{"alg": "SHA-256", "content": sha256_of(wheel)}]
        # The source it was built from, as the index of sources serves it.
        (ancestor,) = component["pedigree"]["ancestors"]
        record = tree.record(component["name"])
        sdist = tree.out / "sdists" / record.sdist
        assert ancestor["hashes"] == [{"alg": "SHA-256", "content": sha256_of(sdist)}]
        assert ancestor["purl"].endswith(f"?file_name={sdist.name}")


def test_licenses_come_from_each_wheels_metadata(tree: Tree) -> None:
    components = by_name(tree.sbom())
    assert components["app"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert components["libone"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert components["libfast"]["licenses"] == [{"license": {"name": "Fast Public Licence"}}]
    assert "licenses" not in components["libtwo"]


def test_dependencies_follow_the_graph_and_mark_build_requirements(tree: Tree) -> None:
    document = tree.sbom()
    components = by_name(document)
    ref = {name: c["bom-ref"] for name, c in components.items()}
    name_of = {r: n for n, r in ref.items()}
    depends = {
        name_of[d["ref"]]: sorted(name_of[x] for x in d.get("dependsOn", []))
        for d in document["dependencies"]
    }
    assert depends["app"] == ["libone", "libtwo"]
    assert depends["libone"] == ["libfast"]  # through the extra [fast]
    assert depends["libtwo"] == ["dyn-req", "fixture-backend"]
    assert depends["fixture-backend"] == ["fixture-helper"]
    # Which of libtwo's are build requirements, and of which kind.
    libtwo = components["libtwo"]
    assert props(libtwo, "bootstrapper:requires:build-system") == [ref["fixture-backend"]]
    assert props(libtwo, "bootstrapper:requires:build-backend") == [ref["dyn-req"]]
    assert not props(components["app"], "bootstrapper:requires:build-system")
    # What build environments held: the build requirements and their install closure.
    marked = sorted(n for n, c in components.items() if props(c, "bootstrapper:build-dependency"))
    assert marked == ["dyn-req", "fixture-backend", "fixture-helper"]
    assert props(components["app"], "bootstrapper:toplevel") == ["app"]
    assert props(components["patched-pkg"], "bootstrapper:toplevel") == ["patched-pkg"]


# -- each wheel's own SBOM (PEP 770) ---------------------------------------------------


def wheel_sbom(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (path,) = [n for n in zf.namelist() if n.endswith(".dist-info/" + WHEEL_SBOM)]
        assert path.count("/") == 2  # in the top .dist-info directory
        return zf.read(path).decode()


def test_each_wheel_carries_its_sbom_listed_in_its_record(tree: Tree) -> None:
    for wheel in (tree.out / "wheels").glob("*.whl"):
        text = wheel_sbom(wheel)
        assert_valid(text)
        assert record_problems(wheel) == []
        document = json.loads(text)
        record = tree.record(document["metadata"]["component"]["name"])
        package = document["metadata"]["component"]
        assert package["version"] == record.version
        (source,) = package["pedigree"]["ancestors"]
        assert source["hashes"] == [{"alg": "SHA-256", "content": record.sdist_sha256}]
        env = {
            (c["name"], c["version"], c["hashes"][0]["content"])
            for c in document.get("components", [])
        }
        assert env == {(w.name, w.version, w.sha256) for w in record.build_env}
        assert all(c["scope"] == "excluded" for c in document.get("components", []))


def test_a_wheel_sbom_names_its_build_environment_and_patches(tree: Tree) -> None:
    libtwo = json.loads(wheel_sbom(tree.wheel("libtwo")))
    names = sorted(c["name"] for c in libtwo["components"])
    assert names == ["dyn-req", "fixture-backend", "fixture-helper"]
    for component in libtwo["components"]:
        # The very wheels of the index: the same file, the same hash.
        wheel = tree.wheel(component["name"])
        assert component["purl"].endswith(f"?file_name={wheel.name}")
        assert component["hashes"][0]["content"] == sha256_of(wheel)
    patched = json.loads(wheel_sbom(tree.wheel("patched-pkg")))["metadata"]["component"]
    (patch,) = patched["pedigree"]["patches"]
    assert patch["type"] == "unofficial"
    assert patch["diff"]["text"]["content"] == patch_text()
    digest = hashlib.sha256(patch_text().encode()).hexdigest()
    assert props(patched, "bootstrapper:patch") == [f"{PATCH} sha256:{digest}"]


def test_the_wheels_install_with_pip_and_keep_their_sbom(tree: Tree, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = pip_install(tree.out, venv, "app", "patched-pkg")
    assert result.returncode == 0, result.stderr
    assert installed(venv)["libfast"] == "1.0"
    (kept,) = venv.glob(f"lib/python*/site-packages/libtwo-2.0.dist-info/{WHEEL_SBOM}")
    assert kept.read_text() == wheel_sbom(tree.wheel("libtwo"))


# -- reproducibility ---------------------------------------------------------------------


def test_a_rerun_leaves_the_sbom_as_it_was(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("bootstrap-output", "patches"):
        shutil.copytree(tree.root / name, tmp_path / name, symlinks=True)
    sbom = tmp_path / "bootstrap-output" / "sbom.cdx.json"
    before = sbom.stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    code, err = bootstrap(tree.index_url)
    assert code == 0, err
    assert sbom.read_bytes() == (tree.out / "sbom.cdx.json").read_bytes()
    assert sbom.stat().st_mtime_ns == before  # not even rewritten


def test_a_wheel_of_an_earlier_recipe_is_rebuilt_with_its_sbom(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel built before wheels carried an SBOM (its record's plan says recipe 2) is
    not reused: it is rebuilt, and the others are kept."""
    for name in ("bootstrap-output", "patches"):
        shutil.copytree(tree.root / name, tmp_path / name, symlinks=True)
    wheels = tmp_path / "bootstrap-output" / "wheels"
    old = wheels / tree.wheel("libfast").name
    stored = tmp_path / "bootstrap-output" / ".work" / "built" / old.name
    document = json.loads(old.with_name(old.name + ".build.json").read_text())
    document["plan"]["recipe"] = 2
    for wheel in (old, stored):
        wheel.with_name(wheel.name + ".build.json").write_text(json.dumps(document))
    kept = {p.name: p.read_bytes() for p in wheels.glob("*.build.json") if "libfast" not in p.name}
    monkeypatch.chdir(tmp_path)
    code, err = bootstrap(tree.index_url)
    assert code == 0, err
    record = BuildRecord.from_json(old.with_name(old.name + ".build.json").read_text())
    assert record.plan["recipe"] == 3
    assert wheel_sbom(old)
    assert {n: (wheels / n).read_bytes() for n in kept} == kept


def test_a_rebuild_gives_the_same_wheels_and_build_sequence_writes_the_sbom(
    tree: Tree, tmp_path: Path
) -> None:
    rebuilt = tmp_path / "rebuilt"
    code, err = run(
        "build-sequence",
        tree.out / "build-order.json",
        "--output-dir",
        rebuilt,
        *isolation_args(),
    )
    assert code == 0, err
    # Every wheel rebuilt to the same bytes, its SBOM included.
    wheels = sorted((tree.out / "wheels").glob("*.whl"))
    assert sorted(p.name for p in (rebuilt / "wheels").glob("*.whl")) == [w.name for w in wheels]
    for wheel in wheels:
        assert first_difference(wheel, rebuilt / "wheels" / wheel.name) is None
    # build-sequence writes the index's SBOM too, with the recorded run's dependencies.
    text = (rebuilt / "sbom.cdx.json").read_text()
    assert_valid(text)
    original, again = tree.sbom(), json.loads(text)
    assert again["dependencies"] == original["dependencies"]
    assert [(c["purl"], c["hashes"]) for c in again["components"]] == [
        (c["purl"], c["hashes"]) for c in original["components"]
    ]


def test_a_build_order_of_an_earlier_recipe_is_rebuilt_without_sbom(
    tree: Tree, tmp_path: Path
) -> None:
    """A wheel recorded before wheels carried an SBOM is rebuilt as it was made."""
    (entry,) = [e for e in load_order(tree.out) if e["name"] == "libfast"]
    entry["plan"]["recipe"] = 2
    order = tmp_path / "build-order.json"
    order.write_text(json.dumps([entry]))
    out = tmp_path / "out"
    code, err = run(
        "build-sequence",
        order,
        "--output-dir",
        out,
        "--sources",
        tree.out / "sdists",
        "--patches",
        tree.out / "patches",
        *isolation_args(),
    )
    assert code == 0, err
    (wheel,) = (out / "wheels").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert not [n for n in zf.namelist() if "/sboms/" in n]
    assert record_problems(wheel) == []
    # Its record keeps the recipe it was built to.
    record = BuildRecord.from_json(wheel.with_name(wheel.name + ".build.json").read_text())
    assert record.plan["recipe"] == 2


def load_order(out: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((out / "build-order.json").read_text())
    return entries


# -- pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["License-Expression: mit"], [{"expression": "MIT"}]),
        (["License-Expression: MIT", "License: BSD"], [{"expression": "MIT"}]),
        (["License-Expression: not a valid one"], [{"name": "not a valid one"}]),
        (["License: Apache-2.0"], [{"expression": "Apache-2.0"}]),
        (["License: Some licence"], [{"name": "Some licence"}]),
        (
            ["License: UNKNOWN", "Classifier: License :: OSI Approved :: MIT License"],
            [{"name": "MIT License"}],
        ),
        (["Classifier: License :: OSI Approved"], []),
        (["Classifier: Programming Language :: Python"], []),
        ([], []),
    ],
)
def test_licenses_from_core_metadata(headers: list[str], expected: list[dict[str, str]]) -> None:
    text = "\n".join(["Metadata-Version: 2.4", "Name: x", "Version: 1", *headers]) + "\n\n"
    found = [
        {"expression": lic.value} if isinstance(lic, LicenseExpression) else {"name": str(lic.name)}
        for lic in licenses(text.encode())
    ]
    assert found == expected


def make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    """A wheel of ``files`` with a RECORD that lists them."""
    rows = [
        f"{name},sha256={urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}"
        for name, data in files.items()
    ]
    rows.append("pkg-1.0.dist-info/RECORD,,")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("pkg-1.0.dist-info/RECORD", "\n".join(rows) + "\n")
    return path


def test_files_added_while_normalizing_are_listed_in_record(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": b"",
        "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\n",
        # One already there is replaced, its row too.
        "pkg-1.0.dist-info/sboms/bootstrapper.cdx.json": b"stale",
    }
    made = []
    for n in range(2):
        wheel = make_wheel(tmp_path / str(n) / "pkg-1.0-py3-none-any.whl", files)
        normalize_wheel(wheel, 0, {WHEEL_SBOM: b'{"new": 1}'})
        assert record_problems(wheel) == []
        made.append(wheel)
    assert first_difference(*made) is None
    with zipfile.ZipFile(made[0]) as zf:
        names = zf.namelist()
        assert zf.read("pkg-1.0.dist-info/sboms/bootstrapper.cdx.json") == b'{"new": 1}'
    assert names[-1] == "pkg-1.0.dist-info/RECORD"
    with zipfile.ZipFile(made[0]) as zf:
        rows = zf.read("pkg-1.0.dist-info/RECORD").decode().splitlines()
    assert rows[-1] == "pkg-1.0.dist-info/RECORD,,"
    assert sum(r.startswith("pkg-1.0.dist-info/sboms/") for r in rows) == 1
    assert names.count("pkg-1.0.dist-info/sboms/bootstrapper.cdx.json") == 1


def test_a_wheel_without_record_cannot_take_files(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\n")
    with pytest.raises(ValueError, match=r"no \.dist-info/RECORD"):
        normalize_wheel(wheel, 0, {WHEEL_SBOM: b"{}"})


def test_the_index_sbom_is_not_made_again_from_the_same_inputs(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-run of an unchanged tree does not even load the CycloneDX library; a change
    to what the SBOM says (here, a wheel's record) makes it again."""
    from bootstrapper.sbom import index as sbom_index

    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path / "sdists")
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    made: list[int] = []
    real = sbom_index.index_sbom

    def counting(*args: Any) -> str:
        made.append(1)
        return real(*args)

    monkeypatch.setattr(sbom_index, "index_sbom", counting)
    graph = sbom_index.read_graph(run.output / "graph.json")
    assert sbom_index.write_index_sbom(run.output, graph) is False
    assert made == []
    record = next((run.output / "wheels").glob("lib-*.whl.build.json"))
    data = json.loads(record.read_text())
    data["finished"] = "2000-01-01T00:00:00Z"
    record.write_text(json.dumps(data))
    sbom_index.write_index_sbom(run.output, graph)
    assert made == [1]
