"""A C extension rebuilds to the same bytes wherever its work directory is: compilers are
told to record that directory as ``/bootstrapper-build`` (gcc writes the build directory
into the debug information otherwise), and a package's own ``CPPFLAGS`` still apply.

The extension is compiled by gcc with ``-g``, ``CFLAGS`` and ``CPPFLAGS``, as setuptools does, by an
in-tree backend (``fixtures/c_backend.py``); the package is reached through an extra."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from bootstrapper.reproducible import BUILD_ROOT, compiler_maps_paths, path_map_flags

from .conftest import pip_install
from .support import FixtureIndex, Project, cli, isolation_args, record_of

C_BACKEND = (Path(__file__).parent / "fixtures" / "c_backend.py").read_text()
EXT_C = """\
#include <Python.h>
static PyObject *flag(PyObject *self, PyObject *args) { return PyLong_FromLong(CEXT_FLAG); }
static PyMethodDef methods[] = {{"flag", flag, METH_NOARGS, "CEXT_FLAG"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or not compiler_maps_paths("cc"),
    reason="needs gcc, and a cc that takes -ffile-prefix-map",
)


def c_tree() -> list[Project]:
    pyproject = (
        '[build-system]\nrequires = []\nbuild-backend = "c_backend"\n'
        'backend-path = ["_backend"]\n\n'
        '[project]\nname = "cext"\nversion = "1.0"\ndependencies = []\n\n'
        '[tool.cfixture]\nextension = "cext._ext"\nextension-source = "ext.c"\n'
        'init = "from ._ext import flag\\n"\n'
    )
    cext = Project(
        "cext",
        "1.0",
        pyproject=pyproject,
        files={"_backend/c_backend.py": C_BACKEND, "ext.c": EXT_C},
    )
    return [cext, Project("app", "1.0", optional={"native": ["cext"]})]


def the_wheel(wheels: Path) -> Path:
    found = sorted(wheels.glob("cext-1.0-*.whl"))
    assert len(found) == 1, sorted(p.name for p in wheels.iterdir())
    return found[0]


def extension_bytes(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".so")]
        return zf.read(name)


@needs_gcc
def test_a_c_extension_rebuilds_to_the_same_bytes_in_another_directory(
    tmp_path: Path,
    index: FixtureIndex,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index.add_all(c_tree(), tmp_path / "sdists")
    work = tmp_path / "work"
    (work / "overrides" / "settings").mkdir(parents=True)
    (work / "overrides" / "settings" / "cext.yaml").write_text(
        'env:\n  CPPFLAGS: "-DCEXT_FLAG=7"\n'
    )
    monkeypatch.chdir(work)

    code, _, err = cli(capsys, "bootstrap", "--index-url", index.url, "app[native]")
    assert code == 0, err
    out = work / "bootstrap-output"
    wheel = the_wheel(out / "wheels")
    # The map depends on where the run is, like HOME and TMPDIR: not in the record.
    assert record_of(wheel)["environment"]["CPPFLAGS"] == "-DCEXT_FLAG=7"
    log = (out / "logs" / "cext-1.0.log").read_text()
    assert f"compilers record {out / '.work'} as {BUILD_ROOT}" in log
    # Ours first, the package's after it.
    assert f"-ffile-prefix-map={out / '.work'}={BUILD_ROOT} -DCEXT_FLAG=7 " in log
    compiled = extension_bytes(wheel)
    assert str(tmp_path).encode() not in compiled
    assert f"{BUILD_ROOT}/src/cext-1.0".encode() in compiled  # gcc's DW_AT_comp_dir

    # verify rebuilds in a directory of its own; build-sequence into another output.
    code, stdout, err = cli(
        capsys, "verify", "bootstrap-output/build-order.json", *isolation_args()
    )
    assert code == 0, err
    assert f"identical  {wheel.name}" in stdout
    code, _, err = cli(
        capsys,
        "build-sequence",
        "bootstrap-output/build-order.json",
        "--output-dir",
        "elsewhere",
        *isolation_args(),
    )
    assert code == 0, err
    assert (work / "elsewhere" / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()

    # The package's CPPFLAGS took effect.
    venv = tmp_path / "venv"
    installed = pip_install(out, venv, "app[native]")
    assert installed.returncode == 0, installed.stderr
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import cext; print(cext.flag())"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (0, "7\n"), ran.stderr


def test_the_flags_map_the_work_directory_then_keep_theirs(tmp_path: Path) -> None:
    work, real = tmp_path / "a dir" / ".work", tmp_path / "real" / ".work"
    flags = path_map_flags([work, real], {"CPPFLAGS": "-DX -I/opt/x", "CFLAGS": "-O1"})
    assert flags == {
        "CPPFLAGS": f"'-ffile-prefix-map={work}={BUILD_ROOT}' "
        f"-ffile-prefix-map={real}={BUILD_ROOT} -DX -I/opt/x"
    }
    assert path_map_flags([real, real], {}) == {
        "CPPFLAGS": f"-ffile-prefix-map={real}={BUILD_ROOT}"
    }


def test_a_compiler_without_the_option_gets_no_flags(tmp_path: Path) -> None:
    old = tmp_path / "old-cc"
    old.write_text("#!/bin/sh\necho \"cc: unrecognized option '$1'\" >&2\nexit 1\n")
    old.chmod(0o755)
    assert compiler_maps_paths(str(old)) is False
    assert compiler_maps_paths(str(tmp_path / "no-such-cc")) is False
