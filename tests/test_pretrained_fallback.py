"""`from_pretrained` for registry names when the Hub has no weights: the original release file,
served by a loopback server, is downloaded, checked, converted, cached and loaded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from checkpoints import T7, assert_state, mmpretrain_checkpoint, official_checkpoint, to_bytes
from conftest import FULL_ATOL, OFFICIAL_PRESETS, load_json, load_tensors, recipe_state_dict
from fakehub import FakeHub, ReleaseServer

import t2t_vit
from t2t_vit import PretrainedLoadError
from t2t_vit.weights import WEIGHTS
from t2t_vit.weights.errors import Attempt
from t2t_vit.weights.serialization import read_config

#: Generous: a fallback takes well under a second here; the bound only catches retries.
FALLBACK_SECONDS = 30.0


def _converted(releases: ReleaseServer, name: str) -> Path:
    return releases.cache / "converted" / name


def test_unreachable_hub_falls_back_to_the_original_through_a_redirect(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    releases.files[T7] = t7_file
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="t2t_vit"):
        model = t2t_vit.from_pretrained("t2t-vit-7")
    assert time.perf_counter() - started < FALLBACK_SECONDS
    assert_state(model, t7_state)
    assert not model.training
    # The release URL answers 302 to the storage host, which serves the bytes.
    assert releases.requests == [
        ("GET", f"/releases/download/main/{T7}", ""),
        ("GET", f"/storage/{T7}", ""),
    ]
    folder = _converted(releases, "t2t-vit-7.official")
    sha = hashlib.sha256(t7_file).hexdigest()
    entry = WEIGHTS["t2t-vit-7.official"]
    assert [r.getMessage() for r in caplog.records if r.name == "t2t_vit"] == [
        f"t2t-vit-7: weights t2t-vit-7.official from the original release file "
        f"{releases.mirror}/{T7} (downloaded and converted into {folder}); Hub repository "
        f"t2t-vit/t2t-vit-7.official (revision main) at {no_hub}: connection refused"
    ]
    assert model.pretrained_cfg is not None
    assert model.pretrained_cfg["source"]["url"] == entry.url
    assert model.pretrained_cfg["source"]["sha256"] == sha
    assert model.pretrained_cfg["metrics"]["top1"] == 71.7
    card = (folder / "README.md").read_text()
    assert f"[{T7}]({entry.url})" in card
    assert f"- original file sha256: `{sha}`" in card
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["sha256"] == sha
    assert provenance["downloaded_from"] == f"{releases.mirror}/{T7}"
    assert (
        provenance["files"]["model.safetensors"]
        == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    )
    # The download is gone once converted; only the converted folder stays.
    assert sorted(p.name for p in (releases.cache / "downloads").iterdir()) == []


def test_create_model_pretrained_loads_through_from_pretrained(
    no_hub: str, releases: ReleaseServer, t7_file: bytes, t7_state: dict[str, torch.Tensor]
) -> None:
    releases.files[T7] = t7_file
    model = t2t_vit.create_model("t2t-vit-7", pretrained=True, drop_path_rate=0.1)
    assert_state(model, t7_state)
    assert model.config["drop_path_rate"] == 0.1
    with pytest.warns(UserWarning, match=r"num_classes=10 differs from the checkpoint's 1000"):
        ten = t2t_vit.create_model("t2t-vit-7", pretrained=True, num_classes=10, img_size=448)
    assert ten.head.weight.shape == (10, 256)
    assert ten.grid == (28, 28)
    expected = t2t_vit.resample_pos_embed(t7_state["pos_embed"], (28, 28), (14, 14))
    assert torch.equal(ten.pos_embed, expected)
    # One download served both: the second call loaded the converted cache.
    assert releases.gets(T7) == 1
    assert ten.pretrained_cfg is not None
    assert ten.pretrained_cfg["labels"] == [str(i) for i in range(10)]
    assert "metrics" not in ten.pretrained_cfg


def test_cached_reload_needs_no_request_even_offline_with_the_mirror_gone(
    hub: FakeHub,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    refusing_url: str,
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7")
    # The fake Hub answers 404 for the organisation's repository: one probe, no download.
    assert hub.requests == [("HEAD", "/t2t-vit/t2t-vit-7.official/resolve/main/config.json")]
    seen = len(releases.requests)
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", refusing_url)
    assert_state(t2t_vit.from_pretrained("t2t-vit-7"), t7_state)
    assert_state(t2t_vit.create_model("t2t-vit-7", pretrained=True), t7_state)
    assert hub.requests == []
    assert len(releases.requests) == seen


@pytest.mark.slow
def test_official_checkpoint_from_the_release_reproduces_the_official_logits(
    no_hub: str, releases: ReleaseServer
) -> None:
    recipe = load_json("t2t_vit_14_recipe.json")
    state = recipe_state_dict(OFFICIAL_PRESETS["t2t_vit_14"]["state_dict_shapes"], recipe["seed"])
    releases.files["81.5_T2T_ViT_14.pth.tar"] = to_bytes(official_checkpoint(state, state))
    model = t2t_vit.from_pretrained("t2t-vit-14", source="original")
    golden = load_tensors("t2t_vit_14_recipe.io.safetensors")
    with torch.no_grad():
        logits = model(golden["input"])
    torch.testing.assert_close(logits, golden["logits"], atol=FULL_ATOL, rtol=0)


def _register(monkeypatch: pytest.MonkeyPatch, name: str, url: str, base: str) -> None:
    entry = dataclasses.replace(WEIGHTS[base], name=name, url=url)
    monkeypatch.setitem(WEIGHTS, name, entry)


@pytest.mark.slow
def test_mmpretrain_file_with_a_matching_hash_reproduces_the_official_logits(
    hub: FakeHub, releases: ReleaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_json("t2t_vit_t_14_recipe.json")
    state = recipe_state_dict(OFFICIAL_PRESETS["t2t_vit_t_14"]["state_dict_shapes"], recipe["seed"])
    data = to_bytes(mmpretrain_checkpoint(state))
    # OpenMMLab's names end in the first 8 hex digits of the file's SHA-256.
    file = f"t2t-vit-t-14_8xb64_in1k_20211220-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    releases.files[file] = data
    _register(monkeypatch, "t2t-vit-t-14.mmtest", "https://example.org/v0/" + file,
              "t2t-vit-t-14.mmpretrain")  # fmt: skip
    model = t2t_vit.from_pretrained("t2t-vit-t-14.mmtest")
    golden = load_tensors("t2t_vit_t_14_recipe.io.safetensors")
    with torch.no_grad():
        logits = model(golden["input"])
    torch.testing.assert_close(logits, golden["logits"], atol=FULL_ATOL, rtol=0)
    assert releases.requests[0] == ("GET", f"/releases/download/main/{file}", "")


def test_a_download_whose_hash_differs_from_its_name_is_refused_and_deleted(
    no_hub: str, releases: ReleaseServer
) -> None:
    entry = WEIGHTS["t2t-vit-t-14.mmpretrain"]
    data = to_bytes({"state_dict": {"backbone.cls_token": torch.zeros(1, 1, 384)}})
    releases.files[entry.file_name] = data
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-t-14.mmpretrain", source="original")
    sha = hashlib.sha256(data).hexdigest()
    assert str(err.value) == (
        f"cannot load pretrained weights 't2t-vit-t-14.mmpretrain': original file "
        f"{releases.mirror}/{entry.file_name}: SHA-256 mismatch: the file name promises "
        f"f7378dd5..., the download is {sha}; deleted it. The file served is not the "
        f"published one: check what {releases.mirror}/{entry.file_name} serves (a proxy or "
        "mirror may change files), or point T2T_VIT_RELEASE_MIRROR at a faithful copy."
    )
    assert list((releases.cache / "downloads").iterdir()) == []
    assert not _converted(releases, entry.name).exists()


def test_hub_that_never_answers_is_given_up_after_its_timeout(
    silent_url: str,
    releases: ReleaseServer,
    t7_file: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", silent_url)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    releases.files[T7] = t7_file
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="t2t_vit"):
        t2t_vit.from_pretrained("t2t-vit-7")
    assert time.perf_counter() - started < FALLBACK_SECONDS
    assert (
        caplog.records[-1]
        .getMessage()
        .endswith(
            f"Hub repository t2t-vit/t2t-vit-7.official (revision main) at {silent_url}: "
            "timed out after 1 s"
        )
    )


@pytest.mark.parametrize(
    ("fail", "answer"),
    [
        (None, "HTTP 404 (Not Found)"),
        (500, "server error (HTTP 500 Internal Server Error)"),
        (503, "server error (HTTP 503 Service Unavailable)"),
        ("reset", "connection reset by the server"),
    ],
)
def test_every_place_tried_is_named_with_what_it_answered(
    hub: FakeHub,
    releases: ReleaseServer,
    t7_file: bytes,
    fail: int | str | None,
    answer: str,
) -> None:
    hub.status = 500
    if fail is not None:
        releases.files[T7] = t7_file
        releases.fail[T7] = fail
    started = time.perf_counter()
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert time.perf_counter() - started < FALLBACK_SECONDS
    # A 5xx is a server error, not "unreachable"; nothing escapes as a transport exception.
    assert [str(a) for a in err.value.attempts] == [
        f"Hub repository t2t-vit/t2t-vit-7.official (revision main) at {hub.url}: server "
        "error (HTTP 500 Internal Server Error)",
        f"original file {releases.mirror}/{T7}: {answer}",
    ]
    assert str(err.value).startswith(
        "cannot load pretrained weights 't2t-vit-7': " + "; ".join(map(str, err.value.attempts))
    )
    assert err.value.__cause__ is None


def test_offline_with_nothing_cached_names_both_places(
    no_hub: str, releases: ReleaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    folder = _converted(releases, "t2t-vit-7.official")
    assert [a.answer for a in err.value.attempts] == [
        "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the cache",
        f"offline mode is on (HF_HUB_OFFLINE=1) and {folder} holds no converted copy",
    ]
    assert str(err.value).endswith(
        "Load it once with network access (it is then cached), or unset HF_HUB_OFFLINE, or "
        "pass the path of a folder written by t2t_vit.save_pretrained or t2t-vit convert."
    )
    assert releases.requests == []


def test_an_interrupted_download_resumes_where_it_stopped(
    no_hub: str, releases: ReleaseServer, t7_file: bytes, t7_state: dict[str, torch.Tensor]
) -> None:
    releases.files[T7] = t7_file
    releases.fail[T7] = ("cut", 100_000)
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert err.value.attempts[-1].answer == (
        f"the connection closed after 100000 of {len(t7_file)} bytes; the next call resumes "
        "the download"
    )
    part = releases.cache / "downloads" / f"{T7}.incomplete"
    assert part.read_bytes() == t7_file[:100_000]
    assert not _converted(releases, "t2t-vit-7.official").exists()

    del releases.fail[T7]
    assert_state(t2t_vit.from_pretrained("t2t-vit-7"), t7_state)
    assert releases.requests[-1] == ("GET", f"/storage/{T7}", "bytes=100000-")
    assert not part.exists()


def test_a_cached_file_that_no_longer_matches_its_hash_is_made_again(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7")
    weights = _converted(releases, "t2t-vit-7.official") / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert_state(t2t_vit.from_pretrained("t2t-vit-7"), t7_state)
    assert releases.gets(T7) == 2
    assert any("no longer matches its recorded SHA-256" in r.getMessage() for r in caplog.records)


def test_force_download_downloads_and_converts_again(
    no_hub: str, releases: ReleaseServer, t7_file: bytes
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7")
    t2t_vit.from_pretrained("t2t-vit-7")
    assert releases.gets(T7) == 1
    t2t_vit.from_pretrained("t2t-vit-7", force_download=True)
    assert releases.gets(T7) == 2


class Payload:
    """A class whose unpickling would run code: weights-only loading must refuse it."""

    ran = False

    def __setstate__(self, state: object) -> None:
        Payload.ran = True


def test_a_downloaded_file_is_read_weights_only_and_nothing_half_made_is_kept(
    no_hub: str, releases: ReleaseServer, t7_state: dict[str, torch.Tensor]
) -> None:
    checkpoint = official_checkpoint(t7_state, t7_state)
    checkpoint["extra"] = Payload()
    releases.files[T7] = to_bytes(checkpoint)
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    sha = hashlib.sha256(releases.files[T7]).hexdigest()
    entry = WEIGHTS["t2t-vit-7.official"]
    # The advice is what works for from_pretrained, which takes no trust_checkpoint.
    assert str(err.value) == (
        f"cannot load pretrained weights 't2t-vit-7': Hub repository t2t-vit/t2t-vit-7.official "
        f"(revision main) at {no_hub}: connection refused; original file {releases.mirror}/{T7}: "
        f"downloaded (SHA-256 {sha}) but refused to unpickle it: it holds objects of "
        "test_pretrained_fallback.Payload, which weights-only loading does not rebuild; "
        f"deleted it. If you trust where it comes from, download {entry.url} yourself, run "
        f"`t2t-vit convert --trust-checkpoint {T7} OUT_DIR` (full pickle, which can run code "
        "from the file) and load OUT_DIR with from_pretrained."
    )
    assert not Payload.ran
    # The refused download is not kept (the documentation says downloads are removed).
    assert list((releases.cache / "downloads").iterdir()) == []
    assert not (releases.cache / "converted" / "t2t-vit-7.official").exists()
    assert [p for p in releases.cache.rglob("*") if ".tmp-" in p.name] == []


def test_source_hub_never_downloads_the_original_and_source_original_never_asks_the_hub(
    hub: FakeHub, releases: ReleaseServer, t7_file: bytes
) -> None:
    releases.files[T7] = t7_file
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7", source="hub")
    assert [a.answer for a in err.value.attempts] == ["HTTP 404 (repository not found, or private)"]
    assert releases.requests == []
    hub.requests.clear()
    t2t_vit.from_pretrained("t2t-vit-7", source="original")
    assert hub.requests == []
    with pytest.raises(
        ValueError, match=r"^unknown source 'github'; accepted: auto, hub, original"
    ):
        t2t_vit.from_pretrained("t2t-vit-7", source="github")


def test_a_hub_revision_never_falls_back(no_hub: str, releases: ReleaseServer) -> None:
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7", revision="v2")
    assert len(err.value.attempts) == 1
    assert releases.requests == []


def test_the_cache_lives_where_the_documentation_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from t2t_vit.weights.release import cache_root, original_url

    monkeypatch.delenv("T2T_VIT_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_root() == tmp_path / "hf" / "t2t-vit"
    monkeypatch.setenv("T2T_VIT_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg" / "t2t-vit"
    monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", "https://mirror.example/t2t/")
    assert original_url(WEIGHTS["t2t-vit-7.official"]) == "https://mirror.example/t2t/" + T7
    monkeypatch.delenv("T2T_VIT_RELEASE_MIRROR")
    assert original_url(WEIGHTS["t2t-vit-7.official"]) == WEIGHTS["t2t-vit-7.official"].url


def test_cache_dir_holds_the_converted_original(
    no_hub: str, releases: ReleaseServer, t7_file: bytes, tmp_path: Path
) -> None:
    releases.files[T7] = t7_file
    t2t_vit.from_pretrained("t2t-vit-7", cache_dir=tmp_path / "here")
    folder = tmp_path / "here" / "t2t-vit" / "converted" / "t2t-vit-7.official"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "provenance.json",
    ]


def test_a_model_with_another_head_does_not_claim_imagenet_labels(tmp_path: Path) -> None:
    model = t2t_vit.create_model("t2t-vit-7", num_classes=10)
    folder = t2t_vit.save_pretrained(model, tmp_path / "ten")
    cfg = read_config(folder / "config.json")["pretrained_cfg"]
    assert cfg["labels"] == [str(i) for i in range(10)]
    # Labels of another head are refused, never replaced silently (issue 23, item 9) ...
    model.pretrained_cfg = {**cfg, "labels": "imagenet-1k", "metrics": {"top1": 71.7}}
    with pytest.raises(ValueError, match=r"^pretrained_cfg labels 'imagenet-1k' name 1000 "):
        t2t_vit.save_pretrained(model, folder)
    # ... and reset_classifier names the new head's classes by index, without the metrics.
    model.reset_classifier(10)
    t2t_vit.save_pretrained(model, folder)
    cfg = read_config(folder / "config.json")["pretrained_cfg"]
    assert cfg["labels"] == [str(i) for i in range(10)]
    assert "metrics" not in cfg
    with pytest.raises(ValueError, match=r"^pretrained_cfg labels 'imagenet-1k' name 1000 "):
        t2t_vit.save_pretrained(model, folder, pretrained_cfg={"labels": "imagenet-1k"})


def test_concurrent_first_loads_download_and_convert_once(
    no_hub: str, releases: ReleaseServer, t7_file: bytes, t7_state: dict[str, torch.Tensor]
) -> None:
    releases.files[T7] = t7_file
    with ThreadPoolExecutor(max_workers=3) as pool:
        models = list(pool.map(lambda _: t2t_vit.from_pretrained("t2t-vit-7"), range(3)))
    for model in models:
        assert_state(model, t7_state)
    # The others waited on the cache's lock, then found the converted folder.
    assert releases.gets(T7) == 1


def test_the_command_line_says_where_the_weights_came_from(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from PIL import Image

    from t2t_vit.cli import main

    releases.files[T7] = t7_file
    image = tmp_path / "grey.png"
    Image.new("RGB", (240, 260), (120, 120, 120)).save(image)
    assert main(["predict", str(image), "--model", "t2t-vit-7", "--top-k", "1"]) == 0
    out, err = capsys.readouterr()
    folder = releases.cache / "converted" / "t2t-vit-7.official"
    # The download's progress bar (on a terminal) is cleared; the last line says where from.
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(
        f"t2t-vit: t2t-vit-7: weights t2t-vit-7.official from the original release file "
        f"{releases.mirror}/{T7} (downloaded and converted into {folder}); "
    )
    assert out.splitlines()[0] == str(image)


def test_a_cache_folder_that_cannot_be_written_is_named(
    no_hub: str, releases: ReleaseServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("T2T_VIT_CACHE", str(blocker / "cache"))
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained("t2t-vit-7")
    assert err.value.attempts[-1] == Attempt(
        f"original file {releases.mirror}/{T7}",
        f"cannot write the cache folder {blocker / 'cache'} (Not a directory)",
    )
    assert releases.requests == []


def test_a_local_folder_named_like_registered_weights_is_loaded_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8)
    t2t_vit.save_pretrained(model, tmp_path / "t2t-vit-7")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="t2t_vit"):
        loaded = t2t_vit.from_pretrained("t2t-vit-7")
        t2t_vit.from_pretrained("./t2t-vit-7")
    assert loaded.config["depth"] == 1
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"t2t-vit-7: loaded the local folder {tmp_path / 't2t-vit-7'}, which has the name of "
            "registered weights; to load those, run from another folder or rename this one",
        ),
        ("DEBUG", f"./t2t-vit-7: weights from the local folder {tmp_path / 't2t-vit-7'}"),
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HF_HUB_DOWNLOAD_TIMEOUT", "0"), ("HF_HUB_ETAG_TIMEOUT", "-1"), ("HF_HUB_ETAG_TIMEOUT", "x")],
)
def test_a_timeout_variable_that_is_no_positive_number_is_named(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    releases.files[T7] = t7_file
    with pytest.raises(
        ValueError,
        match=f"^{variable}={value!r} must be a number of seconds greater than 0 "
        r"\(it is huggingface_hub's setting; unset it for the default\)$",
    ):
        t2t_vit.from_pretrained("t2t-vit-7")
