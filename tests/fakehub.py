"""A small Hugging Face Hub-compatible server on 127.0.0.1 for tests of the real download path.

`FakeHub` holds repositories in memory; the `hub` fixture (registered in conftest.py) serves
them over HTTP and points huggingface_hub at it through `HF_ENDPOINT`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
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

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((method, path))
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


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    from huggingface_hub import constants

    fake = FakeHub()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bool) -> None:
            status, headers, data = fake.answer(self.command, self.path)
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

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # huggingface_hub reads these once at import; the library reads HF_ENDPOINT and
    # HF_HUB_OFFLINE per call. Telemetry off: it would look up a registry on huggingface.co.
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
