"""Provenance beside every wheel: in-toto v1 statements of SLSA v1 provenance, signed
(DSSE, Ed25519) or not, written by real bootstraps and rebuilds and checked by
``verify-provenance`` against the files of the output directory."""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bootstrapper.provenance import provenance_text, statement
from bootstrapper.provenance_check import Locations
from bootstrapper.records import BuildRecord, EnvWheel
from bootstrapper.signing import pae

from .conftest import helper_project
from .support import FixtureIndex, Project, backend_package, cli, isolation_args

# -- helpers -------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_key(private: Path, public: Path | None = None) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 key as ``openssl genpkey -algorithm ed25519`` writes it (PEM, PKCS#8),
    and its public half as ``openssl pkey -pubout`` does."""
    key = ed25519.Ed25519PrivateKey.generate()
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    if public is not None:
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return key


def keyid(key: ed25519.Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def module(name: str, version: str = "1.0", **kwargs: Any) -> Project:
    mod = name.replace("-", "_")
    return Project(name, version, tool={"modules": [mod]}, files={f"src/{mod}.py": ""}, **kwargs)


APP_SOURCE = "VALUE = 'original'\n"


def tree() -> list[Project]:
    """app (patched) -> libone[fast] -> speedup (only through the extra); libone is built
    with the packaged fixture backend (and its dependency fixture-helper)."""
    return [
        backend_package(),
        helper_project(),
        Project(
            "app",
            "1.0",
            dependencies=["libone[fast]"],
            tool={"modules": ["app_mod"]},
            files={"src/app_mod.py": APP_SOURCE},
        ),
        Project(
            "libone",
            "1.0",
            build_requires=["fixture-backend"],
            optional={"fast": ["speedup"]},
            tool={"modules": ["libone"]},
            files={"src/libone.py": ""},
        ),
        module("speedup"),
    ]


def write_customization(root: Path) -> Path:
    """A patch for app and a setting for libone in ``root``'s default ./patches and
    ./overrides; returns the patch."""
    patch = root / "patches" / "app" / "01-value.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text(
        "".join(
            difflib.unified_diff(
                APP_SOURCE.splitlines(keepends=True),
                ["VALUE = 'patched'\n"],
                "a/src/app_mod.py",
                "b/src/app_mod.py",
            )
        )
    )
    settings = root / "overrides" / "settings" / "libone.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(textwrap.dedent("env:\n  LIBONE_FLAVOUR: plain\n"))
    return patch


def statement_of(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The statement in a provenance file, and its envelope (None when unsigned)."""
    document = json.loads(path.read_text())
    if "payloadType" in document:
        return json.loads(base64.b64decode(document["payload"])), document
    return document, None


def dependencies_of(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    return {d["name"]: d for d in deps}


def digests(statement: dict[str, Any]) -> dict[str, str]:
    return {name: d["digest"]["sha256"] for name, d in dependencies_of(statement).items()}


WHEELS = {
    "app": "app-1.0-py3-none-any.whl",
    "libone": "libone-1.0-py3-none-any.whl",
    "speedup": "speedup-1.0-py3-none-any.whl",
    "backend": "fixture_backend-1.0-py3-none-any.whl",
    "helper": "fixture_helper-1.0-py3-none-any.whl",
}


# -- a signed tree, from a working directory with the default directories --------------


def test_signed_provenance_names_every_input_and_verify_names_each_failure(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index.add_all(tree(), tmp_path / "index-files")
    monkeypatch.chdir(tmp_path)
    patch = write_customization(tmp_path)
    key = make_key(tmp_path / "key.pem", tmp_path / "public.pem")
    run = ("bootstrap", "--index-url", index.url, "-j", "2", "--sign-key", "key.pem", "app")
    code, _, err = cli(capsys, *run)
    assert code == 0, err
    out = tmp_path / "bootstrap-output"
    wheels = out / "wheels"
    assert sorted(p.name for p in wheels.glob("*.whl")) == sorted(WHEELS.values())

    for filename in WHEELS.values():
        wheel = wheels / filename
        found, envelope = statement_of(wheels / f"{filename}.intoto.json")
        assert found["_type"] == "https://in-toto.io/Statement/v1"
        assert found["predicateType"] == "https://slsa.dev/provenance/v1"
        assert found["subject"] == [{"name": filename, "digest": {"sha256": sha256(wheel)}}]
        # Signed over DSSE's pre-authentication encoding, checked here by hand.
        assert envelope is not None and envelope["payloadType"] == "application/vnd.in-toto+json"
        payload = base64.b64decode(envelope["payload"])
        signed = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
        [signature] = envelope["signatures"]
        assert signature["keyid"] == keyid(key)
        key.public_key().verify(base64.b64decode(signature["sig"]), signed)
        record = json.loads((wheels / f"{filename}.build.json").read_text())
        definition = found["predicate"]["buildDefinition"]
        assert definition["externalParameters"]["plan"] == record["plan"]
        assert definition["externalParameters"]["python"] == record["python"]
        details = found["predicate"]["runDetails"]
        assert details["builder"]["version"] == record["tool_versions"]
        assert details["metadata"] == {
            "startedOn": record["started"],
            "finishedOn": record["finished"],
        }
        # Nothing of where the output directory is (the record's log path, for one); the
        # only paths are the settings files' (part of the plan), as the record has them.
        assert str(out) not in json.dumps(found)

    # libone: its source, and the wheels of its build environment (the packaged backend
    # and what that backend needs), each with the sha256 of the published file.
    libone, _ = statement_of(wheels / f"{WHEELS['libone']}.intoto.json")
    deps = dependencies_of(libone)
    assert set(deps) == {
        "sdists/libone-1.0.tar.gz",
        f"wheels/{WHEELS['backend']}",
        f"wheels/{WHEELS['helper']}",
    }
    for name, dep in deps.items():
        assert dep["digest"] == {"sha256": sha256(out / name)}
    assert deps["sdists/libone-1.0.tar.gz"]["annotations"]["role"] == "source"
    assert deps["sdists/libone-1.0.tar.gz"]["uri"].startswith(index.url.rsplit("/simple", 1)[0])
    assert deps[f"wheels/{WHEELS['backend']}"]["annotations"]["role"] == "build-environment"
    plan = libone["predicate"]["buildDefinition"]["externalParameters"]["plan"]
    assert plan["env"] == {"LIBONE_FLAVOUR": "plain"}
    # app: the patch, archived in DIR/patches, with its sha256.
    app, _ = statement_of(wheels / f"{WHEELS['app']}.intoto.json")
    deps = dependencies_of(app)
    assert deps["patches/app/1.0/01-value.patch"]["digest"] == {"sha256": sha256(patch)}
    assert deps["patches/app/1.0/01-value.patch"]["annotations"]["role"] == "patch"
    assert (out / "patches" / "app" / "1.0" / "01-value.patch").read_bytes() == patch.read_bytes()

    # verify-provenance, with relative paths, passes for every wheel.
    code, stdout, err = cli(capsys, "verify-provenance", "bootstrap-output", "--key", "public.pem")
    assert code == 0, stdout + err
    assert stdout.count("\nok ") + stdout.startswith("ok ") == 5
    assert "signature verified" in stdout and stdout.endswith("5 of 5 wheels verified\n")
    code, stdout, _ = cli(
        capsys, "verify-provenance", "bootstrap-output", "--json", "--key", "public.pem"
    )
    document = json.loads(stdout)
    assert code == 0 and document["ok"] is True
    assert {w["wheel"] for w in document["wheels"]} == set(WHEELS.values())
    assert {w["signature"] for w in document["wheels"]} == {"verified"}

    # A re-run that reuses every wheel leaves the provenance as it was, times included.
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in wheels.glob("*.intoto.json")}
    code, _, err = cli(capsys, *run)
    assert code == 0, err
    assert "built " not in err
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in wheels.glob("*.intoto.json")}
    assert after == before

    def replace(path: Path, data: bytes) -> None:
        """Put other bytes at ``path`` (a new file: DIR's files are hard links)."""
        path.unlink()
        path.write_bytes(data)

    def verify(*args: str) -> tuple[int, dict[str, list[str]]]:
        code, stdout, _ = cli(capsys, "verify-provenance", "bootstrap-output", "--json", *args)
        return code, {w["wheel"]: w["problems"] for w in json.loads(stdout)["wheels"]}

    # A source that changed: only the wheel built from it fails, naming the file.
    source = out / "sdists" / "libone-1.0.tar.gz"
    original = source.read_bytes()
    replace(source, original + b"\0")
    code, problems = verify()
    assert code == 1
    assert [w for w, p in problems.items() if p] == [WHEELS["libone"]]
    [problem] = problems[WHEELS["libone"]]
    assert problem.startswith("sdists/libone-1.0.tar.gz (source) is not the file the wheel")
    replace(source, original)

    # A build-environment wheel replaced: the wheel built with it fails, and so does the
    # replaced wheel itself (its provenance attests other bytes).
    helper = wheels / WHEELS["helper"]
    original = helper.read_bytes()
    replace(helper, original + b"\0")
    code, problems = verify()
    assert code == 1
    assert sorted(w for w, p in problems.items() if p) == sorted(
        [WHEELS["helper"], WHEELS["libone"]]
    )
    assert problems[WHEELS["libone"]] == [
        f"wheels/{WHEELS['helper']} (build-environment) is not the file the wheel was built "
        f"with: its sha256 is {sha256(helper)}, the provenance says "
        f"{hashlib.sha256(original).hexdigest()}"
    ]
    assert "the wheel was changed or replaced" in problems[WHEELS["helper"]][0]
    replace(helper, original)

    # A patch changed in DIR/patches.
    archived = out / "patches" / "app" / "1.0" / "01-value.patch"
    replace(archived, patch.read_bytes() + b"\n")
    code, problems = verify()
    assert code == 1
    assert problems[WHEELS["app"]][0].startswith("patches/app/1.0/01-value.patch (patch) is not")
    replace(archived, patch.read_bytes())

    # Provenance edited after signing: its digests still match, so only the key tells.
    signed_file = wheels / f"{WHEELS['speedup']}.intoto.json"
    signed_text = signed_file.read_text()
    envelope = json.loads(signed_text)
    edited = json.loads(base64.b64decode(envelope["payload"]))
    edited["predicate"]["buildDefinition"]["externalParameters"]["python"] = "pypy 9"
    envelope["payload"] = base64.b64encode(json.dumps(edited).encode()).decode()
    signed_file.write_text(json.dumps(envelope))
    code, problems = verify()
    assert not any(problems.values()), problems
    assert code == 0
    code, problems = verify("--key", "public.pem")
    assert code == 1
    assert problems[WHEELS["speedup"]] == [
        f"the signature does not verify with {tmp_path / 'public.pem'}: the provenance was "
        "changed after it was signed"
    ]
    signed_file.write_text(signed_text)

    # Another key: every wheel fails, naming both key ids.
    other = make_key(tmp_path / "other.pem", tmp_path / "other-public.pem")
    code, problems = verify("--key", "other-public.pem")
    assert code == 1
    assert set(problems) == set(WHEELS.values())
    for found_problems in problems.values():
        assert found_problems == [
            f"signed by another key (keyid {keyid(key)}), not by "
            f"{tmp_path / 'other-public.pem'} (keyid {keyid(other)})"
        ]

    # Missing provenance; and only the wheels named (a path or a file name).
    signed_file.unlink()
    code, stdout, _ = cli(capsys, "verify-provenance", "bootstrap-output")
    assert code == 1
    assert f"FAILED  {WHEELS['speedup']}\n  no provenance: {signed_file} is missing\n" in stdout
    assert stdout.endswith("4 of 5 wheels verified\n")
    code, stdout, _ = cli(
        capsys, "verify-provenance", "bootstrap-output", f"bootstrap-output/wheels/{WHEELS['app']}"
    )
    assert code == 0 and stdout.endswith("1 of 1 wheels verified\n")
    code, _, err = cli(
        capsys, "verify-provenance", "bootstrap-output", "nothing-1.0-py3-none-any.whl"
    )
    assert code == 2 and "not a published wheel" in err


# -- unsigned, and a rebuild elsewhere ---------------------------------------------------


def test_unsigned_provenance_and_a_signed_rebuild_from_the_archive(
    tmp_path: Path,
    index: FixtureIndex,
    bootstrap: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index.add_all(tree(), tmp_path / "index-files")
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    out: Path = run.output
    found, envelope = statement_of(out / "wheels" / f"{WHEELS['app']}.intoto.json")
    assert envelope is None and found["_type"] == "https://in-toto.io/Statement/v1"
    code, stdout, _ = cli(capsys, "verify-provenance", str(out))
    assert code == 0 and "unsigned" in stdout
    make_key(tmp_path / "key.pem", tmp_path / "public.pem")
    code, stdout, _ = cli(
        capsys, "verify-provenance", str(out), "--key", str(tmp_path / "public.pem")
    )
    assert code == 1
    assert f"  not signed (a signature by {tmp_path / 'public.pem'} was asked for)" in stdout

    rebuilt = tmp_path / "rebuilt"
    code, _, err = cli(
        capsys,
        "build-sequence",
        str(out / "build-order.json"),
        "--output-dir",
        str(rebuilt),
        "--sign-key",
        str(tmp_path / "key.pem"),
        *isolation_args(),
    )
    assert code == 0, err
    for filename in WHEELS.values():
        again, envelope = statement_of(rebuilt / "wheels" / f"{filename}.intoto.json")
        assert envelope is not None
        original, _ = statement_of(out / "wheels" / f"{filename}.intoto.json")
        # The same inputs, by name and sha256 (the build environment's wheels are the
        # rebuilt ones, byte-identical); the source came from the archive, not a URL.
        assert digests(again) == digests(original)
        assert not any("uri" in dep for dep in dependencies_of(again).values())
    key = ("--key", str(tmp_path / "public.pem"))
    # The rebuild's sources and patches stayed beside the build order.
    code, stdout, _ = cli(capsys, "verify-provenance", str(rebuilt), *key)
    assert code == 1
    assert f"sdists/libone-1.0.tar.gz (source) is missing: no {rebuilt / 'sdists'}" in stdout
    code, stdout, _ = cli(
        capsys,
        "verify-provenance",
        str(rebuilt),
        "--sources",
        str(out / "sdists"),
        "--patches",
        str(out / "patches"),
        *key,
    )
    assert code == 0, stdout
    assert stdout.endswith("5 of 5 wheels verified\n")


# -- keys that cannot be used: usage errors before anything is built -------------------


def test_a_key_that_cannot_sign_is_a_usage_error_before_any_build(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add_all([module("solo")], tmp_path / "index-files")
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    cases = {
        tmp_path / "missing.pem": "cannot read the signing key",
        rsa_key: "is a RSA key; provenance is signed with Ed25519 only",
        encrypted: "is an encrypted private key",
        garbage: "is not a PEM private key",
    }
    for path, message in cases.items():
        run = bootstrap("--sign-key", str(path), "solo")
        assert run.code == 2, run.stderr
        assert message in run.stderr
        assert not (run.output / "wheels").exists()
    code, _, err = cli(capsys, "verify-provenance", str(tmp_path), "--key", str(garbage))
    assert code == 2 and "is not a PEM public key" in err
    order = tmp_path / "build-order.json"
    order.write_text("[]")
    code, _, err = cli(
        capsys,
        "build-sequence",
        str(order),
        "--output-dir",
        str(tmp_path / "o"),
        "--sign-key",
        str(rsa_key),
    )
    assert code == 2 and "Ed25519 only" in err


# -- the pure parts ------------------------------------------------------------------------


def test_pae_is_dsse_v1s_encoding() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sdists/a-1.0.tar.gz", "S/a-1.0.tar.gz"),
        ("sdists/prebuilt/a-1.0-py3-none-any.whl", "S/prebuilt/a-1.0-py3-none-any.whl"),
        ("wheels/a-1.0-py3-none-any.whl", "D/wheels/a-1.0-py3-none-any.whl"),
        ("patches/a/1.0/01.patch", "P/a/1.0/01.patch"),
        ("sdists/../../etc/passwd", None),
        ("/etc/passwd", None),
        ("logs/a-1.0.log", None),
        ("wheels", None),
        ("wheels//a.whl", None),
    ],
)
def test_dependency_names_map_into_the_output_directory_only(
    name: str, expected: str | None
) -> None:
    locations = Locations.of(Path("/D"), Path("/S"), Path("/P"))
    found = locations.path(name)
    assert (None if found is None else found.as_posix().lstrip("/")) == expected


def record(**changes: Any) -> BuildRecord:
    base: dict[str, Any] = dict(
        name="pkg",
        version="1.0",
        wheel="pkg-1.0-py3-none-any.whl",
        wheel_sha256="a" * 64,
        sdist="pkg-1.0.tar.gz",
        sdist_sha256="b" * 64,
        source_url="https://user:token@files.example/pkg-1.0.tar.gz",
        build_backend="fixture_backend",
        build_system_requires=("tool",),
        backend_requires=(),
        discovery_env=(EnvWheel("tool", "1.0", "tool-1.0-py3-none-any.whl", "c" * 64),),
        build_env=(EnvWheel("tool", "1.0", "tool-1.0-py3-none-any.whl", "c" * 64),),
        python="cpython 3.11.7 (linux, x86_64)",
        log="/somewhere/logs/pkg-1.0.log",
        plan={"patches": [{"file": "01.patch", "sha256": "d" * 64}], "env": {}},
    )
    base.update(changes)
    return BuildRecord(**base)


def test_statement_keeps_secrets_and_local_paths_out_and_is_stable() -> None:
    text = provenance_text(record())
    assert "token" not in text and "/somewhere" not in text
    assert text == provenance_text(record())  # the same record, the same bytes
    deps = dependencies_of(statement(record()))
    assert deps["sdists/pkg-1.0.tar.gz"]["uri"] == "https://files.example/pkg-1.0.tar.gz"
    assert set(deps) == {
        "sdists/pkg-1.0.tar.gz",
        "wheels/tool-1.0-py3-none-any.whl",
        "patches/pkg/1.0/01.patch",
    }
    # A rebuild from a local archive: a file: URL names this machine only.
    local = dependencies_of(statement(record(source_url="file:///tmp/x/pkg-1.0.tar.gz")))
    assert "uri" not in local["sdists/pkg-1.0.tar.gz"]
    # Crates vendored in: the archive is not what the URL serves; the upstream one is kept
    # as an annotation.
    vendored = dependencies_of(statement(record(upstream_sha256="e" * 64)))
    source = vendored["sdists/pkg-1.0.tar.gz"]
    assert "uri" not in source
    assert source["annotations"]["upstream"] == {
        "digest": {"sha256": "e" * 64},
        "uri": "https://files.example/pkg-1.0.tar.gz",
    }
    # A prebuilt upstream wheel taken as it is lives in sdists/prebuilt/.
    prebuilt = statement(record(sdist="pkg-1.0-py3-none-any.whl"))
    assert "sdists/prebuilt/pkg-1.0-py3-none-any.whl" in dependencies_of(prebuilt)


def test_wheels_the_backend_was_only_asked_in_are_told_but_not_dependencies() -> None:
    asked = EnvWheel("tool", "0.9", "tool-0.9-py3-none-any.whl", "f" * 64)
    found = statement(record(discovery_env=(asked,)))
    assert "wheels/tool-0.9-py3-none-any.whl" not in dependencies_of(found)
    internal = found["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["discoveryEnvironment"] == [
        {"name": "tool", "version": "0.9", "filename": asked.filename, "sha256": "f" * 64}
    ]
    # The usual case: asked in the very wheels it was built with.
    assert (
        "discoveryEnvironment"
        not in statement(record())["predicate"]["buildDefinition"]["internalParameters"]
    )
