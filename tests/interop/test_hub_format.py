"""The Hub folder both ways: a folder `t2t_vit.save_pretrained` (or `publish`) writes loads in
timm (`local-dir:`, `hf-hub:`) and in transformers (`AutoModelForImageClassification`,
`pipeline`); a folder timm's `save_for_hf` / `push_to_hf_hub` writes loads with
`t2t_vit.from_pretrained`. Always the folder's own weights, exactly.

Interop tests: they run in CI's interop venv (`pytest -m interop`), where timm and
transformers are installed; a missing package there fails the import, never skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from checkpoints import T7, assert_state
from fakehub import FakeHub, ReleaseServer
from PIL import Image

import t2t_vit

pytestmark = pytest.mark.interop

TINY: dict[str, Any] = dict(img_size=64, embed_dim=32, depth=3, num_heads=2, token_dim=8)


def _timm() -> Any:
    import timm

    import t2t_vit.timm  # noqa: F401  (registers the models)

    return timm


def _tiny(num_classes: int = 3, seed: int = 1, **kwargs: Any) -> t2t_vit.T2TViT:
    """A tiny T2T-ViT-7 with seeded weights that no registry entry has."""
    torch.manual_seed(seed)
    model = t2t_vit.create_model("t2t-vit-7", num_classes=num_classes, **{**TINY, **kwargs})
    return model.eval()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (90, 70, 3), dtype=np.uint8))


def _same_logits(a: torch.nn.Module, b: torch.nn.Module, size: int = 64) -> None:
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), atol=1e-6, rtol=0)


# -- this library's folder in timm ---------------------------------------------------------


def test_a_save_pretrained_folder_loads_in_timm_as_local_dir_with_its_own_weights(
    tmp_path: Path,
) -> None:
    timm = _timm()
    model = _tiny(t2t_layers=[[7, 4, 2], [3, 2, 1]], tokens_type="transformer")
    model.pretrained_cfg["labels"] = ["cat", "dog", "eel"]
    folder = t2t_vit.save_pretrained(model, tmp_path / "pets")
    config = json.loads((folder / "config.json").read_text())
    # timm's keys, and every other T2TViT argument in model_args (num_classes is at the top:
    # transformers passes its own next to model_args).
    assert config["architecture"] == "t2t_vit_t_14"
    assert (config["num_classes"], config["num_features"]) == (3, 32)
    assert config["label_names"] == ["cat", "dog", "eel"]
    assert config["model_args"] == {k: v for k, v in model.config.items() if k != "num_classes"}
    assert config["pretrained_cfg"]["architecture"] == "t2t_vit_t_14"

    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert isinstance(loaded, t2t_vit.T2TViT)
    assert loaded.training  # timm's habit
    assert loaded.config == model.config
    assert_state(loaded, _state(model))
    _same_logits(loaded, model)
    assert loaded.pretrained_cfg["labels"] == ["cat", "dog", "eel"]
    # The caller's keywords apply as they do in from_pretrained: a new head, the rest kept.
    with pytest.warns(UserWarning, match="num_classes=5 differs from the checkpoint's 3"):
        five = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=5)
    assert five.head.weight.shape == (5, 32)
    assert torch.equal(five.blocks[2].mlp.fc2.weight, model.blocks[2].mlp.fc2.weight)
    # Untrained: the folder's architecture and preprocessing, random weights.
    fresh = timm.create_model(f"local-dir:{folder}")
    assert fresh.config == model.config
    assert not torch.equal(fresh.head.weight, model.head.weight)
    assert fresh.pretrained_cfg["labels"] == ["cat", "dog", "eel"]
    features = timm.create_model(f"local-dir:{folder}", pretrained=True, features_only=True)
    assert isinstance(features, t2t_vit.T2TFeatures)
    assert torch.equal(features.blocks[2].mlp.fc2.weight, model.blocks[2].mlp.fc2.weight)

    # The folder's features_only takes the same keywords and defaults as a preset's: the
    # pyramid (it used to give levels="all"), output_stride, timm's wrappers.
    def same_model(**kwargs: Any) -> Any:
        return timm.create_model(config["architecture"], **config["model_args"], **kwargs)

    preset = same_model(features_only=True)
    assert features.feature_info.module_name()[-1] == "downsample"
    assert features.feature_info.module_name() == preset.feature_info.module_name()
    assert features.feature_info.reduction() == preset.feature_info.reduction()
    capped_preset = same_model(features_only=True, output_stride=8)
    assert capped_preset.feature_info.reduction() == [4, 8, 8]
    for pretrained in (True, False):
        capped = timm.create_model(
            f"local-dir:{folder}", pretrained=pretrained, features_only=True, output_stride=8
        )
        assert capped.feature_info.reduction() == [4, 8, 8]
    getter = timm.create_model(
        f"local-dir:{folder}",
        pretrained=True,
        features_only=True,
        feature_cls="getter",
        out_indices=(0, -1),
    )
    assert type(getter).__name__ == "FeatureGetterNet"
    assert getter.pretrained_cfg["labels"] == ["cat", "dog", "eel"]
    assert getter.pretrained_cfg["num_classes"] == 0


def test_a_folder_under_a_registered_tag_loads_its_own_weights_never_the_registrys(
    no_hub: str, releases: ReleaseServer, tmp_path: Path
) -> None:
    timm = _timm()
    model = _tiny(num_classes=1000, seed=5, img_size=224, embed_dim=256, depth=7, num_heads=4)
    model.pretrained_cfg = t2t_vit.WEIGHTS["t2t-vit-7.official"].pretrained_cfg()
    folder = t2t_vit.save_pretrained(model, tmp_path / "mine")
    cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    assert (cfg["architecture"], cfg["tag"], cfg["license"]) == (
        "t2t_vit_7",
        "official",
        "bsd-3-clause-clear",
    )
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert_state(loaded, _state(model))
    # Neither the Hub (refusing) nor the release server was asked for the tag's weights.
    assert releases.gets(T7) == 0


# -- timm's folder in this library and in timm -----------------------------------------------


@pytest.mark.parametrize("safe", [False, True, "both"])
def test_a_folder_timms_save_for_hf_writes_loads_with_from_pretrained_and_timm(
    tmp_path: Path, safe: bool | str
) -> None:
    timm = _timm()
    from timm.models import save_for_hf

    torch.manual_seed(2)
    model = timm.create_model("t2t_vit_t_14", num_classes=4, **TINY).eval()
    model.pretrained_cfg["labels"] = ["a", "b", "c", "d"]
    save_for_hf(model, tmp_path / "timm", safe_serialization=safe)
    files = sorted(p.name for p in (tmp_path / "timm").iterdir())
    expected = {False: ["pytorch_model.bin"], True: ["model.safetensors"]}
    assert files == ["config.json", *expected.get(safe, ["model.safetensors", "pytorch_model.bin"])]

    ours = t2t_vit.from_pretrained(tmp_path / "timm")
    assert ours.config == model.config
    assert_state(ours, _state(model))
    _same_logits(ours, model)
    assert ours.pretrained_cfg["labels"] == ["a", "b", "c", "d"]
    again = timm.create_model(f"local-dir:{tmp_path / 'timm'}", pretrained=True)
    assert_state(again, _state(model))


def test_save_for_hf_of_a_loaded_model_round_trips_through_both_libraries(
    tmp_path: Path,
) -> None:
    _timm()
    from timm.models import save_for_hf

    model = _tiny(num_classes=2, seed=3)
    ours = t2t_vit.save_pretrained(model, tmp_path / "ours")
    loaded = t2t_vit.from_pretrained(ours)
    save_for_hf(loaded, tmp_path / "timm", safe_serialization=True)
    config = json.loads((tmp_path / "timm" / "config.json").read_text())
    assert (config["architecture"], config["num_classes"]) == ("t2t_vit_7", 2)
    back = t2t_vit.from_pretrained(tmp_path / "timm")
    assert_state(back, _state(model))
    assert back.config == model.config
    # And written again by this library: the same folder as the first.
    t2t_vit.save_pretrained(back, tmp_path / "again")
    first = json.loads((ours / "config.json").read_text())
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == first


# -- hf-hub: repositories of either kind -----------------------------------------------------


@pytest.fixture
def pushes(monkeypatch: pytest.MonkeyPatch, hub: FakeHub, tmp_path: Path) -> list[str]:
    """huggingface_hub's create_repo, file_exists and upload_folder, as timm's push_to_hf_hub
    calls them: each upload becomes a commit of the fake Hub. timm downloads from
    huggingface_hub's endpoint, which it reads from HF_ENDPOINT once, at import (this
    library reads HF_ENDPOINT per call): it is the fake Hub's too."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.hf_api import RepoUrl

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    pushed: list[str] = []

    def create_repo(self: HfApi, repo_id: str, **kwargs: Any) -> RepoUrl:
        return RepoUrl(f"{hub.url}/{repo_id}", endpoint=hub.url)

    def file_exists(self: HfApi, repo_id: str, filename: str, **kwargs: Any) -> bool:
        return False

    def upload_folder(self: HfApi, *, repo_id: str, folder_path: str, **kwargs: Any) -> str:
        copy = tmp_path / "pushed" / repo_id
        shutil.copytree(folder_path, copy)
        pushed.append(repo_id)
        return hub.add(repo_id, copy)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "file_exists", file_exists)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return pushed


def test_hf_hub_repositories_of_either_kind_load_in_timm_and_in_this_library(
    hub: FakeHub, pushes: list[str], tmp_path: Path
) -> None:
    timm = _timm()
    from timm.models import push_to_hf_hub

    ours = _tiny(num_classes=3, seed=4)
    first = hub.add("acme/ours", t2t_vit.save_pretrained(ours, tmp_path / "ours"))
    torch.manual_seed(6)
    theirs = timm.create_model("t2t_vit_7", num_classes=2, **TINY).eval()
    push_to_hf_hub(theirs, "acme/theirs")
    assert pushes == ["acme/theirs"]
    assert sorted(p.name for p in (tmp_path / "pushed" / "acme" / "theirs").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
    ]
    for repo, model in (("acme/ours", ours), ("acme/theirs", theirs)):
        through_timm = timm.create_model(f"hf-hub:{repo}", pretrained=True)
        assert_state(through_timm, _state(model))
        _same_logits(through_timm, model)
        through_us = t2t_vit.from_pretrained(repo)
        assert_state(through_us, _state(model))
    # A revision after "@" pins the weights too, not only timm's read of config.json.
    newer = _tiny(num_classes=3, seed=8)
    hub.add("acme/ours", t2t_vit.save_pretrained(newer, tmp_path / "newer"))
    assert_state(timm.create_model("hf-hub:acme/ours", pretrained=True), _state(newer))
    pinned = timm.create_model(f"hf-hub:acme/ours@{first}", pretrained=True)
    assert_state(pinned, _state(ours))


# -- transformers ----------------------------------------------------------------------------


def _transformers_agree(folder: Path, model: t2t_vit.T2TViT, size: int) -> None:
    """transformers' classifier gives the model's logits; its pipeline the library's top 3."""
    from transformers import AutoModelForImageClassification, pipeline

    hf = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert type(hf).__name__ == "TimmWrapperForImageClassification"
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).logits, model.eval()(x), atol=1e-6, rtol=0)
    labels = t2t_vit.resolve_labels(model)
    assert [hf.config.id2label[i] for i in range(len(labels))] == labels
    classify = pipeline("image-classification", model=str(folder))
    for seed in range(2):
        image = _image(seed)
        got = classify(image, top_k=3)
        (expected,) = t2t_vit.predict(model, image, top_k=3)
        assert [g["label"] for g in got] == [p.label for p in expected]
        np.testing.assert_allclose(
            [g["score"] for g in got], [p.probability for p in expected], atol=1e-5
        )


def test_transformers_runs_a_save_pretrained_folder_exactly(tmp_path: Path) -> None:
    _timm()
    model = _tiny(num_classes=3, seed=7)
    model.pretrained_cfg.update(labels=["cat", "dog", "eel"], crop_pct=0.875, mean=[0.5] * 3)
    folder = t2t_vit.save_pretrained(model, tmp_path / "pets")
    _transformers_agree(folder, model, 64)


def test_transformers_runs_a_publish_folder_exactly(
    no_hub: str, releases: ReleaseServer, t7_file: bytes, tmp_path: Path
) -> None:
    _timm()
    from t2t_vit.weights.publish import publish

    releases.files[T7] = t7_file
    (done,) = publish("acme", ["t2t-vit-7"], out_dir=tmp_path / "out", dry_run=True)
    config = json.loads((done.folder / "config.json").read_text())
    assert (config["architecture"], config["pretrained_cfg"]["tag"]) == ("t2t_vit_7", "official")
    model = t2t_vit.from_pretrained(done.folder)
    # ImageNet-1k: transformers names the classes as this library does.
    assert config["label_names"] == t2t_vit.load_labels("imagenet-1k")
    _transformers_agree(done.folder, model, 224)
    # The model card says so.
    card = (done.folder / "README.md").read_text()
    assert 'timm.create_model("hf-hub:acme/t2t-vit-7.official", pretrained=True)' in card
    assert 'pipeline("image-classification", model="acme/t2t-vit-7.official")' in card


# -- bad input -------------------------------------------------------------------------------


def test_a_folder_of_another_architecture_is_refused_naming_it(tmp_path: Path) -> None:
    timm = _timm()
    from timm.models import save_for_hf

    save_for_hf(timm.create_model("resnet18", num_classes=2), tmp_path / "resnet")
    known = ", ".join(name.replace("-", "_") for name in t2t_vit.list_models())
    expected = (
        f"{tmp_path / 'resnet' / 'config.json'}: architecture 'resnet18' is not a T2T-ViT "
        f"preset; accepted: {known} (or 'T2TViT' with every argument in model_args)"
    )
    with pytest.raises(t2t_vit.PretrainedLoadError) as ours:
        t2t_vit.from_pretrained(tmp_path / "resnet")
    assert str(ours.value) == expected
    # The same line where timm is handed such a folder for a T2T-ViT.
    with pytest.raises(t2t_vit.PretrainedLoadError) as theirs:
        timm.create_model(
            "t2t_vit_7",
            pretrained=True,
            pretrained_cfg={"source": "local-dir", "file": str(tmp_path / "resnet")},
        )
    assert str(theirs.value) == expected
