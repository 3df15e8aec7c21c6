"""Saving and loading the Hub layout from a local folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import t2t_vit
from t2t_vit.weights.serialization import read_config


def test_save_then_load_roundtrips_weights_config_and_outputs(tmp_path: Path) -> None:
    model = t2t_vit.T2TViT(
        img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10
    )
    model.eval()
    t2t_vit.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_args"]["embed_dim"] == 32
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    loaded = t2t_vit.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.pretrained_cfg is not None
    assert loaded.pretrained_cfg["crop_pct"] == 0.9


TINY: dict[str, Any] = dict(img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8)


def _tiny(**kwargs: Any) -> t2t_vit.T2TViT:
    return t2t_vit.T2TViT(**{**TINY, "num_classes": 3, **kwargs}).eval()


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert sorted(a.state_dict()) == sorted(b.state_dict())
    for key, value in b.state_dict().items():
        assert torch.equal(a.state_dict()[key], value), key


def test_config_json_is_timms_hub_layout_with_every_argument_in_model_args(
    tmp_path: Path,
) -> None:
    model = _tiny(tokens_type="transformer", in_chans=1)
    model.pretrained_cfg = {
        **t2t_vit.WEIGHTS["t2t-vit-t-14.mmpretrain"].pretrained_cfg(),
        "labels": ["a", "b", "c"],
        "input_size": [1, 32, 32],
        "mean": [0.5],
        "std": [0.25],
    }
    t2t_vit.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert list(config) == [
        "architecture",
        "num_classes",
        "num_features",
        "global_pool",
        "label_names",
        "model_args",
        "pretrained_cfg",
        "t2t_vit",
    ]
    assert (config["architecture"], config["num_classes"], config["num_features"]) == (
        "t2t_vit_t_14",
        3,
        32,
    )
    assert config["label_names"] == ["a", "b", "c"]
    assert config["model_args"] == {k: v for k, v in model.config.items() if k != "num_classes"}
    # Only fields of timm's PretrainedCfg, which timm builds a dataclass from.
    assert config["pretrained_cfg"] == {
        "input_size": [1, 32, 32],
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": [0.5],
        "std": [0.25],
        "architecture": "t2t_vit_t_14",
        "num_classes": 3,
        "fixed_input_size": False,
        "first_conv": "tokens_to_token.attention1.attn.qkv",
        "classifier": "head",
        "crop_mode": "center",
        "tag": "mmpretrain",
        "license": "apache-2.0",
    }
    entry = t2t_vit.WEIGHTS["t2t-vit-t-14.mmpretrain"]
    # What timm has no field for.
    assert config["t2t_vit"] == {
        "labels": ["a", "b", "c"],
        "metrics": entry.pretrained_cfg()["metrics"],
        "source": entry.pretrained_cfg()["source"],
    }
    loaded = t2t_vit.from_pretrained(tmp_path)
    _assert_same(loaded, model)
    assert loaded.pretrained_cfg == read_config(tmp_path / "config.json")["pretrained_cfg"]
    assert loaded.pretrained_cfg["labels"] == ["a", "b", "c"]
    assert loaded.pretrained_cfg["source"]["name"] == "t2t-vit-t-14.mmpretrain"


def test_a_label_sets_names_are_written_out_and_read_back_as_the_set(tmp_path: Path) -> None:
    model = _tiny(num_classes=10)
    model.pretrained_cfg = {"labels": "cifar-10"}
    t2t_vit.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["label_names"] == t2t_vit.load_labels("cifar-10")
    assert t2t_vit.from_pretrained(tmp_path).pretrained_cfg["labels"] == "cifar-10"
    # A folder that names its classes only as timm does (label_names) gets the set too.
    del config["t2t_vit"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert t2t_vit.from_pretrained(tmp_path).pretrained_cfg["labels"] == "cifar-10"


def test_a_folder_an_earlier_version_wrote_still_loads_and_is_written_anew(
    tmp_path: Path,
) -> None:
    model = _tiny(num_classes=10)
    old = tmp_path / "old"
    old.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, old / "model.safetensors")
    cfg = {
        **t2t_vit.default_pretrained_cfg((32, 32), 3, 10),
        "labels": "cifar-10",
        "metrics": {"top1": 97.5, "top5": None, "dataset": "cifar-10"},
        "source": {"origin": "converted from x.pth", "file_name": "x.pth", "sha256": "ab" * 32},
    }
    layout = {"architecture": "T2TViT", "model_args": model.config, "pretrained_cfg": cfg}
    (old / "config.json").write_text(json.dumps(layout))
    loaded = t2t_vit.from_pretrained(old)
    _assert_same(loaded, model)
    assert {k: loaded.pretrained_cfg[k] for k in cfg} == cfg
    new = t2t_vit.save_pretrained(loaded, tmp_path / "new")
    config = json.loads((new / "config.json").read_text())
    assert config["architecture"] == "t2t_vit_7"
    assert config["t2t_vit"] == {k: cfg[k] for k in ("labels", "metrics", "source")}
    assert read_config(new / "config.json")["pretrained_cfg"] == loaded.pretrained_cfg
    _assert_same(t2t_vit.from_pretrained(new), model)


def test_a_folder_with_timms_pytorch_model_bin_loads_weights_only(tmp_path: Path) -> None:
    model = _tiny()
    t2t_vit.save_pretrained(model, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    _assert_same(t2t_vit.from_pretrained(tmp_path), model)
    # A pickle that is not only tensors is refused, never run.
    torch.save({"state": model.state_dict(), "step": print}, tmp_path / "pytorch_model.bin")
    with pytest.raises(t2t_vit.PretrainedLoadError) as err:
        t2t_vit.from_pretrained(tmp_path)
    assert str(err.value).startswith(
        f"{tmp_path / 'pytorch_model.bin'} is not a readable state dict (read weights only: "
    )
    assert "\n" not in str(err.value)


def test_a_timm_folder_with_only_a_presets_name_builds_that_preset(tmp_path: Path) -> None:
    model = t2t_vit.create_model("t2t-vit-7", num_classes=4, img_size=224).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    config = {
        "architecture": "t2t_vit_7",
        "num_classes": 4,
        "label_names": ["w", "x", "y", "z"],
        "pretrained_cfg": {"input_size": [3, 224, 224], "crop_pct": 0.9, "mean": [0.5] * 3},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = t2t_vit.from_pretrained(tmp_path)
    assert loaded.config == model.config
    _assert_same(loaded, model)
    assert loaded.pretrained_cfg["labels"] == ["w", "x", "y", "z"]
    assert loaded.pretrained_cfg["mean"] == [0.5] * 3


@pytest.mark.parametrize("architecture", ["resnet18", "t2t_vit_15", 7])
def test_a_folder_of_another_architecture_is_refused_naming_it(
    tmp_path: Path, architecture: Any
) -> None:
    t2t_vit.save_pretrained(_tiny(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "architecture": architecture}))
    known = ", ".join(p.replace("-", "_") for p in t2t_vit.list_models())
    with pytest.raises(t2t_vit.PretrainedLoadError) as err:
        t2t_vit.from_pretrained(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'config.json'}: architecture {architecture!r} is not a T2T-ViT preset; "
        f"accepted: {known} (or 'T2TViT' with every argument in model_args)"
    )
