"""A git server for the CI pipeline test: dulwich's smart-HTTP server behind a token, on
an address the test adds to the node bridge (reachable from pods, never routed out)."""

from __future__ import annotations

import base64
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich import porcelain
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import HTTPGitApplication

from tenantflow_dev.devcluster import node

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = (
    "import unittest\n\nfrom calc import add, mul\n\n\n"
    "class CalcTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n\n"
    "    def test_mul_zero(self):\n        self.assertEqual(mul(7, 0), 0)\n"
)
Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass
class GitServer:
    url: str  # the repository's URL, by the host name the tenant's allow-list names
    port: int
    commits: dict[str, str]  # branch -> commit sha
    requests: list[str]  # "METHOD path status" of every request, for the test to look at


def make_repository(path: Path) -> dict[str, str]:
    """A small Python project: `main` passes its tests, `broken` fails one of them."""
    repo = porcelain.init(str(path))
    author = b"ci <ci@example.test>"
    (path / "calc.py").write_text(CALC)
    (path / "test_calc.py").write_text(TESTS)
    porcelain.add(repo, [str(path / "calc.py"), str(path / "test_calc.py")])
    good = porcelain.commit(repo, b"calc with tests", author=author, committer=author)
    repo.refs[b"refs/heads/main"] = repo.refs[b"refs/heads/broken"] = good
    repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/broken")
    (path / "calc.py").write_text(CALC.replace("return a * b", "return a * b + 1"))
    porcelain.add(repo, [str(path / "calc.py")])
    bad = porcelain.commit(repo, b"a bug in mul", author=author, committer=author)
    repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    repo.close()
    return {"main": good.decode(), "broken": bad.decode()}


def with_token(
    app: Callable[..., Iterable[bytes]], token: str, log: list[str]
) -> Callable[..., Any]:
    """HTTP basic auth as `ci` with the token; 401 otherwise (as git hosts answer)."""
    expected = f"Basic {base64.b64encode(f'ci:{token}'.encode()).decode()}"

    def guarded(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        ok = environ.get("HTTP_AUTHORIZATION") == expected

        def record(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            log.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {status.split()[0]}")
            return start_response(status, headers, *rest)

        if not ok:
            record("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"a token is required\n"]
        return app(environ, record)

    return guarded


class _Threading(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(tmp: Path, ip: str, host_name: str, token: str) -> Iterator[GitServer]:
    commits = make_repository(tmp / "calc")
    repo = Repo(str(tmp / "calc"))
    requests: list[str] = []
    app = with_token(HTTPGitApplication(DictBackend({"/calc.git": repo})), token, requests)
    subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", node.NODE_BRIDGE], check=True)
    try:
        server = make_server(ip, 0, app, server_class=_Threading, handler_class=_Quiet)
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield GitServer(f"http://{host_name}:{port}/calc.git", port, commits, requests)
        finally:
            server.shutdown()
            server.server_close()
            repo.close()
    finally:
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", node.NODE_BRIDGE], check=False)
