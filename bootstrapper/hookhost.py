"""Answer a package's PEP 517 hooks from one process: the build backend is imported once,
and each hook runs in a child forked from that pristine process.

Run by the build environment's interpreter, in the unpacked source tree::

    python hookhost.py REPLY_FD RESULT_FILE BACKEND [BACKEND_PATH_JSON]

Requests come on standard input, one JSON object a line: ``{"hook": NAME, "kwargs":
{...}, "environ": {...}}``. For each, a forked child takes ``environ`` as its whole
environment, calls the hook and writes ``{"value": ...}`` to RESULT_FILE; the host then
writes one JSON line to REPLY_FD: ``{"value": ...}``, ``{"missing": true}`` (the backend
has no such hook), ``{"unavailable": TEXT}`` (the backend cannot be imported),
``{"invalid": TEXT}`` or ``{"failed": STATUS}`` (the hook raised, or its process ended
without an answer; the traceback went to standard error). The host ends when standard
input does. A request may also carry ``"build_ext": {"fifo": PATH, "share": N, "most":
M, "waiting": PATH}``: see :func:`join_build_ext`.

A fork per hook keeps PEP 517's promise of a fresh process to each hook (a backend may
change its working directory, its environment, its modules) while the interpreter's start
and the backend's imports are paid once. When the host is the first process of a PID
namespace, it also reaps what the hooks left behind.

This file imports nothing of bootstrapper and runs on every Python a build may use.
"""

from __future__ import annotations

import os  # both loaded already by the interpreter's start: no search of sys.path
import sys

# The script's directory (bootstrapper's own modules) must not shadow the standard
# library or the backend's modules: drop it before anything else is imported.
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import importlib
import json

# Not typing's: importing it, and these, at run time costs every package's backend a few
# milliseconds (type checkers take any constant of this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: The hooks a host answers; anything else is refused as a protocol error.
HOOKS = ("get_requires_for_build_wheel", "prepare_metadata_for_build_wheel", "build_wheel")


class Unavailable(Exception):
    """The backend cannot be imported."""


class Invalid(Exception):
    """The backend was found, but not where ``backend-path`` says, or is not an object."""


def _print_exc() -> None:
    """The exception being handled, with its traceback, on standard error (the module is
    imported only when a backend fails)."""
    import traceback

    traceback.print_exc()


def _inside(path: str, roots: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(
        real == root or real.startswith(root.rstrip(os.sep) + os.sep)
        for root in (os.path.realpath(r) for r in roots)
    )


def load_backend(spec: str, backend_path: list[str]) -> Any:
    """The object ``spec`` (``module`` or ``module:attr.attr``) names; with
    ``backend_path``, imported from those directories (PEP 517's in-tree backends)."""
    module_name, _, attributes = spec.partition(":")
    if backend_path:
        sys.path[:0] = backend_path
    try:
        backend: Any = importlib.import_module(module_name)
    except ImportError as e:
        _print_exc()
        raise Unavailable(str(e)) from e
    except Exception as e:  # its code failed as it loaded
        _print_exc()
        raise Unavailable(f"{type(e).__name__}: {e}") from e
    if backend_path:
        origin = getattr(backend, "__file__", None)
        if origin is None or not _inside(origin, backend_path):
            raise Invalid(
                f"backend-path is {backend_path}, but {module_name!r} was imported from "
                f"{origin or 'a namespace'}"
            )
    for attribute in filter(None, attributes.split(".")):
        try:
            backend = getattr(backend, attribute)
        except AttributeError as e:
            raise Invalid(f"{spec!r}: {module_name} has no {attributes!r}") from e
    return backend


def _reap() -> None:
    """Collect the exit status of any orphan handed to us (we may be PID 1)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def join_build_ext(jobs: dict[str, Any]) -> None:
    """Where the backend imported setuptools, join its parallel ``build_ext`` to the
    run's jobserver (``extjobs.py`` beside this file, loaded only then: every backend
    process compiles this file, and most builds have no use for that one)."""
    if "setuptools" not in sys.modules:
        return
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "extjobs.py")
    spec = importlib.util.spec_from_file_location("_bootstrapper_extjobs", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.join_build_ext(jobs["fifo"], jobs["share"], jobs["most"], jobs["waiting"])


def _run_child(hook: Callable[..., Any], request: dict[str, Any], result_file: str) -> int:
    """In the forked child: the hook's answer into ``result_file``; the exit status."""
    try:
        os.environ.clear()
        os.environ.update(request.get("environ") or {})
        if request.get("build_ext"):
            join_build_ext(request["build_ext"])
        value = hook(**(request.get("kwargs") or {}))
        partial = result_file + ".part"
        with open(partial, "w", encoding="utf-8") as out:
            json.dump({"value": value}, out)
        os.replace(partial, result_file)
        return 0
    except SystemExit as e:  # the backend gave up: its status, as a process of its own
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        return e.code if isinstance(e.code, int) and e.code != 0 else 1
    except BaseException:  # the backend's failure, told in the log
        _print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def answer(
    backend: Any, request: dict[str, Any], result_file: str, private: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Run one hook in a forked child and say how it went."""
    name = request.get("hook")
    if name not in HOOKS:
        return {"invalid": f"no such hook: {name!r}"}
    hook = getattr(backend, str(name), None)
    if hook is None:
        return {"missing": True}
    if os.path.exists(result_file):
        os.unlink(result_file)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        # The host's pipes are not the hook's: were the host to die, its client must
        # see the end of the replies at once, not when the hook ends.
        for fd in private:
            os.close(fd)
        os._exit(_run_child(hook, request, result_file))
    _, status = os.waitpid(pid, 0)
    _reap()
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and os.path.exists(result_file):
        with open(result_file, encoding="utf-8") as f:
            result: dict[str, Any] = json.load(f)
        return result
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return {"failed": code or 1}


def main(argv: list[str]) -> int:
    reply_fd, result_file, spec = int(argv[0]), argv[1], argv[2]
    # Not for what the hooks start: a straggler must not hold our replies open.
    os.set_inheritable(reply_fd, False)
    backend_path: list[str] = json.loads(argv[3]) if len(argv) > 3 else []
    problem: dict[str, Any] | None = None
    backend: Any = None
    try:
        backend = load_backend(spec, backend_path)
    except Unavailable as e:
        problem = {"unavailable": str(e)}
    except Invalid as e:
        problem = {"invalid": str(e)}
    # The hooks read nothing from standard input; requests come on it.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    with os.fdopen(reply_fd, "w", encoding="utf-8") as reply:
        for line in requests:
            if not line.strip():
                continue
            private = (requests.fileno(), reply.fileno())
            result = problem or answer(backend, json.loads(line), result_file, private)
            reply.write(json.dumps(result) + "\n")
            reply.flush()
    _reap()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
