"""Every preset has the official architecture: parameters, MACs, state-dict layout."""

from __future__ import annotations

import pytest
import torch
from conftest import OFFICIAL_PRESETS

import t2t_vit

OFFICIAL_NAMES = sorted(OFFICIAL_PRESETS)


def _preset(official_name: str) -> str:
    return t2t_vit.canonical_name(official_name)


@pytest.mark.parametrize("official_name", OFFICIAL_NAMES)
def test_preset_parameter_counts_match_official(official_name: str) -> None:
    model = t2t_vit.create_model(official_name)
    ref = OFFICIAL_PRESETS[official_name]
    assert t2t_vit.count_params(model) == ref["params"]
    assert t2t_vit.count_params(model, trainable_only=True) == ref["params_trainable"]


@pytest.mark.parametrize("official_name", OFFICIAL_NAMES)
def test_preset_macs_at_224_match_official(official_name: str) -> None:
    model = t2t_vit.create_model(official_name)
    assert t2t_vit.count_macs(model, 224) == OFFICIAL_PRESETS[official_name]["macs_224"]


@pytest.mark.parametrize("official_name", OFFICIAL_NAMES)
def test_preset_loads_official_key_shape_map_after_conversion(official_name: str) -> None:
    model = t2t_vit.create_model(official_name)
    shapes = OFFICIAL_PRESETS[official_name]["state_dict_shapes"]
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    # As saved from DistributedDataParallel, with the `module.` prefix.
    official = {f"module.{k}": torch.full(s, 0.5) for k, s in shapes.items()}
    converted = t2t_vit.convert_state_dict(official, source="official")
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    assert torch.all(model.pos_embed == 0.5)


def test_384_preset_differs_from_t2t_vit_14_only_by_its_position_table() -> None:
    model = t2t_vit.create_model("t2t-vit-14-384")
    base = OFFICIAL_PRESETS["t2t_vit_14"]
    # 384 / 16 = 24 -> 576 grid tokens + class token, against 197 rows at 224.
    assert model.pos_embed.shape == (1, 577, 384)
    assert t2t_vit.count_params(model) == base["params"] + (577 - 197) * 384
    assert t2t_vit.count_params(model, trainable_only=True) == base["params_trainable"]
    # At 224 the table is resampled; resampling is no matrix product.
    assert t2t_vit.count_macs(model, 224) == base["macs_224"]


def test_official_kwargs_build_the_official_network() -> None:
    kwargs = dict(tokens_type="transformer", embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0)
    model = t2t_vit.T2TViT(**kwargs)  # type: ignore[arg-type]
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == OFFICIAL_PRESETS["t2t_vit_t_14"]["state_dict_shapes"]


@pytest.mark.parametrize(
    "spelling", ["t2t-vit-t-14", "t2t_vit_t_14", "T2t_vit_t_14", "T2T-ViT-T-14"]
)
def test_official_spellings_resolve_to_the_same_preset(spelling: str) -> None:
    assert t2t_vit.canonical_name(spelling) == "t2t-vit-t-14"


def test_list_models_covers_every_official_architecture() -> None:
    names = t2t_vit.list_models()
    assert {_preset(n) for n in OFFICIAL_NAMES} | {"t2t-vit-14-384"} == set(names)


def test_unknown_preset_error_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown model") as err:
        t2t_vit.create_model("t2t-vit-15")
    assert str(err.value) == (
        "unknown model 't2t-vit-15' (did you mean 't2t-vit-19'?); known: "
        + ", ".join(t2t_vit.list_models())
    )


def test_overrides_replace_preset_arguments() -> None:
    model = t2t_vit.create_model("t2t-vit-7", num_classes=10, img_size=32)
    assert model.head.out_features == 10  # type: ignore[union-attr]
    assert model.pos_embed.shape == (1, 1 + 2 * 2, 256)
