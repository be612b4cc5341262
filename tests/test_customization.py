"""Per-package customization through the real bootstrap: settings reach the builds, wheel
edits reach the graph, constraints and index, rebuild numbers stamp and supersede, patches
change the source before discovery, and everything is recorded."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import subprocess
import sys
import textwrap
import time
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main
from bootstrapper.wheeledit import record_problems

from .conftest import clean_env, installed, pip_install, uv_install
from .support import FixtureIndex, Project, isolation_args

# -- helpers -------------------------------------------------------------------------


class Dirs:
    """The user's overrides and patches directories of one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.overrides = tmp_path / "overrides"
        self.patches = tmp_path / "patches"
        self.overrides.mkdir()
        self.patches.mkdir()

    @property
    def args(self) -> list[str]:
        return ["--overrides-dir", str(self.overrides), "--patches-dir", str(self.patches)]

    def settings(self, name: str, text: str) -> Path:
        path = self.overrides / "settings" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def patch(self, relative: str, text: str) -> Path:
        path = self.patches / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def in_tree(project: Project, build_requires: list[str]) -> Project:
    """``project`` with the in-tree fixture backend and these ``[build-system].requires``."""
    project.pyproject = project.pyproject_toml().replace(
        "requires = []", f"requires = {json.dumps(build_requires)}", 1
    )
    return project


def module(name: str, version: str = "1.0", **kwargs: Any) -> Project:
    """A project whose wheel holds the importable module ``name`` (dashes -> underscores)."""
    mod = name.replace("-", "_")
    return Project(name, version, tool={"modules": [mod]}, files={f"src/{mod}.py": ""}, **kwargs)


def diff(path: str, before: str, after: str) -> str:
    """A real unified diff, as ``patch -p1`` takes it."""
    text = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
    )
    assert text, "the diff is empty"
    return text


def graph_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "graph.json").read_text()))


def edges_of(out: Path) -> set[tuple[str | None, str, str]]:
    return {(e["from"], e["to"], e["kind"]) for e in graph_of(out)["edges"]}


def node_of(out: Path, name: str) -> dict[str, Any]:
    return dict(next(n for n in graph_of(out)["nodes"] if n["name"] == name))


def record_of(out: Path, wheel: str) -> dict[str, Any]:
    return dict(json.loads((out / "wheels" / f"{wheel}.build.json").read_text()))


def constraints_of(out: Path) -> list[str]:
    return (out / "constraints.txt").read_text().splitlines()


def built_lines(stderr: str) -> set[str]:
    return set(re.findall(r"^built (\S+) in \d+\.\ds$", stderr, re.MULTILINE))


def reused_lines(stderr: str) -> set[str]:
    return set(re.findall(r"^reused (\S+) ", stderr, re.MULTILINE))


def wheel_member(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode()


def build_env_seen(wheel: Path) -> dict[str, Any]:
    dist = wheel.name.split("-")[0]
    return dict(json.loads(wheel_member(wheel, f"{dist}_build_env.json")))


def requires_dist(metadata: str) -> list[str]:
    head = metadata.partition("\n\n")[0]
    return [
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def page_files(out: Path, project: str) -> list[str]:
    page = (out / "simple" / project / "index.html").read_text()
    return [
        urllib.parse.unquote(h).split("#")[0].rsplit("/", 1)[-1]
        for h in re.findall(r'href="([^"]+)"', page)
    ]


def pip_check(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "--isolated",
            "check",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nothing_published(out: Path) -> bool:
    return not (out / "simple" / "index.html").exists() and not list(out.glob("wheels/*.whl"))


# -- env, config-settings, build-requires -------------------------------------------------


def test_env_config_settings_and_build_requires_reach_the_build(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTSTRAPPER_TEST_VALUE", "from-the-run")
    monkeypatch.delenv("BOOTSTRAPPER_TEST_UNSET", raising=False)
    dirs = Dirs(tmp_path)
    dirs.settings(
        "probe",
        """
        env:
          FIXTURE_VERSION: "v${version}"
          FIXTURE_DEFAULTED: "${BOOTSTRAPPER_TEST_UNSET:-fallback}"
          FIXTURE_FROM_RUN: "${BOOTSTRAPPER_TEST_VALUE}"
        config-settings:
          plain: value
          listed: [one, two]
        build-requires:
          remove: [Not_On_Index]
          add: ["extra-tool==1.0"]
        """,
    )
    probe = in_tree(
        Project(
            "probe",
            "2.3",
            tool={"record-env": True, "import": ["extra_tool", "build_dep"]},
        ),
        ["not-on-index>=1", "build-dep"],
    )
    index.add_all(
        [probe, module("build-dep"), module("extra-tool"), module("extra-tool", "2.0")],
        tmp_path / "sdists",
    )
    run = bootstrap(*dirs.args, "probe")
    assert run.code == 0, run.stderr
    out = run.output

    wheel = out / "wheels" / "probe-2.3-py3-none-any.whl"
    seen = build_env_seen(wheel)
    assert seen["fixture_environ"] == {
        "FIXTURE_VERSION": "v2.3",
        "FIXTURE_DEFAULTED": "fallback",
        "FIXTURE_FROM_RUN": "from-the-run",
    }
    assert seen["config_settings"] == {"plain": "value", "listed": ["one", "two"]}
    # The requirement that is not even on the index is gone; the added one is pinned.
    assert seen["installed"] == ["build-dep==1.0", "extra-tool==1.0"]

    assert edges_of(out) == {
        (None, "probe==2.3", "toplevel"),
        ("probe==2.3", "build-dep==1.0", "build-system"),
        ("probe==2.3", "extra-tool==1.0", "build-system"),
    }
    record = record_of(out, wheel.name)
    assert record["build_system_requires"] == ["build-dep", "extra-tool==1.0"]
    plan = record["plan"]
    assert plan["env"] == seen["fixture_environ"]
    assert plan["settings"]["env"]["FIXTURE_VERSION"] == "v${version}"
    assert plan["settings"]["config-settings"] == {"plain": "value", "listed": ["one", "two"]}
    assert plan["settings"]["build-requires"] == {
        "remove": ["not-on-index"],
        "add": ["extra-tool==1.0"],
    }
    assert plan["settings"]["files"] == [str(dirs.overrides / "settings" / "probe.yaml")]
    node = node_of(out, "probe")
    assert node["settings"] == plan["settings"] and node["env"] == plan["env"]
    log = (out / "logs" / "probe-2.3.log").read_text()
    assert "not-on-index>=1" in log  # what was declared is logged before the edit

    # The plan is the reuse key: the same settings reuse the wheel; a different value in
    # the run's environment changes the expanded env, so the wheel is rebuilt.
    again = bootstrap(*dirs.args, "probe")
    assert again.code == 0, again.stderr
    assert reused_lines(again.stderr) >= {"probe==2.3"} and built_lines(again.stderr) == set()
    monkeypatch.setenv("BOOTSTRAPPER_TEST_VALUE", "changed")
    changed = bootstrap(*dirs.args, "probe")
    assert changed.code == 0, changed.stderr
    assert built_lines(changed.stderr) == {"probe==2.3"}
    assert build_env_seen(wheel)["fixture_environ"]["FIXTURE_FROM_RUN"] == "changed"


def test_env_variable_unset_without_default_fails_naming_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOOTSTRAPPER_TEST_NEVER_SET", raising=False)
    dirs = Dirs(tmp_path)
    dirs.settings("lib", "env:\n  FIXTURE_X: '${BOOTSTRAPPER_TEST_NEVER_SET}'\n")
    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path / "sdists")
    run = bootstrap(*dirs.args, "app")
    assert run.code == 1, run.stderr
    assert "BOOTSTRAPPER_TEST_NEVER_SET" in run.stderr and "lib" in run.stderr
    assert "Traceback" not in run.stderr
    assert nothing_published(run.output)


# -- requires: the built wheel, the graph, constraints and index follow ---------------------


def test_requires_edits_rewrite_the_wheel_graph_constraints_and_index(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    # Static PKG-INFO: resolution must apply the edit to the cheap metadata too.
    dirs.settings(
        "app",
        """
        requires:
          remove: [Gone_Dep]
          add: ['added>=1; python_version >= "3"']
        """,
    )
    # Dynamic metadata: learnt by building, so the edited wheel is what resolution sees.
    dirs.settings("libone", "requires:\n  remove: [gone-two]\n  add: [libthree]\n")
    index.add_all(
        [
            Project("app", dependencies=["libone", "gone-dep>=1"], pkg_info_version="2.2"),
            Project("libone", dependencies=["gone-two"]),
            Project("added", "1.0"),
            Project("libthree", "0.5"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap(*dirs.args, "app")
    assert run.code == 0, run.stderr
    out = run.output

    assert edges_of(out) == {
        (None, "app==1.0", "toplevel"),
        ("app==1.0", "libone==1.0", "install"),
        ("app==1.0", "added==1.0", "install"),
        ("libone==1.0", "libthree==0.5", "install"),
    }
    assert constraints_of(out) == ["added==1.0", "app==1.0", "libone==1.0", "libthree==0.5"]

    wheel = out / "wheels" / "app-1.0-py3-none-any.whl"
    assert record_problems(wheel) == []
    in_wheel = wheel_member(wheel, "app-1.0.dist-info/METADATA")
    assert requires_dist(in_wheel) == ["libone", 'added>=1; python_version >= "3"']
    published = (out / "wheels" / "app-1.0-py3-none-any.whl.metadata").read_text()
    assert published == in_wheel
    page = (out / "simple" / "app" / "index.html").read_text()
    assert (
        f'data-core-metadata="sha256={sha256(wheel.with_name(wheel.name + ".metadata"))}"' in page
    )
    assert f"#sha256={sha256(wheel)}" in page
    libone = out / "wheels" / "libone-1.0-py3-none-any.whl"
    assert requires_dist(wheel_member(libone, "libone-1.0.dist-info/METADATA")) == ["libthree"]
    assert record_problems(libone) == []
    assert record_of(out, wheel.name)["plan"]["settings"]["requires"] == {
        "remove": ["gone-dep"],
        "add": ['added>=1; python_version >= "3"'],
    }

    result = pip_install(out, tmp_path / "venv", "app")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "venv") == {
        "app": "1.0",
        "libone": "1.0",
        "added": "1.0",
        "libthree": "0.5",
    }
    check = pip_check(tmp_path / "venv")
    assert check.returncode == 0, check.stdout + check.stderr


def test_requires_edit_removing_an_absent_requirement_fails_the_build(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    dirs.settings("lib", "requires:\n  remove: [never-required]\n")
    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path / "sdists")
    run = bootstrap(*dirs.args, "app")
    assert run.code == 1, run.stderr
    assert "cannot remove never-required" in run.stderr and "lib" in run.stderr
    assert "Traceback" not in run.stderr
    assert nothing_published(run.output)


# -- changelog and rebuild schemes ---------------------------------------------------------


def test_each_rebuild_scheme_is_published_and_installs(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    for name, scheme in (("p-tag", "build-tag"), ("p-post", "post"), ("p-local", "local")):
        dirs.settings(
            name,
            f"""
            rebuild-scheme: {scheme}
            changelog:
              "1.0": [first fix, second fix]
              "0.9": [another version]
            """,
        )
    index.add_all(
        [
            Project("app", dependencies=["p-tag", "p-post>=1", "p-local==1.0"]),
            # Static PKG-INFO (PEP 643): resolution does not need to build them.
            Project("p-tag", pkg_info_version="2.2"),
            Project("p-post", pkg_info_version="2.2"),
            Project("p-local", pkg_info_version="2.2"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap(*dirs.args, "app")
    assert run.code == 0, run.stderr
    out = run.output
    expected = {
        "p-tag": ("p_tag-1.0-2-py3-none-any.whl", "1.0"),
        "p-post": ("p_post-1.0.post2-py3-none-any.whl", "1.0.post2"),
        "p-local": ("p_local-1.0+rebuild2-py3-none-any.whl", "1.0+rebuild2"),
    }
    for name, (filename, version) in expected.items():
        assert page_files(out, name) == [filename]
        wheel = out / "wheels" / filename
        assert record_problems(wheel) == []
        dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
        metadata = wheel_member(wheel, f"{dist_info}/METADATA")
        assert f"\nVersion: {version}\n" in metadata
        assert wheel.with_name(filename + ".metadata").read_text() == metadata
        build_lines = [
            line
            for line in wheel_member(wheel, f"{dist_info}/WHEEL").splitlines()
            if line.startswith("Build:")
        ]
        assert build_lines == (["Build: 2"] if name == "p-tag" else [])
        node = node_of(out, name)
        assert (node["version"], node["wheel"], node["rebuild"]) == (version, filename, 2)
        assert node["source_version"] == "1.0"
        assert node["settings"]["rebuild-reasons"] == ["first fix", "second fix"]
        record = record_of(out, filename)
        assert record["rebuild"] == 2 and record["version"] == "1.0"
        assert record["plan"]["settings"]["rebuild"] == 2
    assert constraints_of(out) == [
        "app==1.0",
        "p-local==1.0+rebuild2",
        "p-post==1.0.post2",
        "p-tag==1.0",
    ]
    # Edges name the nodes by their published versions.
    assert edges_of(out) == {
        (None, "app==1.0", "toplevel"),
        ("app==1.0", "p-tag==1.0", "install"),
        ("app==1.0", "p-post==1.0.post2", "install"),
        ("app==1.0", "p-local==1.0+rebuild2", "install"),
    }

    versions = {"app": "1.0", "p-tag": "1.0", "p-post": "1.0.post2", "p-local": "1.0+rebuild2"}
    result = pip_install(out, tmp_path / "pip-venv", "app")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "pip-venv") == versions
    check = pip_check(tmp_path / "pip-venv")
    assert check.returncode == 0, check.stdout + check.stderr
    uv = uv_install((out / "simple").as_uri() + "/", tmp_path / "uv-venv", "app")
    assert uv.returncode == 0, uv.stderr
    assert installed(tmp_path / "uv-venv") == versions
    check = pip_check(tmp_path / "uv-venv")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("scheme", ["post", "local"])
def test_version_changing_scheme_on_a_package_resolution_must_build(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, scheme: str
) -> None:
    dirs = Dirs(tmp_path)
    dirs.settings("p", f'rebuild-scheme: {scheme}\nchangelog:\n  "1.0": [fix]\n')
    index.add(Project("p"), tmp_path / "sdists")  # dynamic metadata: built to resolve
    run = bootstrap(*dirs.args, "p")
    assert run.code == 0, run.stderr
    stamped = {"post": "1.0.post1", "local": "1.0+rebuild1"}[scheme]
    assert constraints_of(run.output) == [f"p=={stamped}"]


def test_rerun_reuses_a_version_changing_rebuild(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    dirs.settings("p", 'rebuild-scheme: post\nchangelog:\n  "1.0": [fix]\n')
    index.add(Project("p", pkg_info_version="2.2"), tmp_path / "sdists")
    first = bootstrap(*dirs.args, "p")
    assert first.code == 0, first.stderr
    assert constraints_of(first.output) == ["p==1.0.post1"]
    again = bootstrap(*dirs.args, "p")
    assert again.code == 0, again.stderr
    assert reused_lines(again.stderr) == {"p==1.0"}


def test_a_new_changelog_entry_rebuilds_that_package_and_its_build_dependents_only(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    index.add_all(
        [
            Project("app", dependencies=["builder-tool", "indirect", "runtime-tool", "plain"]),
            Project("base"),
            # base is in its build environment directly ...
            in_tree(Project("builder-tool", tool={"import": ["base"]}), ["base"]),
            # ... or through the install closure of a build requirement.
            Project("runtime-tool", dependencies=["base"]),
            in_tree(Project("indirect", tool={"import": ["base"]}), ["runtime-tool"]),
            Project("plain"),
        ],
        tmp_path / "sdists",
    )
    first = bootstrap(*dirs.args, "app")
    assert first.code == 0, first.stderr
    everything = {
        "app==1.0",
        "base==1.0",
        "builder-tool==1.0",
        "runtime-tool==1.0",
        "indirect==1.0",
        "plain==1.0",
    }
    assert built_lines(first.stderr) == everything
    assert page_files(first.output, "base") == ["base-1.0-py3-none-any.whl"]

    # Build records time builds to the second and the store keeps the latest of several
    # builds of one version: let the rebuild finish in a later second than the first build.
    time.sleep(1.0)
    dirs.settings("base", 'changelog:\n  "1.0": [rebuilt with the fixed compiler]\n')
    second = bootstrap(*dirs.args, "app")
    assert second.code == 0, second.stderr
    rebuilt = {"base==1.0", "builder-tool==1.0", "indirect==1.0"}
    assert built_lines(second.stderr) == rebuilt
    assert reused_lines(second.stderr) == everything - rebuilt
    out = second.output
    assert "base-1.0-1-py3-none-any.whl" in page_files(out, "base")
    base = node_of(out, "base")
    assert (base["wheel"], base["rebuild"]) == ("base-1.0-1-py3-none-any.whl", 1)
    assert base["settings"]["rebuild-reasons"] == ["rebuilt with the fixed compiler"]
    for dependent in ("builder_tool-1.0-py3-none-any.whl", "indirect-1.0-py3-none-any.whl"):
        env = record_of(out, dependent)["build_env"]
        assert "base-1.0-1-py3-none-any.whl" in [w["filename"] for w in env], env

    # The rebuild stands in a third run: nothing is built again.
    third = bootstrap(*dirs.args, "app")
    assert third.code == 0, third.stderr
    assert built_lines(third.stderr) == set()
    assert reused_lines(third.stderr) == everything
    assert node_of(third.output, "base")["wheel"] == "base-1.0-1-py3-none-any.whl"


# -- patches ----------------------------------------------------------------------------


def test_patches_apply_in_order_before_discovery_and_are_recorded(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    project = Project("patched", "1.0", tool={"record-env": True})
    original = project.pyproject_toml()
    step1 = original.replace("dependencies = []", 'dependencies = ["extra-dep"]')
    # Only applies after the first patch: it edits the line the first one wrote.
    step2 = step1.replace(
        'dependencies = ["extra-dep"]', 'dependencies = ["extra-dep>=1"]'
    ).replace(
        "[tool.fixture]\n",
        '[tool.fixture]\nbackend-requires = ["helper-tool"]\nimport = ["helper_tool"]\n',
    )
    first = dirs.patch("patched/01-add-dependency.patch", diff("pyproject.toml", original, step1))
    second = dirs.patch(
        "patched/1.0/02-backend-requires.patch", diff("pyproject.toml", step1, step2)
    )
    broken = diff("pyproject.toml", "nothing like\nthe real file\n", "nothing like\nit\n")
    dirs.patch("patched/2.0/00-other-version.patch", broken)
    dirs.patch("patched/variants/gpu/00-other-variant.patch", broken)
    dirs.patch("not-in-tree/01-fix.patch", broken)
    index.add_all([project, module("extra-dep"), module("helper-tool")], tmp_path / "sdists")
    run = bootstrap(*dirs.args, "patched")
    assert run.code == 0, run.stderr
    out = run.output

    assert edges_of(out) == {
        (None, "patched==1.0", "toplevel"),
        ("patched==1.0", "extra-dep==1.0", "install"),
        ("patched==1.0", "helper-tool==1.0", "build-backend"),
    }
    wheel = out / "wheels" / "patched-1.0-py3-none-any.whl"
    assert requires_dist(wheel_member(wheel, "patched-1.0.dist-info/METADATA")) == ["extra-dep>=1"]
    assert build_env_seen(wheel)["installed"] == ["helper-tool==1.0"]
    expected_patches = [{"file": p.name, "sha256": sha256(p)} for p in (first, second)]
    record = record_of(out, wheel.name)
    assert record["plan"]["patches"] == expected_patches
    assert record["backend_requires"] == ["helper-tool"]
    assert node_of(out, "patched")["patches"] == expected_patches
    assert (out / "sdists" / "patched-1.0.tar.gz").is_file()  # the pristine sdist is archived
    assert f"{dirs.patches / 'not-in-tree'} has patches for not-in-tree" in run.stderr
    assert "has patches for patched" not in run.stderr


def test_a_patch_that_does_not_apply_fails_naming_file_and_hunk(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    lib = Project("lib", "1.0")
    text = lib.pyproject_toml()
    good = dirs.patch(
        "lib/01-good.patch",
        diff(
            "pyproject.toml",
            text,
            text.replace('version = "1.0"', 'version = "1.0"\ndescription = "x"'),
        ),
    )
    stale_before = text.replace('name = "lib"', 'name = "lib-as-it-once-was"')
    stale = dirs.patch(
        "lib/1.0/02-stale.patch",
        diff("pyproject.toml", stale_before, stale_before.replace("lib-as-it-once-was", "other")),
    )
    index.add_all([Project("app", dependencies=["lib"]), lib], tmp_path / "sdists")
    run = bootstrap(*dirs.args, "app")
    assert run.code == 1, run.stderr
    assert f"patch {stale} does not apply" in run.stderr
    assert re.search(r"Hunk #1 FAILED at \d+", run.stderr), run.stderr
    assert str(good) not in run.stderr
    assert "required by: app -> lib" in run.stderr
    assert "Traceback" not in run.stderr
    assert nothing_published(run.output)


MODULE_LINES = "".join(f"VALUE_{i} = {i}\n" for i in range(1, 13))


def drifting(name: str) -> Project:
    """A project whose module the strict-patch tests patch at ``VALUE_6``."""
    module_name = name.replace("-", "_")
    return Project(
        name, "1.0", tool={"modules": [module_name]}, files={f"src/{module_name}.py": MODULE_LINES}
    )


def module_patch(dirs: Dirs, name: str, made_against: str) -> Path:
    """A patch of ``VALUE_6``, made against ``made_against`` rather than the real file."""
    module_name = name.replace("-", "_")
    return dirs.patch(
        f"{name}/01-fix.patch",
        diff(
            f"src/{module_name}.py",
            made_against,
            made_against.replace("VALUE_6 = 6\n", "VALUE_6 = 'patched'\n"),
        ),
    )


def test_a_patch_needing_fuzz_fails_unless_the_settings_allow_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = Dirs(tmp_path)
    # The patch's first context line (VALUE_3) differs from the source: fuzz 1.
    patch = module_patch(dirs, "fuzzy", MODULE_LINES.replace("VALUE_3 = 3", "VALUE_3 = 'old'"))
    index.add_all([Project("app", dependencies=["fuzzy"]), drifting("fuzzy")], tmp_path / "s")

    run = bootstrap(*dirs.args, "app")
    assert run.code == 1, run.stderr
    assert (
        f"error: patch {patch}: hunk #1 of src/fuzzy.py applies only with fuzz 1 (at line 3); "
        "refresh the patch, or allow it with 'patch-fuzz: 1' in fuzzy's settings"
    ) in run.stderr
    assert "required by: app -> fuzzy" in run.stderr
    assert "Traceback" not in run.stderr
    assert nothing_published(run.output)

    dirs.settings("fuzzy", "patch-fuzz: 1\n")
    run = bootstrap(*dirs.args, "app")
    assert run.code == 0, run.stderr
    wheel = run.output / "wheels" / "fuzzy-1.0-py3-none-any.whl"
    assert "VALUE_6 = 'patched'\n" in wheel_member(wheel, "fuzzy.py")
    record = record_of(run.output, wheel.name)
    assert record["plan"]["settings"]["patch-fuzz"] == 1
    assert record["patches_applied"] == [
        {
            "file": patch.name,
            "sha256": sha256(patch),
            "hunks": [{"file": "src/fuzzy.py", "hunk": 1, "line": 3, "offset": 0, "fuzz": 1}],
        }
    ]

    # The setting is part of what a re-run compares: changing it rebuilds that package.
    dirs.settings("fuzzy", "patch-fuzz: 2\n")
    again = bootstrap(*dirs.args, "app")
    assert again.code == 0, again.stderr
    assert built_lines(again.stderr) == {"fuzzy==1.0"}
    assert reused_lines(again.stderr) == {"app==1.0"}
    dirs.settings("fuzzy", "patch-fuzz: 1\n")
    assert bootstrap(*dirs.args, "app").code == 0

    # A rebuild from the archive applies the patch as recorded: with the fuzz allowed.
    rebuilt = tmp_path / "rebuilt"
    code = main(
        [
            "build-sequence",
            str(run.output / "build-order.json"),
            "--output-dir",
            str(rebuilt),
            *isolation_args(),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert (rebuilt / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert record_of(rebuilt, wheel.name)["patches_applied"] == record["patches_applied"]


def test_a_patch_at_an_offset_builds_and_the_record_says_where(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    # Made against a file without its first two lines: every hunk lands 2 lines lower.
    patch = module_patch(dirs, "moved", "".join(MODULE_LINES.splitlines(keepends=True)[2:]))
    index.add_all([drifting("moved")], tmp_path / "s")
    run = bootstrap(*dirs.args, "moved")
    assert run.code == 0, run.stderr
    wheel = run.output / "wheels" / "moved-1.0-py3-none-any.whl"
    assert "VALUE_6 = 'patched'\n" in wheel_member(wheel, "moved.py")
    record = record_of(run.output, wheel.name)
    assert "patch-fuzz" not in record["plan"]["settings"]
    assert record["patches_applied"] == [
        {
            "file": patch.name,
            "sha256": sha256(patch),
            "hunks": [{"file": "src/moved.py", "hunk": 1, "line": 3, "offset": 2, "fuzz": 0}],
        }
    ]


# -- bad settings -----------------------------------------------------------------------


def test_bad_settings_exit_before_any_build_with_every_problem(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    unknown = dirs.settings("app", "env:\n  A: '1'\nenviron:\n  B: '2'\n")
    bad_yaml = dirs.settings("lib", "requires:\n  remove: [x\n")
    scheme = dirs.settings("other", "rebuild-scheme: weekly\n")
    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path / "sdists")
    run = bootstrap(*dirs.args, "app")
    assert run.code == 1, run.stderr
    assert "3 problems in the per-package settings" in run.stderr
    assert f"{unknown}:3: unknown key 'environ'" in run.stderr
    assert f"{bad_yaml}:" in run.stderr and "invalid YAML" in run.stderr
    assert f"{scheme}:1: rebuild-scheme must be one of" in run.stderr
    assert "Traceback" not in run.stderr
    assert index.requests == []
    assert not run.output.exists()


# -- settings check ---------------------------------------------------------------------


def settings_check(
    capsys: pytest.CaptureFixture[str], dirs: Dirs, *args: str
) -> tuple[int, str, str]:
    code = main(["settings", "check", *dirs.args, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_settings_check_prints_what_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOOTSTRAPPER_TEST_UNSET", raising=False)
    dirs = Dirs(tmp_path)
    path = dirs.settings(
        "my-pkg",
        """
        env:
          FIXTURE_V: "${version}-${BOOTSTRAPPER_TEST_UNSET:-d}"
        requires: {remove: [old]}
        changelog: {"2.0": [one, two]}
        rebuild-scheme: post
        variants:
          gpu:
            env: {FIXTURE_GPU: "1"}
        """,
    )
    every = dirs.patch("my-pkg/01-every.patch", "--- a/x\n+++ b/x\n")
    versioned = dirs.patch("my-pkg/2.0/02-versioned.patch", "--- a/y\n+++ b/y\n")
    variant = dirs.patch("my-pkg/variants/gpu/03-gpu.patch", "--- a/z\n+++ b/z\n")

    code, stdout, stderr = settings_check(capsys, dirs, "My_Pkg", "2.0")
    assert code == 0, stderr
    first, _, rest = stdout.partition("\n")
    assert first.startswith("settings OK: ") and str(dirs.overrides) in first
    report = json.loads(rest)
    assert report["package"] == "my-pkg" and report["version"] == "2.0"
    assert report["variant"] is None
    assert report["settings"]["env"] == {"FIXTURE_V": "${version}-${BOOTSTRAPPER_TEST_UNSET:-d}"}
    assert report["env-expanded"] == {"FIXTURE_V": "2.0-d"}
    assert report["settings"]["requires"] == {"remove": ["old"], "add": []}
    assert report["settings"]["rebuild"] == 2
    assert report["settings"]["rebuild-reasons"] == ["one", "two"]
    assert report["settings"]["files"] == [str(path)]
    assert report["wheel-version"] == "2.0.post2"
    assert report["patches"] == [{"file": p.name, "sha256": sha256(p)} for p in (every, versioned)]

    code, stdout, _ = settings_check(capsys, dirs, "--variant", "gpu", "my-pkg", "3.0")
    assert code == 0
    report = json.loads(stdout.partition("\n")[2])
    assert report["variant"] == "gpu"
    assert report["env-expanded"] == {"FIXTURE_V": "3.0-d", "FIXTURE_GPU": "1"}
    assert [p["file"] for p in report["patches"]] == [every.name, variant.name]
    assert report["wheel-version"] == "3.0" and report["settings"]["rebuild"] == 0

    code, stdout, _ = settings_check(capsys, dirs)
    assert code == 0 and stdout.startswith("settings OK: ") and stdout.count("\n") == 1


def test_settings_check_shows_recipes_under_the_users_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = Dirs(tmp_path)
    code, stdout, _ = settings_check(capsys, dirs, "torch", "2.5.1")
    assert code == 0
    recipe = json.loads(stdout.partition("\n")[2])["settings"]
    assert recipe["files"][-1].endswith("torch.yaml")
    assert "cmake" in recipe["build-requires"]["remove"]

    mine = dirs.settings("torch", "env: {USE_CUDA: '1'}\n")
    code, stdout, _ = settings_check(capsys, dirs, "torch", "2.5.1")
    assert code == 0
    report = json.loads(stdout.partition("\n")[2])
    assert report["settings"]["files"] == [str(mine)]
    assert report["settings"]["build-requires"] == {"remove": [], "add": []}
    assert report["env-expanded"] == {"USE_CUDA": "1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["torch"], "give the VERSION too"),
        (["torch", "not a version"], "invalid version 'not a version'"),
        (["--variant", "nope", "torch", "1.0"], "unknown variant 'nope'"),
    ],
)
def test_settings_check_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, stderr = settings_check(capsys, Dirs(tmp_path), *args)
    assert code == 2
    assert message in stderr


def test_settings_check_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = Dirs(tmp_path)
    first = dirs.settings("a", "prebuilt: sometimes\n")
    second = dirs.settings(
        "b", "source: {url: 'https://x.invalid/b.tgz', git: 'https://x.invalid/b'}\n"
    )
    code, stdout, stderr = settings_check(capsys, dirs)
    assert code == 1 and stdout == ""
    assert f"{first}:1: prebuilt must be true or false" in stderr
    assert f"{second}:1: source needs exactly one of url or git" in stderr


# -- variants ---------------------------------------------------------------------------


def test_variant_merges_env_and_patches_and_keeps_its_output_apart(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dirs = Dirs(tmp_path)
    dirs.settings(
        "flavoured",
        """
        env:
          FIXTURE_BASE: base
          FIXTURE_FLAVOUR: cpu
        variants:
          gpu:
            env:
              FIXTURE_FLAVOUR: gpu
              FIXTURE_GPU_ONLY: "${version}"
        """,
    )
    source = "FLAVOUR = 'cpu'\n"
    dirs.patch(
        "flavoured/variants/gpu/01-gpu.patch",
        diff("src/flavoured.py", source, source.replace("cpu", "gpu")),
    )
    index.add(
        Project(
            "flavoured",
            tool={"modules": ["flavoured"], "record-env": True},
            files={"src/flavoured.py": source},
        ),
        tmp_path / "sdists",
    )
    gpu_out = tmp_path / "out-gpu"
    gpu = bootstrap(*dirs.args, "--variant", "gpu", "flavoured", output=gpu_out)
    assert gpu.code == 0, gpu.stderr
    wheel = gpu_out / "wheels" / "flavoured-1.0-py3-none-any.whl"
    assert build_env_seen(wheel)["fixture_environ"] == {
        "FIXTURE_BASE": "base",
        "FIXTURE_FLAVOUR": "gpu",
        "FIXTURE_GPU_ONLY": "1.0",
    }
    assert wheel_member(wheel, "flavoured.py") == "FLAVOUR = 'gpu'\n"
    plan = record_of(gpu_out, wheel.name)["plan"]
    assert plan["variant"] == "gpu"
    assert [p["file"] for p in plan["patches"]] == ["01-gpu.patch"]

    # The same output directory without the variant is refused, before any build.
    mixed = bootstrap(*dirs.args, "flavoured", output=gpu_out)
    assert mixed.code == 1
    assert "holds the output of the 'gpu' variant" in mixed.stderr
    assert built_lines(mixed.stderr) == set()
    assert wheel_member(wheel, "flavoured.py") == "FLAVOUR = 'gpu'\n"

    base = bootstrap(*dirs.args, "flavoured", output=tmp_path / "out-base")
    assert base.code == 0, base.stderr
    base_wheel = tmp_path / "out-base" / "wheels" / "flavoured-1.0-py3-none-any.whl"
    assert build_env_seen(base_wheel)["fixture_environ"] == {
        "FIXTURE_BASE": "base",
        "FIXTURE_FLAVOUR": "cpu",
    }
    assert wheel_member(base_wheel, "flavoured.py") == source
    # And a base directory refuses the variant.
    again = bootstrap(*dirs.args, "--variant", "gpu", "flavoured", output=tmp_path / "out-base")
    assert again.code == 1 and "holds the output of the base settings" in again.stderr

    unknown = bootstrap(*dirs.args, "--variant", "nope", "flavoured", output=tmp_path / "x")
    assert unknown.code == 2 and "unknown variant 'nope'" in unknown.stderr
