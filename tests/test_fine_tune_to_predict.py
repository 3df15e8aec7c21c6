"""From a new or fine-tuned model to predictions: class names, one-channel models and the
optimizer groups of a wrapped model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

import t2t_vit
from t2t_vit import T2TViT, param_groups_layer_decay
from t2t_vit.cli import main
from t2t_vit.weights.serialization import read_config

TINY: dict[str, Any] = dict(img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8)
#: The ImageNet mean and std averaged over the three channels, for one-channel models.
GREY_MEAN, GREY_STD = [0.449], [0.226]
#: timm's keys of every pretrained_cfg, next to the preprocessing (timm's save_for_hf reads
#: them); their values for the models of these tests.
TIMM_KEYS: dict[str, Any] = dict(
    architecture="t2t_vit_7",
    fixed_input_size=False,
    crop_mode="center",
    first_conv="tokens_to_token.attention1.kqv",
    classifier="head",
)


def _image(path: Path, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert(mode).save(path)
    return path


# -- item 5: naming the classes of a new model ----------------------------------------------


def test_class_names_set_on_a_create_model_model_reach_predict_the_folder_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = t2t_vit.create_model("t2t-vit-7", num_classes=2, img_size=64)
    default = t2t_vit.default_pretrained_cfg((64, 64), 3, 2)
    assert model.pretrained_cfg == {**default, **TIMM_KEYS, "num_classes": 2}
    model.pretrained_cfg["labels"] = ["cat", "dog"]  # the documented way
    image = _image(tmp_path / "x.png")
    (top,) = t2t_vit.predict(model, image, top_k=2)
    assert sorted(p.label for p in top) == ["cat", "dog"]
    folder = t2t_vit.save_pretrained(model, tmp_path / "pets")
    saved = read_config(folder / "config.json")["pretrained_cfg"]
    assert saved == {**default, **TIMM_KEYS, "num_classes": 2, "labels": ["cat", "dog"]}
    assert t2t_vit.from_pretrained(folder).pretrained_cfg == saved
    status = main(["predict", str(image), "--weights", str(folder), "--top-k", "2", "--json"])
    out = capsys.readouterr().out
    assert status == 0
    assert sorted(p["label"] for p in json.loads(out)[0]["predictions"]) == ["cat", "dog"]


def test_a_partial_pretrained_cfg_is_completed_with_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = T2TViT(num_classes=3, **TINY)
    model.pretrained_cfg = {"labels": ["a", "b", "c"]}
    expected = {
        **t2t_vit.default_pretrained_cfg((32, 32), 3, 3),
        **TIMM_KEYS,
        "num_classes": 3,
        "labels": ["a", "b", "c"],
    }
    assert t2t_vit.resolve_pretrained_cfg(model) == expected
    folder = t2t_vit.save_pretrained(model, tmp_path / "m")
    assert read_config(folder / "config.json")["pretrained_cfg"] == expected
    other = t2t_vit.save_pretrained(
        T2TViT(num_classes=3, **TINY), tmp_path / "n", pretrained_cfg={"labels": ["x", "y", "z"]}
    )
    saved = read_config(other / "config.json")["pretrained_cfg"]
    assert saved == {**expected, "labels": ["x", "y", "z"]}
    image = _image(tmp_path / "x.png")
    for path, labels in ((folder, {"a", "b", "c"}), (other, {"x", "y", "z"})):
        assert main(["predict", str(image), "--weights", str(path), "--json"]) == 0
        predictions = json.loads(capsys.readouterr().out)[0]["predictions"]
        assert {p["label"] for p in predictions} == labels


# -- item 6: a one-channel model ------------------------------------------------------------


def test_a_one_channel_model_has_one_channel_preprocessing_and_predicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = T2TViT(in_chans=1, num_classes=4, **TINY).eval()
    cfg = t2t_vit.resolve_pretrained_cfg(model)
    assert (cfg["input_size"], cfg["mean"], cfg["std"]) == ([1, 32, 32], GREY_MEAN, GREY_STD)
    assert t2t_vit.default_pretrained_cfg(in_chans=1)["mean"] == GREY_MEAN
    grey = _image(tmp_path / "grey.png", "L")
    colour = _image(tmp_path / "colour.png")
    x = t2t_vit.preprocess(grey, model)
    assert x.shape == (1, 1, 32, 32)
    # 8-bit L, normalised with the one-channel mean and std.
    crop = t2t_vit.EvalTransform.from_model(model).resize_crop(grey)
    assert crop.mode == "L"
    expected = (torch.from_numpy(np.asarray(crop, dtype=np.float32)) / 255 - 0.449) / 0.226
    torch.testing.assert_close(x[0, 0], expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        logits = model(x)
    (top,) = t2t_vit.predict(model, grey, top_k=1)
    assert top[0].class_index == int(logits.argmax())
    assert t2t_vit.predict(model, colour, top_k=1)[0][0].label in {"0", "1", "2", "3"}

    folder = t2t_vit.save_pretrained(model, tmp_path / "grey-model")
    saved = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    assert (saved["input_size"], saved["mean"], saved["std"]) == ([1, 32, 32], GREY_MEAN, GREY_STD)
    assert main(["predict", str(grey), str(colour), "--weights", str(folder), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert t2t_vit.create_model("t2t-vit-7", in_chans=1).pretrained_cfg["mean"] == GREY_MEAN


# -- item 7: layer decay through wrappers ---------------------------------------------------


def _summary(groups: list[dict[str, Any]]) -> list[tuple[int, float, float, list[str]]]:
    return [(g["layer_id"], g["weight_decay"], g["lr_scale"], g["param_names"]) for g in groups]


def test_layer_decay_groups_look_through_compile_and_data_parallel_wrappers(
    tmp_path: Path,
) -> None:
    model = T2TViT(tokens_type="transformer", num_classes=4, **TINY)
    plain = param_groups_layer_decay(model, lr=1e-3)
    assert len(plain) == 8  # depth 2: 4 layer ids, decayed and not
    compiled = torch.compile(model)
    for wrapped in (compiled, torch.nn.DataParallel(model), torch.nn.DataParallel(compiled)):
        groups = param_groups_layer_decay(wrapped, lr=1e-3)
        assert _summary(groups) == _summary(plain)
        assert [g["params"] for g in groups] == [g["params"] for g in plain]
    assert "cls_token" in _summary(param_groups_layer_decay(compiled))[1][3]

    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        assert _summary(param_groups_layer_decay(ddp, lr=1e-3)) == _summary(plain)
    finally:
        dist.destroy_process_group()


def test_layer_decay_refuses_fsdp1_in_one_line() -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel

    # FSDP1 needs an accelerator to wrap a model; an instance without its state is enough
    # here, since only its type is read.
    wrapper = FullyShardedDataParallel.__new__(FullyShardedDataParallel)
    torch.nn.Module.__init__(wrapper)
    with pytest.raises(ValueError, match="FullyShardedDataParallel") as err:
        param_groups_layer_decay(wrapper)
    assert str(err.value) == (
        "param_groups_layer_decay cannot read FullyShardedDataParallel's flattened "
        "parameters; use FSDP2 (torch.distributed.fsdp.fully_shard), "
        "which keeps the model and its parameter names"
    )


def test_an_untrained_model_of_a_weights_name_keeps_its_preprocessing_not_its_metrics() -> None:
    cifar = t2t_vit.get_weights("t2t-vit-14.cifar10").pretrained_cfg()
    cfg = t2t_vit.create_model("t2t-vit-14.cifar10").pretrained_cfg
    assert cfg is not None
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["mean"], cfg["std"]) == (
        cifar["crop_pct"],
        cifar["interpolation"],
        cifar["mean"],
        cifar["std"],
    )
    assert cfg["labels"] == "cifar-10"
    assert "metrics" not in cfg
    assert "source" not in cfg
    # Another class count keeps the preprocessing but not the ten CIFAR names.
    five = t2t_vit.create_model("t2t-vit-14.cifar10", num_classes=5).pretrained_cfg
    assert five is not None
    assert five["labels"] == ["0", "1", "2", "3", "4"]
    assert five["mean"] == cifar["mean"]
