"""`from_pretrained` and `t2t-vit convert` behind a firewall or a mirror: no needless wait for a
Hub that never answers, and advice that fits each failure."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from checkpoints import T7, assert_state, to_mmpretrain
from conftest import OFFICIAL_PRESETS
from fakehub import ReleaseServer

import t2t_vit
from t2t_vit import PretrainedLoadError
from t2t_vit.cli import main
from t2t_vit.weights import WEIGHTS
from t2t_vit.weights.serialization import read_config

#: Generous: a fallback takes well under a second here; the bound only catches retries.
FALLBACK_SECONDS = 30.0


class BlackHole:
    """A loopback port that accepts connections, counts them, and never answers (a firewall
    that drops)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    @property
    def connections(self) -> int:
        return len(self.held)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def black_hole(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlackHole]:
    hole = BlackHole()
    monkeypatch.setenv("HF_ENDPOINT", hole.url)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    try:
        yield hole
    finally:
        hole.close()


def _wait_for(condition: Any) -> bool:
    # The accept thread counts a connection a moment after the client made it.
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


# -- item 8: a Hub miss is remembered -------------------------------------------------------


def test_a_black_holed_hub_is_asked_once_while_the_converted_original_is_cached(
    black_hole: BlackHole,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7")
    assert _wait_for(lambda: black_hole.connections == 1)
    folder = releases.cache / "converted" / "t2t-vit-7.official"
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="t2t_vit"):
        for _ in range(3):
            assert_state(t2t_vit.from_pretrained("t2t-vit-7"), t7_state)
    assert time.perf_counter() - started < FALLBACK_SECONDS
    time.sleep(0.2)
    assert black_hole.connections == 1  # no request at all for the three loads
    assert releases.gets(T7) == 1
    message = caplog.records[-1].getMessage()
    assert message.startswith(
        f"t2t-vit-7: weights t2t-vit-7.official from the original release file "
        f"{releases.mirror}/{T7} (converted earlier, cached in {folder}); Hub repository "
        "t2t-vit/t2t-vit-7.official not asked: it answered timed out after 1 s at "
    )
    assert message.endswith(
        " UTC (asked again after T2T_VIT_HUB_MISS_TTL seconds, or with force_download=True)"
    )
    # T2T_VIT_HUB_MISS_TTL=0 (or force_download=True) asks the Hub afresh.
    monkeypatch.setenv("T2T_VIT_HUB_MISS_TTL", "0")
    t2t_vit.from_pretrained("t2t-vit-7")
    assert _wait_for(lambda: black_hole.connections == 2)
    monkeypatch.delenv("T2T_VIT_HUB_MISS_TTL")
    t2t_vit.from_pretrained("t2t-vit-7", force_download=True)
    assert _wait_for(lambda: black_hole.connections == 3)
    assert releases.gets(T7) == 2


def test_a_remembered_miss_is_for_its_endpoint_only_and_never_hides_a_missing_copy(
    black_hole: BlackHole,
    releases: ReleaseServer,
    t7_file: bytes,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7")
    assert _wait_for(lambda: black_hole.connections == 1)
    # Another Hub endpoint (a mirror set since) is asked.
    other = BlackHole()
    try:
        monkeypatch.setenv("HF_ENDPOINT", other.url)
        t2t_vit.from_pretrained("t2t-vit-7")
        assert _wait_for(lambda: other.connections == 1)
    finally:
        other.close()
    monkeypatch.setenv("HF_ENDPOINT", black_hole.url)
    # With the converted copy gone, the Hub is asked again before the original is.
    monkeypatch.setenv("T2T_VIT_CACHE", str(tmp_path / "elsewhere"))
    t2t_vit.from_pretrained("t2t-vit-7")
    assert _wait_for(lambda: black_hole.connections == 2)
    monkeypatch.setenv("T2T_VIT_HUB_MISS_TTL", "soon")
    with pytest.raises(ValueError, match=r"^T2T_VIT_HUB_MISS_TTL='soon' is not a number"):
        t2t_vit.from_pretrained("t2t-vit-7")


# -- item 9: advice that fits the failure ---------------------------------------------------


def test_a_read_only_cache_gets_disk_advice_not_network_advice(
    no_hub: str, releases: ReleaseServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("T2T_VIT_CACHE", str(blocker / "cache"))
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    # The advice names the file in the way and the setting that chose it (issue 23, item 22).
    assert str(err.value).endswith(
        f"cannot write the cache folder {blocker / 'cache'} (Not a directory). {blocker} is a "
        "file, not a folder: point T2T_VIT_CACHE at a folder (it is "
        f"T2T_VIT_CACHE={str(blocker / 'cache')!r})."
    )
    assert "Check your network" not in str(err.value)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_names_the_download_folder(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases.files[T7] = t7_file
    real_open = Path.open

    def full_disk(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        # The partial download lands on a disk that is full: /dev/full answers ENOSPC.
        if self.name.endswith(".incomplete") and "b" in mode:
            return real_open(Path("/dev/full"), "wb")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full_disk)
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    downloads = releases.cache / "downloads"
    assert err.value.attempts[-1].answer == (
        f"cannot write into {downloads} ({os.strerror(errno.ENOSPC)})"
    )
    assert str(err.value).endswith(
        "Free space on its disk or make it writable, or set T2T_VIT_CACHE or pass cache_dir= "
        "to use another folder."
    )


@pytest.mark.parametrize("form", ["folder", "file-url"])
def test_the_release_mirror_may_be_a_local_folder_or_a_file_url(
    form: str,
    no_hub: str,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / T7).write_bytes(t7_file)
    monkeypatch.setenv(
        "T2T_VIT_RELEASE_MIRROR", str(mirror) if form == "folder" else mirror.as_uri()
    )
    model = t2t_vit.from_pretrained("t2t-vit-7")
    assert_state(model, t7_state)
    assert model.pretrained_cfg is not None
    assert model.pretrained_cfg["source"]["sha256"] == hashlib.sha256(t7_file).hexdigest()


def test_a_release_mirror_that_is_no_url_nor_folder_is_named(
    no_hub: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", "mirror.example.com/t2t")
    with pytest.raises(ValueError, match="T2T_VIT_RELEASE_MIRROR") as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert str(err.value) == (
        "T2T_VIT_RELEASE_MIRROR='mirror.example.com/t2t' is neither a URL (http://, https://, "
        "file://) nor an existing folder"
    )
    # A folder without the file says so.
    monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", str(tmp_path))
    with pytest.raises(PretrainedLoadError) as load_err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert load_err.value.attempts[-1].answer == f"file not found ({tmp_path / T7})"


# -- item 10: a damaged cached copy ---------------------------------------------------------


def _damage(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))


def test_a_damaged_cached_copy_is_named_as_damaged_offline_and_warned_of_once_online(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7")
    folder = releases.cache / "converted" / "t2t-vit-7.official"
    _damage(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING), pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert err.value.attempts[-1].answer == (
        f"offline mode is on (HF_HUB_OFFLINE=1) and the converted copy in {folder} is damaged "
        "(model.safetensors no longer matches its recorded SHA-256)"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []  # nothing is being made again

    monkeypatch.delenv("HF_HUB_OFFLINE")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert_state(t2t_vit.from_pretrained("t2t-vit-7"), t7_state)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{folder}: model.safetensors no longer matches its recorded SHA-256; making it again"
    ]
    assert releases.gets(T7) == 2


# -- item 11: T2T_VIT_HUB_ORG ---------------------------------------------------------------


def test_a_hub_org_that_is_no_organisation_name_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("T2T_VIT_HUB_ORG", "bad org!")
    with pytest.raises(ValueError, match="T2T_VIT_HUB_ORG") as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert str(err.value) == (
        "T2T_VIT_HUB_ORG='bad org!' is not a Hub organisation name (letters, digits, '-', '_' "
        "and '.', at most 96, no '--' or '..'); set it to one, or unset it for 't2t-vit'"
    )
    monkeypatch.setenv("T2T_VIT_HUB_ORG", "my-org.mirror_2")
    assert WEIGHTS["t2t-vit-7.official"].hub_repo_id == "my-org.mirror_2/t2t-vit-7.official"


# -- item 12: a file named like a hash-pinned release ---------------------------------------


def test_convert_of_a_file_named_like_a_pinned_release_with_other_bytes_claims_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = OFFICIAL_PRESETS["t2t_vit_t_14"]["state_dict_shapes"]
    state = {to_mmpretrain(k): torch.tensor(0.5).expand(s) for k, s in shapes.items()}
    name = WEIGHTS["t2t-vit-t-14.mmpretrain"].file_name
    ckpt = tmp_path / name
    torch.save({"meta": {}, "state_dict": state}, ckpt)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert not sha.startswith("f7378dd5")
    status = main(["convert", str(ckpt), str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines()[:3] == [
        f"note: {name} has the name of registry weights 't2t-vit-t-14.mmpretrain' but not "
        f"their SHA-256 ({sha[:8]}..., the name promises f7378dd5...): converted as a "
        "checkpoint of its own",
        "note: inferred preset 't2t-vit-t-14' from the checkpoint's shapes",
        "read mmpretrain weights from state_dict; model: t2t-vit-t-14",
    ]
    cfg = read_config(tmp_path / "out" / "config.json")["pretrained_cfg"]
    assert "metrics" not in cfg
    assert cfg["source"] == {
        "origin": f"converted from {name}",
        "file_name": name,
        "sha256": sha,
        "format": "mmpretrain",
    }
    card = (tmp_path / "out" / "README.md").read_text()
    assert "81.83" not in card
    assert "t2t-vit-t-14.mmpretrain" not in card


# -- item 13: a checkpoint file or a URL given to from_pretrained ---------------------------


def test_a_checkpoint_file_or_a_url_given_to_from_pretrained_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = tmp_path / "my_t2t_vit.pth.tar"
    ckpt.write_bytes(b"\x80\x02 anything")
    loads = (
        "from_pretrained loads a folder written by save_pretrained or t2t-vit convert "
        "(config.json + model.safetensors), a registry name or a Hub repository id"
    )

    def message(name: str | Path) -> str:
        with pytest.raises(PretrainedLoadError) as err:
            t2t_vit.from_pretrained(name)
        return str(err.value)

    assert message(ckpt) == (
        f"'{ckpt}' is a file; {loads}. For an original checkpoint, run "
        f"`t2t-vit convert {ckpt} OUT_DIR` and load OUT_DIR"
    )
    monkeypatch.chdir(tmp_path)
    assert message("my_t2t_vit.pth.tar").startswith("'my_t2t_vit.pth.tar' is a file; ")
    assert message("81.7_T2T_ViTt_14.pth.tar") == (
        f"'81.7_T2T_ViTt_14.pth.tar' does not exist; {loads}. For a checkpoint file, run "
        "`t2t-vit convert CHECKPOINT OUT_DIR` and load OUT_DIR"
    )
    assert message("https://huggingface.co/t2t-vit/t2t-vit-7.official/tree/main") == (
        "'https://huggingface.co/t2t-vit/t2t-vit-7.official/tree/main' is a web address; "
        "from_pretrained takes the Hub repository id: "
        "from_pretrained('t2t-vit/t2t-vit-7.official')"
    )
    url = f"https://github.com/yitu-opensource/T2T-ViT/releases/download/main/{T7}"
    assert message(url) == (
        f"'{url}' is a web address; {loads}. For a checkpoint file, download it, run "
        "`t2t-vit convert CHECKPOINT OUT_DIR` and load OUT_DIR"
    )
    saved = t2t_vit.save_pretrained(
        t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8),
        tmp_path / "saved",
    )
    assert message(saved / "model.safetensors") == (
        f"'{saved / 'model.safetensors'}' is a file of a saved folder: pass the folder '{saved}'"
    )
