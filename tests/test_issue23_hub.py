"""Issue 23, Hub items: a stale keep-alive connection after a server error (35), the Hub's
timeout variables (19), a cache variable that names a file (22), `device` against
`map_location` (29)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from fakehub import quiet_hub_client, serving

import t2t_vit
from t2t_vit import PretrainedLoadError


def test_a_missing_repository_after_a_server_error_is_named_as_missing_not_a_network_fault(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An HTTP/1.1 server that answers 500 and keeps the connection open, then drops that
    # connection when the next request comes on it (as a load balancer drops an idle
    # keep-alive connection): the next request must be tried again on a fresh connection.
    served: list[tuple[str, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            if getattr(self, "stale", False):
                with lock:
                    served.append(("dropped", self.path))
                self.close_connection = True
                return
            status = 500 if "/broken/" in self.path else 404
            with lock:
                served.append((str(status), self.path))
            self.send_response(status)
            if status == 404:
                self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            # This connection is dropped at its next request.
            self.stale = status == 500

        do_GET = do_HEAD

    with serving(Handler) as url:
        quiet_hub_client(monkeypatch, url)
        with pytest.raises(PretrainedLoadError, match="server error") as first:
            t2t_vit.from_pretrained("acme/broken", cache_dir=tmp_path)
        assert "HTTP 500" in str(first.value)
        with pytest.raises(PretrainedLoadError) as second:
            t2t_vit.from_pretrained("acme/missing", cache_dir=tmp_path)
    message = str(second.value)
    assert "HTTP 404" in message, message
    assert "Check the repository id" in message
    assert "reset" not in message
    assert "network" not in message
    assert [status for status, path in served if "missing" in path][-1] == "404"


@pytest.mark.parametrize("variable", ["HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"])
def test_a_timeout_variable_that_is_no_integer_is_named(variable: str, tmp_path: Path) -> None:
    # huggingface_hub reads these with int() when it is imported: a fresh process.
    import subprocess
    import sys

    code = (
        "import t2t_vit\n"
        "try:\n    t2t_vit.from_pretrained('acme/model')\n"
        "except ValueError as err:\n    print(type(err).__name__, err)\n"
    )
    env = {**__import__("os").environ, variable: "abc", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == (
        f"ValueError {variable}='abc' must be a whole number of seconds greater than 0 "
        "(huggingface_hub reads it as an integer; unset it for the default)"
    ), out.stdout + out.stderr


def test_a_cache_variable_naming_a_file_is_said_to_be_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    afile = tmp_path / "cachefile"
    afile.write_text("not a folder")
    monkeypatch.setenv("T2T_VIT_CACHE", str(afile))
    monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7", source="original")
    message = str(err.value)
    assert message.endswith(
        f"{afile} is a file, not a folder: point T2T_VIT_CACHE at a folder "
        f"(it is T2T_VIT_CACHE={str(afile)!r})."
    ), message
    assert "or set T2T_VIT_CACHE" not in message


def test_device_and_map_location_that_disagree_are_refused(tmp_path: Path) -> None:
    model = t2t_vit.T2TViT(embed_dim=32, depth=1, num_heads=2, num_classes=3, token_dim=8)
    t2t_vit.save_pretrained(model, tmp_path / "m")
    with pytest.raises(
        ValueError,
        match=r"^device='cpu' and map_location='meta' disagree; map_location is an alias of "
        r"device: pass one of them$",
    ):
        t2t_vit.from_pretrained(tmp_path / "m", device="cpu", map_location="meta")
    same = t2t_vit.from_pretrained(tmp_path / "m", device="cpu", map_location="cpu")
    assert same.cls_token.device.type == "cpu"
