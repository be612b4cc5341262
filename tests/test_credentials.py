"""Credentials in URLs are used for requests and never written or printed."""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main
from bootstrapper.credentials import Credentials, redact_text, redact_url, split_credentials
from bootstrapper.errors import FetchError
from bootstrapper.sources import fetch_git

from .conftest import standard_tree
from .support import FixtureIndex, IndexFile, Project

SECRET = "SECRETTOKEN"


# -- the pure functions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:TOKEN@host/simple/", "https://host/simple/"),
        ("https://TOKEN@host/simple/", "https://host/simple/"),  # a token as the user name
        ("https://user:@host/simple/", "https://host/simple/"),
        ("https://us%40er:p%2Fa%3Ass@host:8443/simple/", "https://host:8443/simple/"),
        ("https://user:p@ss@host/x", "https://host/x"),  # an unencoded @: the last one counts
        (
            "http://u:p@127.0.0.1:8080/files/a.tar.gz#sha256=ab",
            "http://127.0.0.1:8080/files/a.tar.gz#sha256=ab",
        ),
        ("git+https://x-access-token:TOKEN@github.com/o/r.git", "git+https://github.com/o/r.git"),
        ("ssh://git@github.com/o/r.git", "ssh://github.com/o/r.git"),
        ("https://host/simple/", "https://host/simple/"),
        ("https://host/path/with@sign", "https://host/path/with@sign"),  # @ after the host
        ("https://host/?q=a@b", "https://host/?q=a@b"),
        ("file:///srv/index/", "file:///srv/index/"),
        # scp-like git: the login name is no secret, and nothing there is a URL's userinfo
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/some/dir", "/some/dir"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "clean", "credentials"),
    [
        ("https://user:TOKEN@host/simple/", "https://host/simple/", Credentials("user", "TOKEN")),
        ("https://TOKEN@host/simple/", "https://host/simple/", Credentials("TOKEN", "")),
        (
            "https://us%40er:p%2Fa%3Ass@host/s/",
            "https://host/s/",
            Credentials("us@er", "p/a:ss"),
        ),
        ("https://host/simple/", "https://host/simple/", None),
        ("git@github.com:o/r.git", "git@github.com:o/r.git", None),
    ],
)
def test_split_credentials(url: str, clean: str, credentials: Credentials | None) -> None:
    assert split_credentials(url) == (clean, credentials)


def test_credentials_repr_hides_the_password() -> None:
    assert "TOKEN" not in repr(Credentials("user", "TOKEN"))


def test_redact_text_finds_every_url() -> None:
    text = (
        "fatal: unable to access 'https://user:TOKEN@host/r.git/': 403\n"
        "also http://TOKEN@other/x and git@github.com:o/r.git"
    )
    assert redact_text(text) == (
        "fatal: unable to access 'https://host/r.git/': 403\n"
        "also http://other/x and git@github.com:o/r.git"
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_failure_does_not_show_the_token(tmp_path: Path) -> None:
    # Port 9 (discard) on localhost: nothing answers, git fails quickly and prints the URL.
    url = f"http://user:{SECRET}@127.0.0.1:9/repo.git"
    with pytest.raises(FetchError) as raised:
        fetch_git(url, "v1", "lib-1.0", tmp_path / "lib-1.0.tar.gz", tmp_path)
    assert SECRET not in str(raised.value)
    assert "http://127.0.0.1:9/repo.git" in str(raised.value)


# -- through the real bootstrap --------------------------------------------------------


def leaks(root: Path, secret: str = SECRET) -> list[str]:
    """Every file under ``root`` holding ``secret``: raw bytes, and the members of zip and
    tar archives (wheels, sdists)."""
    needle = secret.encode()
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if needle in data:
            found.append(str(path.relative_to(root)))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                found += [f"{path.name}!{n}" for n in zf.namelist() if needle in zf.read(n)]
        elif path.name.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                for member in tf.getmembers():
                    extracted = tf.extractfile(member) if member.isfile() else None
                    if extracted is not None and needle in extracted.read():
                        found.append(f"{path.name}!{member.name}")
    return found


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_index_credentials_are_used_and_never_written(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add_all(standard_tree(), tmp_path / "sdists")
    index.auth = ("user", SECRET)
    out = tmp_path / "out"
    code, output = run_cli(
        capsys,
        "bootstrap",
        "--index-url",
        index.url_with_credentials("user", SECRET),
        "--output-dir",
        str(out),
        "--jobs",
        "2",
        "-v",
        "--keep-work",
        "app",
    )
    assert code == 0, output
    # Every request carried the credentials, the downloads under /files/ too.
    assert index.unauthorized == []
    assert any(r.startswith("/files/") for r in index.requests)
    assert (out / "simple" / "libtwo" / "index.html").is_file()
    assert (out / "logs" / "bootstrap.log").is_file()
    assert list((out / "logs").glob("libtwo-*.log"))
    # Not in anything published, nor in the private .work (kept, build environments and
    # all), nor on the terminal.
    assert (out / ".work").is_dir()
    assert leaks(out) == []
    assert SECRET not in output
    # The URL is still recorded, without its userinfo.
    order = (out / "build-order.json").read_text()
    assert f"{index.url.removesuffix('/simple/')}/files/" in order


def test_index_without_the_credentials_is_refused(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """The check the test above relies on: the fixture index does demand them."""
    index.add(Project("libthree", "0.5"), tmp_path / "sdists")
    index.auth = ("user", SECRET)
    run = bootstrap("libthree")
    assert run.code == 1
    assert "HTTP 401" in run.stderr


@pytest.mark.parametrize("failure", ["missing", "mismatch"])
def test_failed_download_shows_the_url_without_the_token(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str], failure: str
) -> None:
    sdist = Project("libthree", "0.5").sdist(tmp_path / "sdists")
    file = IndexFile(sdist.name, sdist.read_bytes())
    if failure == "missing":
        file.href = "../../files/gone-0.5.tar.gz"
    else:
        file.sha256 = "0" * 64
    index.add_file("libthree", file)
    index.auth = ("user", SECRET)
    out = tmp_path / "out"
    code, output = run_cli(
        capsys,
        "bootstrap",
        "--index-url",
        index.url_with_credentials("user", SECRET),
        "--output-dir",
        str(out),
        "libthree",
    )
    assert code == 1
    assert SECRET not in output
    shown = f"{index.url.removesuffix('/simple/')}/files/"
    assert shown in output, output
    assert ("HTTP 404" if failure == "missing" else "do not match") in output
    assert leaks(out) == []


def test_credentials_in_a_link_are_used_and_never_written(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    """An index page may link files on a host that wants credentials of their own."""
    index.auth = ("user", SECRET)
    index.auth_prefix = "/files/"
    files = index.url_with_credentials("user", SECRET).removesuffix("simple/") + "files/"
    for project in (Project("app", "1.0", dependencies=["libthree"]), Project("libthree", "0.5")):
        sdist = project.sdist(tmp_path / "sdists")
        index.add_file(
            project.name, IndexFile(sdist.name, sdist.read_bytes(), href=files + sdist.name)
        )
    out = tmp_path / "out"
    code, output = run_cli(
        capsys, "bootstrap", "--index-url", index.url, "--output-dir", str(out), "-v", "app"
    )
    assert code == 0, output
    assert index.unauthorized == []
    assert leaks(out) == []
    assert SECRET not in output


def test_source_url_credentials_are_used_and_never_written(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add(
        Project("lib", "1.0", tool={"fail": "the index sdist is not the one"}), tmp_path / "a"
    )
    good = Project("lib", "1.0").sdist(tmp_path / "mirror")
    index.add_file("mirror", IndexFile("lib-1.0-mirror.tar.gz", good.read_bytes()))
    index.auth = ("user", SECRET)
    index.auth_prefix = "/files/"
    base = index.url_with_credentials("user", SECRET).removesuffix("simple/")
    overrides = tmp_path / "overrides"
    (overrides / "settings").mkdir(parents=True)
    (overrides / "settings" / "lib.yaml").write_text(
        f'source: {{url: "{base}files/lib-${{version}}-mirror.tar.gz"}}\n'
    )
    (tmp_path / "patches").mkdir()
    dirs = ["--overrides-dir", str(overrides), "--patches-dir", str(tmp_path / "patches")]
    out = tmp_path / "out"
    code, output = run_cli(
        capsys, "bootstrap", "--index-url", index.url, "--output-dir", str(out), *dirs, "lib"
    )
    assert code == 0, output
    assert leaks(out) == []
    assert SECRET not in output
    # A wrong URL: the error names it, without the token.
    (overrides / "settings" / "lib.yaml").write_text(
        f'source: {{url: "{base}files/nothing-${{version}}.tar.gz"}}\n'
    )
    code, output = run_cli(
        capsys,
        "bootstrap",
        "--index-url",
        index.url,
        "--output-dir",
        str(tmp_path / "out2"),
        *dirs,
        "lib",
    )
    assert code == 1
    assert SECRET not in output
    assert f"{index.url.removesuffix('simple/')}files/nothing-1.0.tar.gz" in output


def test_build_command_does_not_show_the_token(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add(Project("lib", "1.0"), tmp_path / "sdists")
    index.auth = ("user", SECRET)
    url = index.url_with_credentials("user", SECRET)
    out = tmp_path / "out"
    code, output = run_cli(
        capsys,
        "build",
        "lib",
        "9.9",
        "--sources",
        url,
        "--wheels",
        url,
        "--output-dir",
        str(out),
        "--overrides-dir",
        str(tmp_path / "none"),
        "--patches-dir",
        str(tmp_path / "none"),
    )
    assert code == 1
    assert SECRET not in output
    assert f"no source archive of this version in {index.url}" in output
    if out.exists():
        assert leaks(out) == []
