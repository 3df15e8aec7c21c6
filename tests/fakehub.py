"""Small servers on 127.0.0.1 for tests of the real download paths.

- `FakeHub` holds Hub repositories in memory; the `hub` fixture serves them over HTTP and
  points huggingface_hub at it through `HF_ENDPOINT`.
- `ReleaseServer` serves original checkpoint files as GitHub serves release assets (a 302 to
  a storage path, range requests) and can fail on purpose; the `releases` fixture points
  `T2T_VIT_RELEASE_MIRROR` at it.
- `refusing_url` is an address where connections are refused, `silent_url` one that accepts
  connections and never answers; `no_hub` points `HF_ENDPOINT` at the refusing one.

The fixtures are registered in conftest.py.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class FakeHub:
    """Repositories in memory: repo id -> refs (branch -> commit) and commits (-> files)."""

    def __init__(self) -> None:
        self.refs: dict[str, dict[str, str]] = {}
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        #: When set, every request is answered with this HTTP status (a server fault).
        self.status: int | None = None
        #: Tokens that `/api/whoami-v2` accepts (as the account "tester").
        self.tokens: set[str] = set()

    def add(self, repo_id: str, folder: Path, branch: str = "main") -> str:
        """Commit the files of `folder` to `branch`; returns the commit hash."""
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        digest = hashlib.sha1(repr((repo_id, branch, sorted(files.items()))).encode())
        commit = digest.hexdigest()
        self.commits.setdefault(repo_id, {})[commit] = files
        self.refs.setdefault(repo_id, {})[branch] = commit
        return commit

    def gets(self, filename: str) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and p.endswith("/" + filename))

    def answer(
        self, method: str, path: str, authorization: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((method, path))
        if self.status is not None:
            return self.status, {}, b""
        if path == "/api/whoami-v2":
            if authorization.removeprefix("Bearer ") in self.tokens:
                body = b'{"type": "user", "name": "tester"}'
                headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
                return 200, headers, body
            return 401, {}, b""
        match = _RESOLVE.match(path)
        if match is None:
            return 404, {}, b""
        repo, rev, file = match["repo"], unquote(match["rev"]), unquote(match["file"])
        if repo not in self.commits:
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        commit = self.refs[repo].get(rev, rev)
        if commit not in self.commits[repo]:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        files = self.commits[repo][commit]
        if file not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b""
        data = files[file]
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Content-Length": str(len(data)),
            "Content-Type": "application/octet-stream",
        }
        return 200, headers, data


def quiet_hub_client(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point huggingface_hub at `endpoint`, online, without telemetry or progress bars."""
    from huggingface_hub import constants

    # huggingface_hub reads these once at import; the library reads HF_ENDPOINT and
    # HF_HUB_OFFLINE per call. Telemetry off: it would look up a registry on huggingface.co.
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # No token of the machine's user: a test gives the one it means.
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent/t2t-vit-tests/token")


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free port of 127.0.0.1 in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()

    class Handler(_Quiet):
        def _reply(self, body: bool) -> None:
            auth = self.headers.get("Authorization", "")
            status, headers, data = fake.answer(self.command, self.path, auth)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", "0")
            self.end_headers()
            if body and status == 200:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._reply(body=False)

        def do_GET(self) -> None:
            self._reply(body=True)

    with serving(Handler) as url:
        fake.url = url
        quiet_hub_client(monkeypatch, fake.url)
        yield fake


# -- original release files -------------------------------------------------------------------

RELEASE_PATH = "/releases/download/main"
STORAGE_PATH = "/storage"


@dataclass
class ReleaseServer:
    """Files by name, served under `RELEASE_PATH` with a 302 to `STORAGE_PATH` (as GitHub
    does), with range requests. `fail[name]` makes a file's next requests fail: an HTTP status,
    `"reset"` (the connection is reset) or `("cut", n)` (the body stops after n bytes)."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail: dict[str, int | str | tuple[str, int]] = field(default_factory=dict)
    #: (method, path, Range header or "") of every request, in order.
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    url: str = ""
    #: The converted-originals cache that `T2T_VIT_CACHE` points at.
    cache: Path = Path()

    @property
    def mirror(self) -> str:
        """The base URL that `T2T_VIT_RELEASE_MIRROR` takes."""
        return self.url + RELEASE_PATH

    def gets(self, name: str) -> int:
        """Requests for the file's bytes (after the redirect)."""
        return sum(1 for _, p, _ in self.requests if p == f"{STORAGE_PATH}/{name}")


def _serve_release(fake: ReleaseServer, handler: BaseHTTPRequestHandler) -> None:
    path = unquote(handler.path.split("?", 1)[0])
    fake.requests.append((handler.command, path, handler.headers.get("Range", "")))
    name = path.rsplit("/", 1)[-1]
    if path.startswith(RELEASE_PATH + "/") and name in fake.files:
        handler.send_response(302)
        handler.send_header("Location", f"{STORAGE_PATH}/{name}?token=signed")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    if not path.startswith(STORAGE_PATH + "/") or name not in fake.files:
        handler.send_error(404)
        return
    failure = fake.fail.get(name)
    if isinstance(failure, int):
        handler.send_error(failure)
        return
    if failure == "reset":
        # SO_LINGER 0: close() sends a reset instead of a clean end of stream.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True
        return
    data = fake.files[name]
    start = 0
    ranged = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
    if ranged:
        start = int(ranged[1])
        if start >= len(data):
            handler.send_error(416)
            return
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    else:
        handler.send_response(200)
    handler.send_header("Content-Length", str(len(data) - start))
    handler.send_header("Content-Type", "application/octet-stream")
    handler.end_headers()
    body = data[start:]
    if isinstance(failure, tuple):
        body = body[: failure[1]]
        handler.close_connection = True
    handler.wfile.write(body)


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ReleaseServer]:
    """A release server that `T2T_VIT_RELEASE_MIRROR` points at, and a cache in tmp_path."""
    fake = ReleaseServer()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            _serve_release(fake, self)

    with serving(Handler) as url:
        fake.url = url
        fake.cache = tmp_path / "t2t-vit-cache"
        monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", fake.mirror)
        monkeypatch.setenv("T2T_VIT_CACHE", str(fake.cache))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield fake


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """An address on 127.0.0.1 that refuses connections: a port bound but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An address on 127.0.0.1 that accepts connections (into its backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch, refusing_url: str) -> str:
    """huggingface_hub pointed at an address that refuses connections."""
    quiet_hub_client(monkeypatch, refusing_url)
    return refusing_url
