"""Wheel rewriting: METADATA edits as text, whole wheels rewritten for each rebuild scheme
(RECORD right, every other member byte for byte), installed by real pip and uv, and the
``bootstrapper wheel edit`` command."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bootstrapper.buildenv import find_uv
from bootstrapper.cli import main
from bootstrapper.wheeledit import (
    WheelEdit,
    WheelEditError,
    edit_metadata,
    edit_wheel,
    edited_filename,
    record_problems,
)

from .conftest import clean_env, installed

# -- a small wheel, made by hand with a correct RECORD ---------------------------------

DESCRIPTION = "A test package.\n\nRequires-Dist: not-a-header (this is the description)\n"
EXECUTABLE = 0o100755 << 16
REGULAR = 0o100644 << 16


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class WheelSpec:
    name: str
    version: str = "1.4"
    requires: list[str] = field(default_factory=list)
    build_tag: str | None = None
    with_data: bool = True
    signature: bool = False

    @property
    def dist(self) -> str:
        return self.name.replace("-", "_")

    @property
    def filename(self) -> str:
        parts = [self.dist, self.version, *([self.build_tag] if self.build_tag else [])]
        return "-".join([*parts, "py3-none-any"]) + ".whl"


def make_wheel(directory: Path, spec: WheelSpec) -> Path:
    """A wheel with a package (one file deflated, one stored), a directory entry, a data
    script with its executable bit, dist-info extras and a RECORD that is right."""
    prefix = f"{spec.dist}-{spec.version}"
    dist_info = f"{prefix}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            f"Name: {spec.name}",
            f"Version: {spec.version}",
            "Summary: a wheel for tests",
            *(f"Requires-Dist: {r}" for r in spec.requires),
            "Description-Content-Type: text/plain",
        ]
    )
    wheel_file = "Wheel-Version: 1.0\nGenerator: handmade\nRoot-Is-Purelib: true\n"
    if spec.build_tag:
        wheel_file += f"Build: {spec.build_tag}\n"
    wheel_file += "Tag: py3-none-any\n"
    members: list[tuple[str, bytes, int, int]] = [
        (f"{spec.dist}/", b"", zipfile.ZIP_STORED, 0o40755 << 16 | 0x10),
        (
            f"{spec.dist}/__init__.py",
            f"VERSION = {spec.version!r}\n".encode(),
            zipfile.ZIP_DEFLATED,
            REGULAR,
        ),
        (f"{spec.dist}/blob.bin", bytes(range(256)) * 4, zipfile.ZIP_STORED, REGULAR),
    ]
    if spec.with_data:
        members.append(
            (
                f"{prefix}.data/scripts/{spec.dist}-tool",
                b"#!python\nprint('tool')\n",
                zipfile.ZIP_DEFLATED,
                EXECUTABLE,
            )
        )
    members += [
        (f"{dist_info}/METADATA", (metadata + "\n\n" + DESCRIPTION).encode(), 8, REGULAR),
        (f"{dist_info}/WHEEL", wheel_file.encode(), zipfile.ZIP_DEFLATED, REGULAR),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\n", zipfile.ZIP_STORED, REGULAR),
        (f"{dist_info}/licenses/LICENSE", b"MIT\n", zipfile.ZIP_DEFLATED, REGULAR),
    ]
    rows = [f"{n},{record_hash(d)},{len(d)}" for n, d, _, _ in members if not n.endswith("/")]
    rows.append(f"{dist_info}/RECORD,,")
    members.append(
        (f"{dist_info}/RECORD", ("\n".join(rows) + "\n").encode(), zipfile.ZIP_DEFLATED, REGULAR)
    )
    if spec.signature:
        members.append((f"{dist_info}/RECORD.jws", b"{}", zipfile.ZIP_STORED, REGULAR))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.filename
    with zipfile.ZipFile(path, "w") as zf:
        for i, (member, data, compression, attr) in enumerate(members):
            info = zipfile.ZipInfo(member, (2021, 2, 3, 4, 5, 6 + 2 * (i % 20)))
            info.compress_type = compression
            info.external_attr = attr
            zf.writestr(info, data)
    return path


def read(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode()


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def requires_dist(metadata: str) -> list[str]:
    head = metadata.partition("\n\n")[0]
    return [
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def assert_untouched_members_identical(
    original: Path, edited: Path, renames: dict[str, str]
) -> None:
    """Every member but METADATA, WHEEL and RECORD keeps bytes, order, time, mode and
    compression; dist-info and data directories may only be renamed."""

    def renamed(member: str) -> str:
        for old, new in renames.items():
            if member.startswith(old):
                return new + member[len(old) :]
        return member

    with zipfile.ZipFile(original) as old, zipfile.ZipFile(edited) as new:
        old_infos = [i for i in old.infolist() if not i.filename.endswith((".jws", ".p7s"))]
        new_infos = new.infolist()
        assert [renamed(i.filename) for i in old_infos] == [i.filename for i in new_infos]
        for before, after in zip(old_infos, new_infos, strict=True):
            if before.filename.endswith((".dist-info/METADATA", ".dist-info/WHEEL", "/RECORD")):
                continue
            assert old.read(before) == new.read(after), before.filename
            assert before.date_time == after.date_time, before.filename
            assert before.external_attr == after.external_attr, before.filename
            assert before.compress_type == after.compress_type, before.filename
        assert new.testzip() is None


# -- edit_metadata: text in, text out -------------------------------------------------

HEAD = "Metadata-Version: 2.1\nName: pkg\nVersion: 1.4\n"
BODY = "\n\nLong description.\nRequires-Dist: body-text-is-not-a-header\n"

METADATA_CASES = [
    pytest.param(
        HEAD + "Requires-Dist: a\nRequires-Dist: gone>=1\nRequires-Dist: b\nSummary: x" + BODY,
        WheelEdit(remove_requires=frozenset({canonicalize_name("gone")})),
        "1.4",
        HEAD + "Requires-Dist: a\nRequires-Dist: b\nSummary: x" + BODY,
        id="remove-one",
    ),
    pytest.param(
        HEAD
        + "Requires-Dist: Foo_Bar>=1\n"
        + 'Requires-Dist: foo.bar[x]; extra == "test"\n'
        + "Requires-Dist: keep"
        + BODY,
        WheelEdit(remove_requires=frozenset({canonicalize_name("FOO-bar")})),
        "1.4",
        HEAD + "Requires-Dist: keep" + BODY,
        id="remove-by-normalized-name-with-extras-and-markers",
    ),
    pytest.param(
        HEAD + "Requires-Dist: a\nProvides-Extra: x" + BODY,
        WheelEdit(add_requires=(Requirement('new>=2; python_version >= "3.8"'),)),
        "1.4",
        HEAD + 'Requires-Dist: a\nRequires-Dist: new>=2; python_version >= "3.8"\n'
        "Provides-Extra: x" + BODY,
        id="add-after-the-last-requires-dist",
    ),
    pytest.param(
        HEAD + "Summary: x" + BODY,
        WheelEdit(add_requires=(Requirement("one"), Requirement("two[extra]<3"))),
        "1.4",
        HEAD + "Summary: x\nRequires-Dist: one\nRequires-Dist: two[extra]<3" + BODY,
        id="add-without-requires-dist",
    ),
    pytest.param(
        HEAD + "Requires-Dist: triton==3.0\nRequires-Dist: numpy" + BODY,
        WheelEdit(
            remove_requires=frozenset({canonicalize_name("triton")}),
            add_requires=(Requirement("triton-cpu"),),
        ),
        "1.4",
        HEAD + "Requires-Dist: numpy\nRequires-Dist: triton-cpu" + BODY,
        id="remove-and-add",
    ),
    pytest.param(
        HEAD + "Requires-Dist: a" + BODY,
        WheelEdit(rebuild=2, scheme="post"),
        "1.4.post2",
        HEAD.replace("Version: 1.4", "Version: 1.4.post2") + "Requires-Dist: a" + BODY,
        id="new-version",
    ),
    pytest.param(
        HEAD + "Requires-Dist: a" + BODY,
        WheelEdit(rebuild=2, scheme="build-tag"),
        "1.4",
        HEAD + "Requires-Dist: a" + BODY,
        id="build-tag-leaves-metadata",
    ),
]


@pytest.mark.parametrize(("text", "edit", "version", "expected"), METADATA_CASES)
def test_edit_metadata(text: str, edit: WheelEdit, version: str, expected: str) -> None:
    assert edit_metadata(text, edit, Version(version)) == expected


def test_edit_metadata_removing_an_absent_requirement_raises() -> None:
    text = HEAD + "Requires-Dist: a" + BODY
    edit = WheelEdit(remove_requires=frozenset({canonicalize_name("a"), canonicalize_name("b")}))
    with pytest.raises(WheelEditError, match="cannot remove b: not among the wheel's requirements"):
        edit_metadata(text, edit, Version("1.4"))
    # Unless the removal is marked optional (an edit shared by several versions).
    optional = WheelEdit(
        remove_requires=edit.remove_requires, optional_removals=frozenset({canonicalize_name("b")})
    )
    assert edit_metadata(text, optional, Version("1.4")) == HEAD.rstrip("\n") + BODY


def test_edit_metadata_adds_to_a_metadata_without_description() -> None:
    text = "Metadata-Version: 2.1\nName: pkg\nVersion: 1.4\n"
    result = edit_metadata(text, WheelEdit(add_requires=(Requirement("new"),)), Version("1.4"))
    assert requires_dist(result) == ["new"]
    assert result == text + "Requires-Dist: new\n"


# -- new versions and file names ---------------------------------------------------------

FILENAMES = [
    ("pkg-1.4-py3-none-any.whl", WheelEdit(rebuild=2), "pkg-1.4-2-py3-none-any.whl"),
    (
        "pkg-1.4-py3-none-any.whl",
        WheelEdit(rebuild=2, scheme="post"),
        "pkg-1.4.post2-py3-none-any.whl",
    ),
    (
        "pkg-1.4-py3-none-any.whl",
        WheelEdit(rebuild=2, scheme="local"),
        "pkg-1.4+rebuild2-py3-none-any.whl",
    ),
    (
        "pkg-1.4-py3-none-any.whl",
        WheelEdit(scheme="local", local="cpu"),
        "pkg-1.4+cpu-py3-none-any.whl",
    ),
    ("pkg-1.4-1-py3-none-any.whl", WheelEdit(rebuild=3), "pkg-1.4-3-py3-none-any.whl"),
    (
        "my_pkg-1.4-cp311-cp311-manylinux_2_17_x86_64.whl",
        WheelEdit(rebuild=1),
        "my_pkg-1.4-1-cp311-cp311-manylinux_2_17_x86_64.whl",
    ),
    (
        "pkg-1.4+cu121-py3-none-any.whl",
        WheelEdit(rebuild=2, scheme="local"),
        "pkg-1.4+cu121.rebuild2-py3-none-any.whl",
    ),
    (
        "pkg-1.4-py3-none-any.whl",
        WheelEdit(remove_requires=frozenset({canonicalize_name("a")})),
        "pkg-1.4-py3-none-any.whl",
    ),
]


@pytest.mark.parametrize(("filename", "edit", "expected"), FILENAMES)
def test_edited_filename(filename: str, edit: WheelEdit, expected: str) -> None:
    assert edited_filename(filename, edit) == expected


def test_post_scheme_refuses_a_version_that_has_a_post_part() -> None:
    with pytest.raises(WheelEditError, match="post"):
        WheelEdit(rebuild=1, scheme="post").new_version(Version("1.4.post1"))
    with pytest.raises(WheelEditError, match="invalid local version label"):
        WheelEdit(scheme="local", local="not valid!").new_version(Version("1.4"))


# -- whole wheels, each scheme --------------------------------------------------------

SCHEMES = [
    pytest.param(
        WheelEdit(rebuild=2, scheme="build-tag"),
        "pkg-1.4-2-py3-none-any.whl",
        "1.4",
        "2",
        id="build-tag",
    ),
    pytest.param(
        WheelEdit(rebuild=2, scheme="post"),
        "pkg-1.4.post2-py3-none-any.whl",
        "1.4.post2",
        None,
        id="post",
    ),
    pytest.param(
        WheelEdit(rebuild=2, scheme="local"),
        "pkg-1.4+rebuild2-py3-none-any.whl",
        "1.4+rebuild2",
        None,
        id="local",
    ),
    pytest.param(
        WheelEdit(scheme="local", local="cpu"),
        "pkg-1.4+cpu-py3-none-any.whl",
        "1.4+cpu",
        None,
        id="local-label",
    ),
]


@pytest.mark.parametrize(("scheme_edit", "filename", "version", "build"), SCHEMES)
def test_edit_wheel_for_each_scheme(
    tmp_path: Path, scheme_edit: WheelEdit, filename: str, version: str, build: str | None
) -> None:
    original = make_wheel(
        tmp_path / "in", WheelSpec("pkg", requires=["dep-a>=1", "gone", 'dep-c; os_name == "nt"'])
    )
    original_bytes = original.read_bytes()
    edit = WheelEdit(
        remove_requires=frozenset({canonicalize_name("gone")}),
        add_requires=(Requirement('dep-b>=2; python_version >= "3"'),),
        rebuild=scheme_edit.rebuild,
        scheme=scheme_edit.scheme,
        local=scheme_edit.local,
    )
    edited = edit_wheel(original, tmp_path / "out", edit)
    assert edited == tmp_path / "out" / filename
    assert original.read_bytes() == original_bytes  # the input is left alone
    assert record_problems(edited) == []

    dist_info = f"pkg-{version}.dist-info"
    metadata = read(edited, f"{dist_info}/METADATA")
    assert f"\nVersion: {version}\n" in metadata
    assert requires_dist(metadata) == [
        "dep-a>=1",
        'dep-c; os_name == "nt"',
        'dep-b>=2; python_version >= "3"',
    ]
    assert metadata.endswith("\n\n" + DESCRIPTION)
    wheel_file = read(edited, f"{dist_info}/WHEEL")
    build_lines = [line for line in wheel_file.splitlines() if line.startswith("Build:")]
    assert build_lines == ([f"Build: {build}"] if build else [])
    assert "Tag: py3-none-any" in wheel_file

    renames = {"pkg-1.4.dist-info/": f"{dist_info}/", "pkg-1.4.data/": f"pkg-{version}.data/"}
    assert_untouched_members_identical(original, edited, renames)
    if version != "1.4":
        assert not [
            n for n in names(edited) if n.startswith(("pkg-1.4.dist-info/", "pkg-1.4.data/"))
        ]
    record = read(edited, f"{dist_info}/RECORD")
    assert f"{dist_info}/RECORD,,\n" in record
    assert f"pkg-{version}.data/scripts/pkg-tool,sha256=" in record


def test_re_stamping_a_build_tagged_wheel(tmp_path: Path) -> None:
    original = make_wheel(tmp_path, WheelSpec("pkg", build_tag="1", requires=["a"]))
    edited = edit_wheel(original, tmp_path / "out", WheelEdit(rebuild=3))
    assert edited.name == "pkg-1.4-3-py3-none-any.whl"
    build_lines = [
        line for line in read(edited, "pkg-1.4.dist-info/WHEEL").splitlines() if "Build" in line
    ]
    assert build_lines == ["Build: 3"]
    assert record_problems(edited) == []
    assert_untouched_members_identical(original, edited, {})


def test_requires_edit_of_a_build_tagged_wheel_keeps_its_build_tag(tmp_path: Path) -> None:
    original = make_wheel(tmp_path, WheelSpec("pkg", build_tag="1", requires=["a", "b"]))
    edited = edit_wheel(
        original, tmp_path / "out", WheelEdit(remove_requires=frozenset({canonicalize_name("b")}))
    )
    assert edited.name == "pkg-1.4-1-py3-none-any.whl"
    assert "Build: 1" in read(edited, "pkg-1.4.dist-info/WHEEL").splitlines()


def test_removing_an_absent_requirement_writes_nothing(tmp_path: Path) -> None:
    original = make_wheel(tmp_path / "in", WheelSpec("pkg", requires=["a"]))
    edit = WheelEdit(remove_requires=frozenset({canonicalize_name("absent")}), rebuild=1)
    with pytest.raises(WheelEditError, match="cannot remove absent"):
        edit_wheel(original, tmp_path / "out", edit)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_signatures_over_the_old_record_are_dropped(tmp_path: Path) -> None:
    original = make_wheel(tmp_path, WheelSpec("pkg", signature=True))
    assert "pkg-1.4.dist-info/RECORD.jws" in names(original)
    edited = edit_wheel(original, tmp_path / "out", WheelEdit(rebuild=1, scheme="post"))
    assert not [n for n in names(edited) if n.endswith((".jws", ".p7s"))]
    assert record_problems(edited) == []


def test_record_problems_finds_every_disagreement(tmp_path: Path) -> None:
    good = make_wheel(tmp_path, WheelSpec("pkg", with_data=False))
    assert record_problems(good) == []
    bad = tmp_path / "bad" / good.name
    bad.parent.mkdir()
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "pkg/__init__.py":
                data += b"# tampered\n"
            if info.filename.endswith("RECORD"):
                data += b"pkg/missing.py,sha256=x,1\n"
            dst.writestr(info, data)
        dst.writestr("pkg/unlisted.py", b"")
    problems = record_problems(bad)
    assert sorted(problems) == [
        "pkg/__init__.py: hash or size differs from RECORD",
        "pkg/missing.py: in RECORD but not in the wheel",
        "pkg/unlisted.py: not in RECORD",
    ]


# -- installers accept the rewritten wheels -------------------------------------------------


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--isolated", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )


def test_rewritten_wheels_install_with_pip_and_uv_and_pass_pip_check(tmp_path: Path) -> None:
    """One wheel per scheme, each requiring something absent from the find-links dir until
    the edit removes it; the originals sit beside them, so the installers must prefer the
    rebuilds (a higher build tag, a .post, a +local)."""
    links = tmp_path / "links"
    for dep in (WheelSpec("dep-a", "1.0"), WheelSpec("dep-b", "2.0")):
        make_wheel(links, dep)
    requires = ["dep-a>=1", "gone>=1"]
    edits = {
        "tagged": WheelEdit(rebuild=2, scheme="build-tag"),
        "posted": WheelEdit(rebuild=2, scheme="post"),
        "localed": WheelEdit(rebuild=2, scheme="local"),
    }
    produced = {}
    for project, scheme in edits.items():
        original = make_wheel(links, WheelSpec(project, requires=requires))
        edit = WheelEdit(
            remove_requires=frozenset({canonicalize_name("gone")}),
            add_requires=(Requirement('dep-b>=2; python_version >= "3"'),),
            rebuild=scheme.rebuild,
            scheme=scheme.scheme,
        )
        produced[project] = edit_wheel(original, links, edit).name
    assert produced == {
        "tagged": "tagged-1.4-2-py3-none-any.whl",
        "posted": "posted-1.4.post2-py3-none-any.whl",
        "localed": "localed-1.4+rebuild2-py3-none-any.whl",
    }
    expected = {
        "tagged": "1.4",
        "posted": "1.4.post2",
        "localed": "1.4+rebuild2",
        "dep-a": "1.0",
        "dep-b": "2.0",
    }

    pip_python = make_venv(tmp_path / "pip-venv")
    result = pip(
        pip_python,
        "install",
        "--no-cache-dir",
        "--no-index",
        "--find-links",
        str(links),
        *edits,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "pip-venv") == expected
    assert "tagged-1.4-2-py3-none-any.whl" in result.stdout + result.stderr
    check = pip(pip_python, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    # The installed RECORD lists the renamed data script, installed where it belongs.
    assert (tmp_path / "pip-venv" / "bin" / "posted-tool").is_file()

    uv_venv = tmp_path / "uv-venv"
    uv_python = make_venv(uv_venv)
    uv = subprocess.run(
        [
            find_uv(),
            "pip",
            "install",
            "--no-config",
            "--no-cache",
            "--no-index",
            "--find-links",
            str(links),
            "--python",
            str(uv_python),
            *edits,
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert uv.returncode == 0, uv.stderr
    assert installed(uv_venv) == expected
    wheel_file = next((uv_venv / "lib").glob("python*/site-packages/tagged-1.4.dist-info/WHEEL"))
    assert "Build: 2" in wheel_file.read_text()
    check = pip(uv_python, "check")
    assert check.returncode == 0, check.stdout + check.stderr


# -- the command ---------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["wheel", "edit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_wheel_edit_command_rewrites_and_prints_the_new_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = make_wheel(tmp_path / "in", WheelSpec("pkg", requires=["gone", "keep"]))
    out = tmp_path / "elsewhere"
    code, stdout, stderr = run_cli(
        capsys,
        str(original),
        "--remove-requires",
        "Gone",
        "--add-requires",
        'extra-dep>=1; sys_platform == "linux"',
        "--add-requires",
        "another",
        "--post",
        "3",
        "--output-dir",
        str(out),
    )
    assert (code, stderr) == (0, "")
    result = out / "pkg-1.4.post3-py3-none-any.whl"
    assert stdout == f"{result}\n"
    assert record_problems(result) == []
    assert requires_dist(read(result, "pkg-1.4.post3.dist-info/METADATA")) == [
        "keep",
        'extra-dep>=1; sys_platform == "linux"',
        "another",
    ]

    # Beside the input by default; a build tag keeps the version.
    code, stdout, _ = run_cli(capsys, str(original), "--build-tag", "4")
    assert code == 0
    assert stdout == f"{tmp_path / 'in' / 'pkg-1.4-4-py3-none-any.whl'}\n"
    assert "Build: 4" in read(
        tmp_path / "in" / "pkg-1.4-4-py3-none-any.whl", "pkg-1.4.dist-info/WHEEL"
    )

    code, stdout, _ = run_cli(capsys, str(original), "--local", "cpu", "--output-dir", str(out))
    assert code == 0
    assert stdout == f"{out / 'pkg-1.4+cpu-py3-none-any.whl'}\n"
    assert record_problems(out / "pkg-1.4+cpu-py3-none-any.whl") == []


def test_wheel_edit_command_failures_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = make_wheel(tmp_path / "in", WheelSpec("pkg", requires=["keep"]))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys, str(original), "--remove-requires", "absent", "--output-dir", str(out)
    )
    assert code == 1 and stdout == ""
    assert "cannot remove absent" in stderr and "Traceback" not in stderr
    assert list(out.glob("*.whl")) == []

    posted = make_wheel(tmp_path / "posted", WheelSpec("pkg", version="1.4.post1"))
    code, _, stderr = run_cli(capsys, str(posted), "--post", "2")
    assert code == 1 and "post" in stderr and "Traceback" not in stderr

    code, _, stderr = run_cli(capsys, str(original), "--local", "not valid!")
    assert code == 1 and "invalid local version label" in stderr

    code, _, stderr = run_cli(capsys, str(original), "--add-requires", "bad (((")
    assert code == 1 and "malformed requirement 'bad ((('" in stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["{wheel}", "--build-tag", "0"], id="build-tag-zero"),
        pytest.param(["{wheel}", "--post", "-1"], id="post-negative"),
        pytest.param(["{wheel}", "--build-tag", "two"], id="build-tag-not-a-number"),
        pytest.param(["{wheel}", "--build-tag", "1", "--post", "1"], id="two-schemes"),
        pytest.param(["{wheel}", "--post", "1", "--local", "x"], id="post-and-local"),
        pytest.param(["{missing}"], id="missing-wheel"),
        pytest.param([], id="no-wheel"),
        pytest.param(["{wheel}", "--frobnicate"], id="unknown-option"),
    ],
)
def test_wheel_edit_command_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    original = make_wheel(tmp_path / "in", WheelSpec("pkg"))
    before = sorted(p.name for p in original.parent.iterdir())
    filled = [
        a.format(wheel=original, missing=tmp_path / "nope-1.0-py3-none-any.whl") for a in args
    ]
    code, stdout, stderr = run_cli(capsys, *filled)
    assert code == 2, stderr
    assert stdout == ""
    assert stderr.startswith("bootstrapper: error: ")
    assert sorted(p.name for p in original.parent.iterdir()) == before


def test_wheel_without_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wheel"]) == 2
    assert "bootstrapper: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "code", "expected"),
    [
        (
            "pkg-1.4-py3-none-any.whl",
            b"not a zip",
            1,
            "error: {path} is not a wheel: File is not a zip file\n",
        ),
        (
            "pkg-1.4.txt",
            b"",
            2,
            "bootstrapper: error: not a wheel: {path} (Invalid wheel filename (extension must "
            "be '.whl'): 'pkg-1.4.txt')\n",
        ),
    ],
)
def test_wheel_edit_of_what_is_not_a_wheel(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    code: int,
    expected: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["wheel", "edit", str(path), "--post", "1"]) == code
    assert capsys.readouterr().err == expected.format(path=path)
