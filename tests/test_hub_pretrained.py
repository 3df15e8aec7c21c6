"""`from_pretrained` options on local folders: new heads, new input sizes, placement, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import load_tensors

import t2t_vit
from t2t_vit import PretrainedLoadError


def test_other_num_classes_drops_the_head_with_a_warning(folder: Path) -> None:
    reference = load_tensors("tiny_transformer.state_dict.safetensors")
    with pytest.warns(UserWarning, match=r"num_classes=3 differs") as record:
        model = t2t_vit.from_pretrained(folder, num_classes=3)
    assert [str(w.message) for w in record] == [
        f"{folder}: num_classes=3 differs from the checkpoint's 10: dropped head.weight, "
        "head.bias; the new head is randomly initialised"
    ]
    assert model.head.weight.shape == (3, 48)
    state = model.state_dict()
    for key, value in reference.items():
        if not key.startswith("head."):
            assert torch.equal(state[key], value), key
    assert model.pretrained_cfg is not None
    assert model.pretrained_cfg["labels"] == ["0", "1", "2"]


def test_num_classes_zero_gives_a_feature_extractor(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No warning of a "new head" that a headless model does not have: an INFO line.
    with caplog.at_level(logging.INFO, logger="t2t_vit"):
        model = t2t_vit.from_pretrained(folder, num_classes=0)
    assert (
        f"{folder}: num_classes=0: dropped head.weight, head.bias; the model returns its "
        "pooled features" in caplog.messages
    )
    x = load_tensors("tiny_transformer.io.safetensors")
    with torch.no_grad():
        pooled = model(x["input"])
    torch.testing.assert_close(pooled, x["features"], atol=1e-5, rtol=0)


def test_other_img_size_resamples_the_position_table(folder: Path) -> None:
    model = t2t_vit.from_pretrained(folder, img_size=96)
    original = load_tensors("tiny_transformer.state_dict.safetensors")["pos_embed"]
    assert model.grid == (6, 6)
    expected = t2t_vit.resample_pos_embed(original, (6, 6), (4, 4))
    assert torch.equal(model.pos_embed, expected)
    assert torch.equal(model.pos_embed[:, 0], original[:, 0])
    assert model.pretrained_cfg is not None
    assert model.pretrained_cfg["input_size"] == [3, 96, 96]
    assert model.config["img_size"] == 96


def test_dtype_and_device_place_the_model_in_eval_mode(folder: Path) -> None:
    model = t2t_vit.from_pretrained(folder, dtype=torch.float64, map_location="cpu")
    assert {p.dtype for p in model.state_dict().values()} == {torch.float64}
    assert model.pos_embed.device == torch.device("cpu")
    assert not model.training


def test_weights_of_another_architecture_list_the_mismatched_keys(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["embed_dim"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder)
    message = str(err.value)
    assert message.startswith(
        f"the weights of {folder} do not fit the architecture in its config.json: checkpoint "
        "does not fit the model: 29 shape mismatches ("
    )
    assert "blocks.0.attn.norm" not in message


def test_corrupt_local_weights_are_reported(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(PretrainedLoadError, match=r"model\.safetensors is not a valid safetensors"):
        t2t_vit.from_pretrained(folder)


def test_folder_without_weights_is_named(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder)
    assert str(err.value) == (
        f"{folder} has no model.safetensors; expected config.json and model.safetensors "
        "(see t2t-vit convert)"
    )


def test_missing_local_path_is_not_taken_for_a_repo(tmp_path: Path) -> None:
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(str(tmp_path / "nowhere"))
    assert str(err.value) == f"local folder '{tmp_path / 'nowhere'}' does not exist"


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(
        ValueError,
        match=r"^unknown pretrained model 't2t-vit-99' \(did you mean 't2t-vit-19'\?\); known: ",
    ):
        t2t_vit.from_pretrained("t2t-vit-99")


def test_loading_builds_on_the_meta_device_without_random_initialisation(folder: Path) -> None:
    # Random initialisation of weights the checkpoint replaces would draw from the global
    # generator (and take seconds for the large presets); loading must not draw at all.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    model = t2t_vit.from_pretrained(folder)
    assert torch.equal(torch.rand(3), expected)
    assert {p.device.type for p in model.state_dict().values()} == {"cpu"}
    assert all(p.requires_grad for p in model.parameters())


def test_an_override_that_does_not_fit_is_blamed_on_the_override_not_config_json(
    folder: Path,
) -> None:
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder, img_size=0)
    assert str(err.value) == (
        f"{folder}: the arguments img_size=0 (config.json: 64) do not fit T2TViT: img_size "
        "(0, 0) is too small for the T2T stem (layers ((7, 4, 2), (3, 2, 1), (3, 2, 1))); each "
        "side must be at least 3, the smallest it takes is 3x3"
    )
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder, depth=3)
    assert str(err.value).startswith(
        f"the weights of {folder} do not fit the architecture that the arguments depth=3 "
        "(config.json: 2) make of its config.json: checkpoint does not fit the model: 11 "
        "missing keys (blocks.2."
    )
