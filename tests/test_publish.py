"""`t2t-vit publish`: originals from a loopback release server, converted into Hub folders,
uploaded (huggingface_hub's upload calls recorded), and loaded back through the fake Hub."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from checkpoints import T7, assert_state
from fakehub import FakeHub, ReleaseServer

import t2t_vit
from t2t_vit.cli import main
from t2t_vit.weights import WEIGHTS
from t2t_vit.weights.publish import publish


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """huggingface_hub's create_repo and upload_folder, recorded; uploads copied to tmp_path."""
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: HfApi, repo_id: str, **kwargs: Any) -> None:
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self: HfApi, **kwargs: Any) -> str:
        calls.append(("upload_folder", kwargs))
        shutil.copytree(kwargs["folder_path"], tmp_path / "uploaded" / kwargs["repo_id"])
        return f"commit of {kwargs['repo_id']}"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_dry_run_writes_a_loadable_folder_with_its_card_and_uploads_nothing(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    uploads: list[tuple[str, dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    releases.files[T7] = t7_file
    out = tmp_path / "out"
    status = main(["publish", "--org", "acme", "t2t-vit-7", "--out", str(out), "--dry-run"])
    stdout, _ = capsys.readouterr()
    sha = hashlib.sha256(t7_file).hexdigest()
    folder = out / "t2t-vit-7.official"
    assert status == 0
    assert stdout == (
        f"t2t-vit-7.official: {folder} (original sha256 {sha}); dry run, not uploaded\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    card = (folder / "README.md").read_text()
    entry = WEIGHTS["t2t-vit-7.official"]
    assert "# acme/t2t-vit-7.official" in card
    assert "model = t2t_vit.from_pretrained('acme/t2t-vit-7.official')" in card
    assert f"- original file: [{T7}]({entry.url})" in card
    assert f"- original file sha256: `{sha}`" in card
    assert "license: bsd-3-clause-clear" in card
    assert_state(t2t_vit.from_pretrained(folder), t7_state)
    assert uploads == []


def test_publish_uploads_each_folder_and_the_hub_then_serves_it(
    hub: FakeHub,
    releases: ReleaseServer,
    t7_file: bytes,
    t7_state: dict[str, torch.Tensor],
    uploads: list[tuple[str, dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases.files[T7] = t7_file
    hub.tokens.add("hf_good")
    done = publish("acme", ["t2t-vit-7"], out_dir=tmp_path / "out", token="hf_good")
    sha = hashlib.sha256(t7_file).hexdigest()
    assert [(d.repo_id, d.commit) for d in done] == [
        ("acme/t2t-vit-7.official", "commit of acme/t2t-vit-7.official")
    ]
    assert uploads[0] == (
        "create_repo",
        {"repo_id": "acme/t2t-vit-7.official", "exist_ok": True, "repo_type": "model"},
    )
    assert uploads[1][1]["commit_message"] == (
        f"t2t-vit-7.official: converted from {T7} (sha256 {sha})"
    )
    # What was uploaded is what a user of the organisation then downloads.
    hub.add("acme/t2t-vit-7.official", tmp_path / "uploaded" / "acme" / "t2t-vit-7.official")
    monkeypatch.setenv("T2T_VIT_HUB_ORG", "acme")
    releases.requests.clear()
    model = t2t_vit.from_pretrained("t2t-vit-7", source="hub", cache_dir=tmp_path / "hub-cache")
    assert_state(model, t7_state)
    assert hub.gets("model.safetensors") == 1
    assert releases.requests == []


def test_an_original_that_cannot_be_had_is_named(
    no_hub: str,
    releases: ReleaseServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["publish", "--org", "acme", "t2t-vit-7", "--out", str(tmp_path), "--dry-run"])
    _, stderr = capsys.readouterr()
    assert status == 2
    assert stderr == (
        f"t2t-vit publish: error: cannot publish t2t-vit-7.official: original file "
        f"{releases.mirror}/{T7}: HTTP 404 (Not Found)\n"
    )


def test_bad_names_and_orgs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^unknown pretrained model 't2t-vit-99'"):
        publish("acme", ["t2t-vit-99"], out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"^--org must be a Hub organisation or user name"):
        publish("acme/x", ["t2t-vit-7"], out_dir=tmp_path)


# -- the token and the Hub are checked first (issue 17, item 14) ---------------------------


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (
            "",
            'the Hub token is empty (an unset variable in --token "$HF_TOKEN"?); pass a '
            "token, or log in with `hf auth login`",
        ),
        (None, "no Hub token: log in with `hf auth login`, set HF_TOKEN, or pass --token"),
    ],
)
def test_publish_without_a_token_says_so_before_downloading(
    hub: FakeHub,
    releases: ReleaseServer,
    t7_file: bytes,
    uploads: list[tuple[str, dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    token: str | None,
    message: str,
) -> None:
    releases.files[T7] = t7_file
    argv = ["publish", "--org", "acme", "t2t-vit-7", "--out", str(tmp_path / "out")]
    status = main(argv + ([] if token is None else ["--token", token]))
    out, err = capsys.readouterr()
    assert (status, out, err) == (2, "", f"t2t-vit publish: error: {message}\n")
    assert releases.requests == []
    assert uploads == []
    assert not (tmp_path / "out").exists()


def test_publish_with_a_token_the_hub_refuses_says_so_before_downloading(
    hub: FakeHub,
    releases: ReleaseServer,
    t7_file: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    releases.files[T7] = t7_file
    status = main(
        ["publish", "--org", "acme", "t2t-vit-7", "--out", str(tmp_path), "--token", "hf_bad"]
    )
    _, err = capsys.readouterr()
    assert (status, err) == (
        2,
        f"t2t-vit publish: error: the Hub at {hub.url} refused the token (HTTP 401); "
        "check it, or log in again with `hf auth login`\n",
    )
    assert releases.requests == []


def test_publish_with_no_network_names_the_hub_before_downloading(
    no_hub: str,
    releases: ReleaseServer,
    t7_file: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    releases.files[T7] = t7_file
    status = main(
        ["publish", "--org", "acme", "t2t-vit-7", "--out", str(tmp_path), "--token", "hf_x"]
    )
    _, err = capsys.readouterr()
    assert (status, err) == (
        2,
        f"t2t-vit publish: error: cannot reach the Hub at {no_hub}: connection refused\n",
    )
    assert releases.requests == []


def test_push_to_hub_checks_the_token_and_the_hub_before_writing(
    no_hub: str, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    model = t2t_vit.T2TViT(img_size=32, embed_dim=16, depth=1, num_heads=2, token_dim=8)
    with pytest.raises(ValueError, match=r"^the Hub token is empty"):
        t2t_vit.push_to_hub(model, "acme/tiny", token="")
    with pytest.raises(ConnectionError, match=f"^cannot reach the Hub at {no_hub}: connection "):
        t2t_vit.push_to_hub(model, "acme/tiny", token="hf_x")
    assert uploads == []
