"""`from_pretrained` through the real huggingface_hub download path, against a small
Hub-compatible server on 127.0.0.1 (`fakehub.py`) that serves converted tiny models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_ATOL, load_json, load_tensors
from fakehub import FakeHub

import t2t_vit
from t2t_vit import PretrainedLoadError


def _converted_tiny(name: str, out: Path) -> Path:
    """The tiny official fixture, wrapped as an official training checkpoint and converted."""
    cfg = load_json(f"{name}.json")
    state = {"module." + k: v for k, v in load_tensors(f"{name}.state_dict.safetensors").items()}
    ckpt = out.parent / f"{name}.pth.tar"
    torch.save({"state_dict": state, "state_dict_ema": state, "epoch": 3}, ckpt)
    t2t_vit.convert_checkpoint(ckpt, out, model=cfg["official_kwargs"])
    return out


def _golden_logits(model: torch.nn.Module, name: str) -> None:
    io = load_tensors(f"{name}.io.safetensors")
    with torch.no_grad():
        logits = model(io["input"])
    torch.testing.assert_close(logits, io["logits"], atol=TINY_ATOL, rtol=0)


def test_first_load_downloads_second_sends_only_metadata_requests(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.add("acme/tiny", _converted_tiny("tiny_transformer", tmp_path / "tiny"))
    cache = tmp_path / "cache"
    model = t2t_vit.from_pretrained("acme/tiny", cache_dir=cache)
    _golden_logits(model, "tiny_transformer")
    assert hub.gets("model.safetensors") == 1
    assert hub.gets("config.json") == 1
    first = len(hub.requests)

    again = t2t_vit.from_pretrained("acme/tiny", cache_dir=cache)
    _golden_logits(again, "tiny_transformer")
    # One HEAD without retries tells whether the Hub answers at all; then huggingface_hub
    # re-checks a branch name with one HEAD per file. Nothing is downloaded again.
    assert hub.requests[first:] == [
        ("HEAD", "/acme/tiny/resolve/main/config.json"),
        ("HEAD", "/acme/tiny/resolve/main/config.json"),
        ("HEAD", "/acme/tiny/resolve/main/model.safetensors"),
    ]


def test_load_pinned_to_a_cached_commit_makes_no_request(hub: FakeHub, tmp_path: Path) -> None:
    commit = hub.add("acme/tiny", _converted_tiny("tiny_performer", tmp_path / "tiny"))
    cache = tmp_path / "cache"
    t2t_vit.from_pretrained("acme/tiny", revision=commit, cache_dir=cache)
    seen = len(hub.requests)
    model = t2t_vit.from_pretrained("acme/tiny", revision=commit, cache_dir=cache)
    assert len(hub.requests) == seen
    _golden_logits(model, "tiny_performer")


def test_offline_mode_loads_from_the_cache_without_requests(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add("acme/tiny", _converted_tiny("tiny_transformer", tmp_path / "tiny"))
    cache = tmp_path / "cache"
    t2t_vit.from_pretrained("acme/tiny", cache_dir=cache)
    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = t2t_vit.from_pretrained("acme/tiny", cache_dir=cache)
    assert len(hub.requests) == seen
    _golden_logits(model, "tiny_transformer")


def test_offline_with_nothing_cached_says_so(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "empty-cache"
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("acme/tiny", cache_dir=cache)
    assert str(err.value) == (
        f"cannot load pretrained weights 'acme/tiny': Hub repository acme/tiny (revision main) "
        f"at {hub.url}: offline mode is on (HF_HUB_OFFLINE=1) and it is not in the cache. Load "
        "it once with network access (it is then cached), or unset HF_HUB_OFFLINE, or pass the "
        "path of a folder written by t2t_vit.save_pretrained or t2t-vit convert."
    )
    assert hub.requests == []


def test_revision_selects_the_weights_of_that_branch(hub: FakeHub, tmp_path: Path) -> None:
    hub.add("acme/tiny", _converted_tiny("tiny_transformer", tmp_path / "a"), branch="v1")
    other = t2t_vit.from_pretrained(_converted_tiny("tiny_performer", tmp_path / "b"))
    t2t_vit.save_pretrained(other, tmp_path / "b")
    hub.add("acme/tiny", tmp_path / "b", branch="main")
    cache = tmp_path / "cache"
    assert t2t_vit.from_pretrained("acme/tiny", cache_dir=cache).config["tokens_type"] == (
        "performer"
    )
    v1 = t2t_vit.from_pretrained("acme/tiny", revision="v1", cache_dir=cache)
    assert v1.config["tokens_type"] == "transformer"
    _golden_logits(v1, "tiny_transformer")


def test_registry_name_resolves_to_the_hub_org_from_the_environment(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T2T_VIT_HUB_ORG", "mirror")
    hub.add("mirror/t2t-vit-t-14.mmpretrain", _converted_tiny("tiny_transformer", tmp_path / "t"))
    model = t2t_vit.from_pretrained("t2t-vit-t-14", cache_dir=tmp_path / "cache")
    assert hub.gets("model.safetensors") == 1
    assert hub.requests[0] == ("HEAD", "/mirror/t2t-vit-t-14.mmpretrain/resolve/main/config.json")
    _golden_logits(model, "tiny_transformer")


def test_missing_repository_and_unreachable_original_are_both_named(
    hub: FakeHub, tmp_path: Path, refusing_url: str
) -> None:
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-14.cifar10", cache_dir=tmp_path)
    assert str(err.value) == (
        "cannot load pretrained weights 't2t-vit-14.cifar10': Hub repository "
        f"t2t-vit/t2t-vit-14.cifar10 (revision main) at {hub.url}: HTTP 404 (repository not "
        f"found, or private); original file {refusing_url}/releases/cifar10_t2t-vit_14_98.3.pth: "
        "connection refused. Check your network, or point HF_ENDPOINT or "
        "T2T_VIT_RELEASE_MIRROR at a mirror, or download "
        "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/"
        "cifar10_t2t-vit_14_98.3.pth yourself, run `t2t-vit convert "
        "cifar10_t2t-vit_14_98.3.pth OUT_DIR` and load OUT_DIR."
    )
    assert [a.answer for a in err.value.attempts] == [
        "HTTP 404 (repository not found, or private)",
        "connection refused",
    ]


def test_repository_without_weights_says_which_file_is_missing(
    hub: FakeHub, tmp_path: Path
) -> None:
    folder = _converted_tiny("tiny_transformer", tmp_path / "t")
    (folder / "model.safetensors").unlink()
    hub.add("acme/empty", folder)
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("acme/empty", cache_dir=tmp_path / "cache")
    assert str(err.value) == (
        f"cannot load pretrained weights 'acme/empty': Hub repository acme/empty (revision "
        f"main) at {hub.url}: HTTP 404 (no model.safetensors in the repository). Check the "
        "repository id, or pass the path of a folder written by t2t_vit.save_pretrained or "
        "t2t-vit convert."
    )


def test_unknown_revision_is_named(hub: FakeHub, tmp_path: Path) -> None:
    hub.add("acme/tiny", _converted_tiny("tiny_transformer", tmp_path / "t"))
    with pytest.raises(
        PretrainedLoadError, match=r"\(revision v9\) at .*: HTTP 404 \(revision not found\)"
    ):
        t2t_vit.from_pretrained("acme/tiny", revision="v9", cache_dir=tmp_path / "cache")


def test_truncated_download_is_reported_as_corrupt(hub: FakeHub, tmp_path: Path) -> None:
    folder = _converted_tiny("tiny_transformer", tmp_path / "t")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    hub.add("acme/broken", folder)
    with pytest.raises(PretrainedLoadError, match=r"is not a valid safetensors file \(truncated"):
        t2t_vit.from_pretrained("acme/broken", cache_dir=tmp_path / "cache")


def test_push_to_hub_uploads_the_folder_from_pretrained_reads(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict[str, Any]]] = []
    uploaded = tmp_path / "uploaded"

    def create_repo(self: HfApi, repo_id: str, **kwargs: Any) -> None:
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self: HfApi, **kwargs: Any) -> str:
        calls.append(("upload_folder", kwargs))
        shutil.copytree(kwargs["folder_path"], uploaded)
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    model = t2t_vit.from_pretrained(_converted_tiny("tiny_performer", tmp_path / "t"))
    hub.tokens.add("hf_test")  # the token is checked with the Hub before anything is written
    assert (
        t2t_vit.push_to_hub(model, "acme/tiny-performer", private=True, token="hf_test")
        == "commit-info"
    )
    assert calls[0] == (
        "create_repo",
        {"repo_id": "acme/tiny-performer", "private": True, "exist_ok": True, "repo_type": "model"},
    )
    assert calls[1][1]["repo_id"] == "acme/tiny-performer"
    assert sorted(p.name for p in uploaded.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert "model = t2t_vit.from_pretrained('acme/tiny-performer')" in (
        (uploaded / "README.md").read_text()
    )
    _golden_logits(t2t_vit.from_pretrained(uploaded), "tiny_performer")


def test_missing_repo_named_after_a_registry_entry_points_to_its_original(
    hub: FakeHub, tmp_path: Path
) -> None:
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("someone/t2t-vit-t-24.official", cache_dir=tmp_path)
    assert str(err.value) == (
        "cannot load pretrained weights 'someone/t2t-vit-t-24.official': Hub repository "
        f"someone/t2t-vit-t-24.official (revision main) at {hub.url}: HTTP 404 (repository "
        "not found, or private). from_pretrained('t2t-vit-t-24.official') loads these weights "
        "from the Hub organisation and falls back to the original release file "
        "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/"
        "82.6_T2T_ViTt_24.pth.tar."
    )


def test_a_hub_server_error_is_called_one_and_gets_advice_that_fits(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.status = 503
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("acme/tiny", cache_dir=tmp_path / "cache")
    assert str(err.value) == (
        f"cannot load pretrained weights 'acme/tiny': Hub repository acme/tiny (revision main) "
        f"at {hub.url}: server error (HTTP 503 Service Unavailable). The server failed: try "
        "again later, or pass the path of a local folder."
    )


def test_an_unreachable_hub_still_serves_its_cached_copy(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusing_url: str
) -> None:
    hub.add("acme/tiny", _converted_tiny("tiny_transformer", tmp_path / "tiny"))
    cache = tmp_path / "cache"
    t2t_vit.from_pretrained("acme/tiny", cache_dir=cache)
    monkeypatch.setenv("HF_ENDPOINT", refusing_url)
    _golden_logits(t2t_vit.from_pretrained("acme/tiny", cache_dir=cache), "tiny_transformer")
