"""Test support for Rust packages: a local sparse cargo registry served over real HTTP,
and a fixture project with a Rust extension built by a tiny in-tree backend."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from .support import Project, ThreadingHTTPServer

RUST_BACKEND_SOURCE = (Path(__file__).parent / "fixtures" / "rust_backend.py").read_text()


def index_path(name: str) -> str:
    """Where the sparse protocol keeps a crate's index file (1/, 2/, 3/a/, ab/cd/)."""
    name = name.lower()
    if len(name) <= 2:
        return f"{len(name)}/{name}"
    if len(name) == 3:
        return f"3/{name[0]}/{name}"
    return f"{name[:2]}/{name[2:4]}/{name}"


def crate_file(name: str, version: str, files: dict[str, str]) -> bytes:
    """A ``.crate``: a gzipped tar of ``name-version/`` holding ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(data)
            info.mtime = 1_600_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


@dataclass
class Crate:
    name: str
    version: str
    data: bytes

    @property
    def cksum(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class CargoRegistry:
    """A sparse registry (``sparse+http://127.0.0.1:PORT/index/``) of in-memory crates."""

    crates: dict[str, list[Crate]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def add_crate(self, name: str, version: str, lib_rs: str) -> Crate:
        manifest = f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n'
        crate = Crate(
            name, version, crate_file(name, version, {"Cargo.toml": manifest, "src/lib.rs": lib_rs})
        )
        self.crates.setdefault(name, []).append(crate)
        return crate

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def index_url(self) -> str:
        return f"sparse+http://127.0.0.1:{self.port}/index/"

    def _body(self, path: str) -> bytes | None:
        if path == "/index/config.json":
            return json.dumps(
                {"dl": f"http://127.0.0.1:{self.port}/crates/{{crate}}/{{version}}/download"}
            ).encode()
        for name, versions in self.crates.items():
            if path == f"/index/{index_path(name)}":
                lines = [
                    json.dumps(
                        {
                            "name": c.name,
                            "vers": c.version,
                            "deps": [],
                            "cksum": c.cksum,
                            "features": {},
                            "yanked": False,
                        }
                    )
                    for c in versions
                ]
                return ("\n".join(lines) + "\n").encode()
            for crate in versions:
                if path == f"/crates/{name}/{crate.version}/download":
                    return crate.data
        return None

    def start(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                registry.requests.append(self.path)
                body = registry._body(self.path.split("?")[0])
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mirror_config(registry_url: str) -> str:
    """A user's ``$CARGO_HOME/config.toml`` sending crates.io requests to a mirror."""
    return (
        '[source.crates-io]\nreplace-with = "local"\n\n'
        f'[source.local]\nregistry = "{registry_url}"\n'
    )


def rust_project(
    dependency: Crate, name: str = "rustext", version: str = "1.0", *, declared: bool = False
) -> Project:
    """A Python package whose extension is a Rust cdylib (in ``src/rust/``, depending on
    ``dependency`` from the registry, with a Cargo.lock), built by ``rust_backend``.
    ``declared``: it lists ``setuptools-rust`` among its build requirements, as real
    Rust packages name their tool (see :func:`setuptools_rust_stand_in`)."""
    lib = name.replace("-", "_")
    cargo_toml = (
        f'[package]\nname = "{lib}"\nversion = "0.1.0"\nedition = "2021"\n\n'
        f'[lib]\ncrate-type = ["cdylib"]\npath = "src/lib.rs"\n\n'
        f'[dependencies]\n{dependency.name} = "{dependency.version}"\n'
    )
    cargo_lock = (
        "version = 3\n\n"
        f'[[package]]\nname = "{lib}"\nversion = "0.1.0"\n'
        f'dependencies = [\n "{dependency.name}",\n]\n\n'
        f'[[package]]\nname = "{dependency.name}"\nversion = "{dependency.version}"\n'
        'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
        f'checksum = "{dependency.cksum}"\n'
    )
    lib_rs = (
        f'#[no_mangle]\npub extern "C" fn {lib}_answer() -> i32 {{ {dependency.name}::answer() }}\n'
    )
    requires = '["setuptools-rust"]' if declared else "[]"
    pyproject = (
        f"[build-system]\nrequires = {requires}\n"
        'build-backend = "rust_backend"\nbackend-path = ["_backend"]\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n\n'
        f'[tool.rust-fixture]\nmanifest = "src/rust/Cargo.toml"\nlib = "{lib}"\n'
    )
    return Project(
        name,
        version,
        pyproject=pyproject,
        files={
            "_backend/rust_backend.py": RUST_BACKEND_SOURCE,
            "src/rust/Cargo.toml": cargo_toml,
            "src/rust/Cargo.lock": cargo_lock,
            "src/rust/src/lib.rs": lib_rs,
        },
    )


def setuptools_rust_stand_in() -> Project:
    """An empty package named ``setuptools-rust``: what makes bootstrapper know a
    project builds Rust is the name among its build requirements."""
    return Project("setuptools-rust", "1.10.0", tool={"modules": ["setuptools_rust"]})
