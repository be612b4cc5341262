"""prebuilt wheels, the 'source' setting and plugins, through the real bootstrap."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main
from bootstrapper.wheelfile import read_wheel_metadata

from .conftest import installed, pip_install
from .support import FixtureIndex, IndexFile, Project, serve_directory


def settings_dirs(tmp_path: Path, files: dict[str, str]) -> list[str]:
    overrides = tmp_path / "overrides"
    (overrides / "settings").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (overrides / "settings" / f"{name}.yaml").write_text(textwrap.dedent(text))
    patches = tmp_path / "patches"
    patches.mkdir(exist_ok=True)
    return ["--overrides-dir", str(overrides), "--patches-dir", str(patches)]


def upstream_wheel(tmp_path: Path, index: FixtureIndex, bootstrap: Any, project: Project) -> Path:
    """A wheel of ``project`` as an upstream index would offer it (built by a first run)."""
    index.add(project, tmp_path / "upstream")
    run = bootstrap(project.name, *settings_dirs(tmp_path / "plain", {}), output=tmp_path / "up")
    assert run.code == 0, run.stderr
    wheels: Path = run.output / "wheels"
    return next(wheels.glob(f"{project.name.replace('-', '_')}-*.whl"))


def test_prebuilt_takes_the_upstream_wheel_with_edits_and_rebuild(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("libthree", "0.5"), tmp_path / "sdists")
    index.add(Project("libx", "1.0"), tmp_path / "sdists")
    wheel = upstream_wheel(
        tmp_path, index, bootstrap, Project("binonly", "2.0", dependencies=["libthree", "libx"])
    )
    # Now the index offers binonly only as a wheel (with PEP 658 metadata).
    index.projects.pop("binonly")
    index.add_file(
        "binonly", IndexFile(wheel.name, wheel.read_bytes(), metadata=read_wheel_metadata(wheel))
    )
    index.add(Project("app", dependencies=["binonly"]), tmp_path / "sdists")
    dirs = settings_dirs(
        tmp_path,
        {
            "binonly": """
                prebuilt: true
                requires: {remove: [libx]}
                changelog: {"2.0": ["drop libx"]}
            """
        },
    )
    without = bootstrap("app", *settings_dirs(tmp_path / "nothing", {}))
    assert without.code == 1 and "binonly has no source distribution" in without.stderr

    run = bootstrap("app", *dirs)
    assert run.code == 0, run.stderr
    out = run.output
    assert "re-resolving" not in run.stderr  # the requires edit was known up front
    published = sorted(p.name for p in (out / "wheels").glob("binonly*.whl"))
    assert published == ["binonly-2.0-1-py3-none-any.whl"]
    metadata = (out / "wheels" / "binonly-2.0-1-py3-none-any.whl.metadata").read_text()
    assert "Requires-Dist: libthree" in metadata and "libx" not in metadata
    assert (out / "constraints.txt").read_text().splitlines() == [
        "app==1.0",
        "binonly==2.0",
        "libthree==0.5",
    ]
    node = next(
        n for n in json.loads((out / "graph.json").read_text())["nodes"] if n["name"] == "binonly"
    )
    assert node["settings"]["prebuilt"] is True and node["rebuild"] == 1
    record = json.loads((out / "wheels" / "binonly-2.0-1-py3-none-any.whl.build.json").read_text())
    assert record["sdist"] == wheel.name  # what it came from: the upstream wheel
    assert not (out / "sdists" / wheel.name).exists()  # a wheel is not a source
    # but it travels with them, for build-sequence
    assert (out / "sdists" / "prebuilt" / wheel.name).read_bytes() == wheel.read_bytes()
    assert "binonly" not in (out / "sdists" / "index.html").read_text()

    result = pip_install(out, tmp_path / "venv", "app")
    assert result.returncode == 0, result.stderr
    assert "libx" not in installed(tmp_path / "venv")

    again = bootstrap("app", *dirs)
    assert again.code == 0 and "reused binonly==2.0" in again.stderr


def test_prebuilt_wheel_hash_is_checked(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    wheel = upstream_wheel(tmp_path, index, bootstrap, Project("binonly", "2.0"))
    index.projects.pop("binonly")
    index.add_file("binonly", IndexFile(wheel.name, wheel.read_bytes(), sha256="1" * 64))
    run = bootstrap("binonly", *settings_dirs(tmp_path, {"binonly": "prebuilt: true\n"}))
    assert run.code == 1
    assert "do not match the index's sha256" in run.stderr
    assert not (run.output / "simple" / "binonly").exists()


def test_source_url_template(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    # The index's sdist is broken; the settings point at a good archive elsewhere.
    index.add(Project("lib", "1.0", tool={"fail": "the index sdist is broken"}), tmp_path / "bad")
    mirror = tmp_path / "mirror"
    Project("lib", "1.0", dependencies=["libthree"]).sdist(mirror)
    index.add(Project("libthree", "0.5"), tmp_path / "sdists")
    for base in serve_directory(mirror):
        dirs = settings_dirs(
            tmp_path, {"lib": f'source: {{url: "{base}/lib-${{version}}.tar.gz"}}\n'}
        )
        run = bootstrap("lib", *dirs)
    assert run.code == 0, run.stderr
    assert "libthree==0.5" in (run.output / "constraints.txt").read_text()
    archived = run.output / "sdists" / "lib-1.0.tar.gz"
    assert archived.read_bytes() == (mirror / "lib-1.0.tar.gz").read_bytes()
    record = json.loads(next((run.output / "wheels").glob("lib-*.build.json")).read_text())
    assert record["plan"]["settings"]["source"] == {"url": f"{base}/lib-${{version}}.tar.gz"}


def test_source_url_for_a_project_with_wheels_only(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """torch's case: the index has wheels only; ``source:`` names the release archive."""
    index.add(Project("libthree", "0.5"), tmp_path / "sdists")
    wheel = upstream_wheel(
        tmp_path, index, bootstrap, Project("wheelonly", "2.0", dependencies=["libthree"])
    )
    index.projects.pop("wheelonly")
    index.add_file("wheelonly", IndexFile(wheel.name, wheel.read_bytes()))
    index.add_file("wheelonly", IndexFile("wheelonly-1.0-py3-none-any.whl", b"old"))
    index.add(Project("app", dependencies=["wheelonly>=1"]), tmp_path / "sdists")
    mirror = tmp_path / "mirror"
    Project("wheelonly", "2.0", dependencies=["libthree"]).sdist(mirror)
    for base in serve_directory(mirror):
        dirs = settings_dirs(
            tmp_path, {"wheelonly": f'source: {{url: "{base}/wheelonly-${{version}}.tar.gz"}}\n'}
        )
        run = bootstrap("app", *dirs)
    assert run.code == 0, run.stderr
    out = run.output
    assert "wheelonly==2.0" in (out / "constraints.txt").read_text()  # the newest version
    record = json.loads((out / "wheels" / "wheelonly-2.0-py3-none-any.whl.build.json").read_text())
    assert (
        record["sdist_sha256"]
        == hashlib.sha256((mirror / "wheelonly-2.0.tar.gz").read_bytes()).hexdigest()
    )
    assert (out / "sdists" / "wheelonly-2.0.tar.gz").is_file()
    result = pip_install(out, tmp_path / "venv", "app")
    assert result.returncode == 0, result.stderr


def test_source_url_that_cannot_be_reached_names_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_file("wheelonly", IndexFile("wheelonly-2.0-py3-none-any.whl", b"not used"))
    index.add(Project("app", dependencies=["wheelonly"]), tmp_path / "sdists")
    (tmp_path / "empty").mkdir()
    for base in serve_directory(tmp_path / "empty"):
        url = f"{base}/wheelonly-${{version}}.tar.gz"
        run = bootstrap(
            "app", *settings_dirs(tmp_path, {"wheelonly": f'source: {{url: "{url}"}}\n'})
        )
    assert run.code == 1
    assert f"cannot download {base}/wheelonly-2.0.tar.gz: HTTP 404" in run.stderr
    assert "required by: app -> wheelonly" in run.stderr
    assert "the source is the 'source' setting of wheelonly in" in run.stderr
    assert "'prebuilt: true'" in run.stderr
    assert "Traceback" not in run.stderr


def test_source_git_repository_with_submodules(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.add(Project("lib", "1.0", tool={"fail": "the index sdist is broken"}), tmp_path / "bad")
    git_config = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
    # file: submodules are off by default in git; the user's own git configuration rules.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.file.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "always")
    sub = tmp_path / "third_party"
    (sub / "src").mkdir(parents=True)
    (sub / "src" / "vendored_mod.py").write_text("VALUE = 42\n")
    subprocess.run(["git", "init", "-q", str(sub)], check=True)
    subprocess.run(["git", "-C", str(sub), *git_config, "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(sub), *git_config, "commit", "-qm", "sub"], check=True)
    repo = tmp_path / "repo"
    sdist = Project(
        "lib", "1.0", tool={"modules": ["vendored_mod"]}, files={"src/lib.py": ""}
    ).sdist(tmp_path / "tmp-sdist")
    subprocess.run(["tar", "xzf", str(sdist), "-C", str(tmp_path / "tmp-sdist")], check=True)
    (tmp_path / "tmp-sdist" / "lib-1.0").rename(repo)
    git = ["git", "-C", str(repo), *git_config]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "submodule", "add", "-q", sub.as_uri(), "third_party"], check=True)
    (repo / "src" / "vendored_mod.py").symlink_to("../third_party/src/vendored_mod.py")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    subprocess.run([*git, "tag", "v1.0"], check=True)
    dirs = settings_dirs(
        tmp_path, {"lib": f'source: {{git: "{repo.as_uri()}", ref: "v${{version}}"}}\n'}
    )
    run = bootstrap("lib", *dirs)
    assert run.code == 0, run.stderr
    archived = run.output / "sdists" / "lib-1.0.tar.gz"
    with tarfile.open(archived) as tar:
        names = tar.getnames()
    assert "lib-1.0/third_party/src/vendored_mod.py" in names
    assert not any("/.git/" in n or n.endswith("/.git") for n in names)
    wheel = next((run.output / "wheels").glob("lib-1.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("vendored_mod.py") == b"VALUE = 42\n"
    # The same commit archives to the same bytes.
    again = bootstrap("lib", *dirs, output=tmp_path / "again")
    assert again.code == 0, again.stderr
    assert (tmp_path / "again" / "sdists" / "lib-1.0.tar.gz").read_bytes() == archived.read_bytes()


def test_source_git_repository(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add(Project("lib", "1.0", tool={"fail": "the index sdist is broken"}), tmp_path / "bad")
    repo = tmp_path / "repo"
    sdist = Project("lib", "1.0", dependencies=[]).sdist(tmp_path / "tmp-sdist")
    subprocess.run(["tar", "xzf", str(sdist), "-C", str(tmp_path / "tmp-sdist")], check=True)
    (tmp_path / "tmp-sdist" / "lib-1.0").rename(repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    subprocess.run([*git, "tag", "v1.0"], check=True)
    dirs = settings_dirs(
        tmp_path, {"lib": f'source: {{git: "{repo.as_uri()}", ref: "v${{version}}"}}\n'}
    )
    run = bootstrap("lib", *dirs)
    assert run.code == 0, run.stderr
    assert (run.output / "sdists" / "lib-1.0.tar.gz").is_file()

    bad = settings_dirs(
        tmp_path / "b", {"lib": f'source: {{git: "{repo.as_uri()}", ref: "nope"}}\n'}
    )
    failed = bootstrap("lib", *bad, output=tmp_path / "other")
    assert failed.code == 1
    assert "git checkout of 'nope' failed" in failed.stderr and "lib" in failed.stderr


PLUGIN = """
from pathlib import Path

def prepare_source(context, source_dir):
    context.log("plugin: preparing " + context.name)
    text = (source_dir / "pyproject.toml").read_text()
    (source_dir / "pyproject.toml").write_text(
        text.replace('dependencies = []', 'dependencies = ["libthree"]')
    )

def build_wheel(context, source_dir, wheel_dir):
    return None  # let the backend build
"""

FAILING_PLUGIN = """
def fetch_source(context):
    raise RuntimeError("mirror unreachable")
"""


def install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, code: str, module: str
) -> None:
    """A distribution on sys.path declaring a bootstrapper.overrides entry point."""
    site = tmp_path / "site"
    (site / f"{module}-1.0.dist-info").mkdir(parents=True)
    (site / f"{module}.py").write_text(code)
    (site / f"{module}-1.0.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n"
    )
    (site / f"{module}-1.0.dist-info" / "entry_points.txt").write_text(
        f"[bootstrapper.overrides]\n{package} = {module}\n"
    )
    monkeypatch.syspath_prepend(str(site))


def test_plugin_prepare_source_changes_the_tree(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, "lib", PLUGIN, "preparing_plugin")
    index.add_all([Project("lib", "1.0"), Project("libthree", "0.5")], tmp_path / "sdists")
    run = bootstrap("lib", *settings_dirs(tmp_path, {}))
    assert run.code == 0, run.stderr
    assert "libthree==0.5" in (run.output / "constraints.txt").read_text()
    assert "plugin: preparing lib" in (run.output / "logs" / "lib-1.0.log").read_text()


def test_plugin_failure_is_a_clear_error(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, "lib", FAILING_PLUGIN, "failing_plugin")
    index.add(Project("lib", "1.0"), tmp_path / "sdists")
    run = bootstrap("lib", *settings_dirs(tmp_path, {}))
    assert run.code == 1
    assert "the lib plugin's fetch_source failed: RuntimeError: mirror unreachable" in run.stderr
    assert "Traceback" not in run.stderr


def test_prebuilt_dependency_through_an_extra_without_pep658(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The langchain case: a Rust package deep in the tree marked ``prebuilt: true``, on an
    index that serves no PEP 658 metadata. Its dependencies come from the wheel itself."""
    index.add(Project("libthree", "0.5"), tmp_path / "sdists")
    wheel = upstream_wheel(
        tmp_path, index, bootstrap, Project("rusty", "3.1", dependencies=["libthree"])
    )
    index.projects.pop("rusty")
    index.add_file("rusty", IndexFile(wheel.name, wheel.read_bytes()))  # no metadata
    index.add(Project("mid", dependencies=["rusty>=3"]), tmp_path / "sdists")
    index.add(Project("app", optional={"fast": ["mid"]}), tmp_path / "sdists")
    # As a user types it: default ./overrides and ./patches in the working directory.
    work = tmp_path / "work"
    work.mkdir()
    settings_dirs(work, {"rusty": 'prebuilt: true\nchangelog: {"3.1": ["taken as is"]}\n'})
    monkeypatch.chdir(work)
    run = bootstrap("app[fast]", output=Path("out"))
    assert run.code == 0, run.stderr
    out = work / "out"
    assert (out / "wheels" / "rusty-3.1-1-py3-none-any.whl").is_file()
    assert (out / "constraints.txt").read_text().splitlines() == [
        "app==1.0",
        "libthree==0.5",
        "mid==1.0",
        "rusty==3.1",
    ]
    edges = json.loads((out / "graph.json").read_text())["edges"]
    assert {"from": "mid==1.0", "to": "rusty==3.1"}.items() <= next(
        e for e in edges if e["to"] == "rusty==3.1"
    ).items()
    assert any(e["from"] == "rusty==3.1" and e["to"] == "libthree==0.5" for e in edges)
    result = pip_install(out, tmp_path / "venv", "app[fast]")
    assert result.returncode == 0, result.stderr
    assert {"rusty", "libthree", "mid"} <= set(installed(tmp_path / "venv"))

    # The output directory alone rebuilds the tree, the pre-built wheel included.
    index.stop()
    code = main(["build-sequence", "out/build-order.json", "--output-dir", "again"])
    assert code == 0
    again = work / "again" / "wheels"
    assert (again / "rusty-3.1-1-py3-none-any.whl").read_bytes() == (
        out / "wheels" / "rusty-3.1-1-py3-none-any.whl"
    ).read_bytes()
    result = pip_install(work / "again", tmp_path / "venv2", "app[fast]")
    assert result.returncode == 0, result.stderr
