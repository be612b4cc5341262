"""The nginx configuration the README gives ("Sharing an index"), run for real: pip and uv
install through it with JSON pages, and it negotiates as ``bootstrapper serve`` does.
Skipped where nginx is not installed."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.simple_json import JSON_MEDIA_TYPE

from .conftest import ROOT, installed, pip_from, standard_tree, uv_install
from .support import FixtureIndex
from .test_serve import BROWSER, PIP_ACCEPT, UV_ACCEPT, Client

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


def readme_config() -> str:
    """The nginx block of the README, as a user would copy it."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", readme, re.S)
    assert len(blocks) == 1
    return str(blocks[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Any]:
    """Start nginx with the README's configuration over a directory; yields a function
    that takes the directory and returns the port."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(root: Path) -> int:
        assert NGINX is not None
        port = free_port()
        prefix = tmp_path / "nginx"
        (prefix / "tmp").mkdir(parents=True)
        site = readme_config()
        site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        site = site.replace("/srv/bootstrap-output", str(root))
        temp = "\n".join(
            f"{kind}_temp_path {prefix / 'tmp' / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, the workers would become nobody, who cannot read pytest's directories.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'};\nevents {{}}\n"
            "http {\nlog_format typed '\"$request\" $status $sent_http_content_type';\n"
            f"access_log {prefix / 'access.log'} typed;\n{temp}\n{site}\n}}\n"
        )
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"nginx did not start: {stderr}")
                time.sleep(0.05)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_the_readme_nginx_config_negotiates_and_installs(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, nginx: Any
) -> None:
    index.add_all(standard_tree(), tmp_path / "upstream")
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    port = nginx(run.output)
    client = Client(port)

    for accept in (UV_ACCEPT, PIP_ACCEPT, "application/vnd.pypi.simple.latest+json"):
        page = client.get("/simple/libtwo/", Accept=accept)
        assert page.status == 200, accept
        assert page.headers["content-type"] == JSON_MEDIA_TYPE, accept
        assert page.body == (run.output / "simple" / "libtwo" / "index.json").read_bytes()
        assert page.headers["vary"] == "Accept"
    for accept in (BROWSER, "*/*", f"{JSON_MEDIA_TYPE};q=0, text/html"):
        page = client.get("/simple/libtwo/", Accept=accept)
        assert page.headers["content-type"].startswith("text/html"), accept
        assert page.body == (run.output / "simple" / "libtwo" / "index.html").read_bytes()
    root = client.get("/simple/", Accept=UV_ACCEPT)
    assert root.headers["content-type"] == JSON_MEDIA_TYPE
    sources = client.get("/sdists/libtwo/", Accept=UV_ACCEPT)
    assert sources.headers["content-type"] == JSON_MEDIA_TYPE
    wheel = next((run.output / "wheels").glob("libtwo-*.whl"))
    ranged = client.get(f"/wheels/{wheel.name}", Range="bytes=-50")
    assert ranged.status == 206 and ranged.body == wheel.read_bytes()[-50:]
    assert client.get("/.work/lock").status == 404

    uv = uv_install(f"http://127.0.0.1:{port}/simple/", tmp_path / "uv-venv", "app")
    assert uv.returncode == 0, uv.stderr
    assert installed(tmp_path / "uv-venv")["libtwo"] == "2.0"
    pip = pip_from(f"http://127.0.0.1:{port}/simple/", tmp_path / "pip-venv", "app")
    assert pip.returncode == 0, pip.stderr
    assert installed(tmp_path / "pip-venv")["libone"] == "1.4"
    # Both installers were given the JSON pages.
    access = (tmp_path / "nginx" / "access.log").read_text().splitlines()
    served = f'"GET /simple/libthree/ HTTP/1.1" 200 {JSON_MEDIA_TYPE}'
    assert access.count(served) == 2, access
