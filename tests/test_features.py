"""T2T-ViT as a dense-prediction backbone: `features_only` maps, `feature_info`, levels,
`out_indices`, loading classifier weights, gradient checkpointing and `torch.compile`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import OFFICIAL_PRESETS, load_json, recipe_state_dict
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

import t2t_vit
from t2t_vit import T2TFeatures, T2TViT, create_feature_model, feature_levels

TINY: dict[str, Any] = dict(
    img_size=64, embed_dim=32, depth=3, num_heads=2, token_dim=8, num_classes=10
)


def _tiny(tokens_type: str = "transformer", seed: int = 0, **kwargs: Any) -> T2TViT:
    torch.manual_seed(seed)
    return T2TViT(tokens_type=tokens_type, **{**TINY, **kwargs}).eval()


def _official_stem_maps(model: T2TViT, x: torch.Tensor) -> list[torch.Tensor]:
    """Each T2T layer's output as the official code reshapes it: transpose, then a reshape
    with the grid computed by hand."""
    stem = model.tokens_to_token
    maps = []
    h, w = x.shape[2:]
    for (kernel, stride, padding), layer in zip(stem.layers, stem.attentions, strict=False):
        x = nn.functional.unfold(x, kernel, padding=padding, stride=stride).transpose(1, 2)
        h, w = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        x = layer(x)
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
        maps.append(x)
    return maps


def _own_tokens(model: T2TViT, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The classifier's own forward, with each level module's output recorded by a hook."""
    seen: dict[str, torch.Tensor] = {}
    names = [lv["module"] for lv in feature_levels(model)]
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out)
        )
        for name in names
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _as_map(tokens: torch.Tensor, grid: tuple[int, int], prefix: int) -> torch.Tensor:
    h, w = grid
    return rearrange(tokens[:, prefix:], "b (h w) c -> b c h w", h=h, w=w)


# -- the "done when" -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["t2t_vit_14_recipe", "t2t_vit_t_14_recipe"])
def test_preset_features_on_224x320_are_the_full_models_own_tokens_with_its_weights(
    fixture: str,
) -> None:
    cfg = load_json(f"{fixture}.json")
    full = t2t_vit.create_model(cfg["preset"], **cfg["official_kwargs"]).eval()
    shapes = OFFICIAL_PRESETS[cfg["preset"]]["state_dict_shapes"]
    official = t2t_vit.convert_state_dict(recipe_state_dict(shapes, cfg["seed"]), model=full)
    full.load_state_dict(official, strict=True)
    features = t2t_vit.create_model(cfg["preset"], features_only=True)
    # The classifier's checkpoint (official weights, converted) loads strictly.
    features.load_state_dict(official, strict=True)
    features.eval()

    x = torch.randn(2, 3, 224, 320, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = features(x)
        own = _own_tokens(full, x)
        official_stem = _official_stem_maps(full, x)
        (last_block,) = full.forward_intermediates(x, indices=[-1], intermediates_only=True)

    assert [tuple(m.shape) for m in maps] == [(2, 64, 56, 80), (2, 64, 28, 40), (2, 384, 14, 20)]
    assert features.feature_info.reduction() == [4, 8, 16]
    assert features.feature_info.channels() == [64, 64, 384]
    depth = len(full.blocks)
    assert features.feature_info.module_name() == [
        "tokens_to_token.attention1",
        "tokens_to_token.attention2",
        f"blocks.{depth - 1}",
    ]
    assert torch.equal(maps[0], _as_map(own["tokens_to_token.attention1"], (56, 80), 0))
    assert torch.equal(maps[1], _as_map(own["tokens_to_token.attention2"], (28, 40), 0))
    assert torch.equal(maps[2], _as_map(own[f"blocks.{depth - 1}"], (14, 20), 1))
    assert torch.equal(maps[2], last_block)
    for ours, reference in zip(maps[:2], official_stem, strict=True):
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


# -- levels and out_indices ------------------------------------------------------------------


def test_levels_are_the_t2t_layers_then_the_blocks_with_strides_and_channels() -> None:
    assert feature_levels(_tiny()) == [
        {"num_chs": 8, "reduction": 4, "module": "tokens_to_token.attention1", "index": 0},
        {"num_chs": 8, "reduction": 8, "module": "tokens_to_token.attention2", "index": 1},
        {"num_chs": 32, "reduction": 16, "module": "blocks.0", "index": 2},
        {"num_chs": 32, "reduction": 16, "module": "blocks.1", "index": 3},
        {"num_chs": 32, "reduction": 16, "module": "blocks.2", "index": 4},
    ]
    small = _tiny(depth=1, t2t_layers=((3, 1, 1), (3, 2, 1)), img_size=8)
    assert feature_levels(small) == [
        {"num_chs": 8, "reduction": 1, "module": "tokens_to_token.attention1", "index": 0},
        {"num_chs": 32, "reduction": 2, "module": "blocks.0", "index": 1},
    ]
    # The patch stem has no T2T layer: its levels are the blocks.
    assert [lv["module"] for lv in feature_levels(_tiny("patch"))] == [
        "blocks.0",
        "blocks.1",
        "blocks.2",
    ]


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_every_level_on_a_non_square_input_not_a_multiple_of_16_is_the_models_own(
    tokens_type: str,
) -> None:
    model = _tiny(tokens_type)
    features = create_feature_model(model, out_indices=range(5)).eval()
    x = torch.randn(2, 3, 100, 150)
    with torch.no_grad():
        maps = features(x)
        own = _own_tokens(model, x)
        official_stem = _official_stem_maps(model, x)
    grids = model.tokens_to_token.split_grids(100, 150)
    assert grids == [(25, 37), (13, 19), (7, 10)]
    assert [tuple(m.shape) for m in maps] == [
        (2, 8, 25, 37),
        (2, 8, 13, 19),
        (2, 32, 7, 10),
        (2, 32, 7, 10),
        (2, 32, 7, 10),
    ]
    where = {
        "tokens_to_token.attention1": (grids[0], 0),
        "tokens_to_token.attention2": (grids[1], 0),
    }
    for ours, name in zip(maps, features.feature_info.module_name(), strict=True):
        grid, prefix = where.get(name, (grids[2], 1))  # blocks: drop the class token
        assert torch.equal(ours, _as_map(own[name], grid, prefix))
    for ours, reference in zip(maps[:2], official_stem, strict=True):
        torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm", [False, True])
def test_block_maps_are_forward_intermediates_with_and_without_the_final_norm(norm: bool) -> None:
    model = _tiny("performer")
    features = create_feature_model(model, out_indices=[2, 3, 4], norm=norm).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        # One index space: out_indices [2, 3, 4] are forward_intermediates' [2, 3, 4].
        expected = model.forward_intermediates(x, [2, 3, 4], norm=norm, intermediates_only=True)
        maps = features(x)
        again = features.forward_intermediates(x, norm=norm)
    assert len(maps) == 3
    for ours, theirs, own in zip(maps, expected, again, strict=True):
        assert torch.equal(ours, theirs)
        assert torch.equal(own, theirs)
    assert ("norm.weight" in features.state_dict()) is norm


def test_default_levels_are_the_stem_levels_and_the_last_block() -> None:
    features = create_feature_model(_tiny())
    assert features.out_indices == (0, 1, 4)
    assert features.feature_info.reduction() == [4, 8, 16]


def test_patch_stem_default_is_the_last_block_at_stride_16() -> None:
    model = _tiny("patch")
    features = create_feature_model(model).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        (only,) = features(x)
        (expected,) = model.forward_intermediates(x, indices=1, intermediates_only=True)
    assert features.feature_info.get_dicts() == [
        {"num_chs": 32, "reduction": 16, "module": "blocks.2", "index": 2}
    ]
    assert torch.equal(only, expected)


def test_out_indices_count_from_the_end_and_come_back_in_level_order() -> None:
    model = _tiny()
    x = torch.randn(1, 3, 64, 64)
    every = create_feature_model(model, out_indices=range(5)).eval()
    picked = create_feature_model(model, out_indices=(-1, 0, -3)).eval()
    last_two = create_feature_model(model, out_indices=2).eval()
    with torch.no_grad():
        all_maps = every(x)
        picked_maps = picked(x)
        last_maps = last_two(x)
    assert picked.out_indices == (0, 2, 4)
    assert picked.feature_info.module_name() == [
        "tokens_to_token.attention1",
        "blocks.0",
        "blocks.2",
    ]
    for ours, index in zip(picked_maps, (0, 2, 4), strict=True):
        assert torch.equal(ours, all_maps[index])
    assert last_two.out_indices == (3, 4)
    assert torch.equal(last_maps[0], all_maps[3])
    assert torch.equal(last_maps[1], all_maps[4])


_LEVELS = (
    "Levels: 0 tokens_to_token.attention1 (stride 4, 8 channels), 1 tokens_to_token.attention2 "
    "(stride 8, 8 channels), 2-4 blocks.0-2 (stride 16, 32 channels)"
)


@pytest.mark.parametrize(
    ("out_indices", "message"),
    [
        ([0, 5], f"out_indices entry 5 is out of range: valid are 0..4 or -5..-1. {_LEVELS}"),
        ([-6], f"out_indices entry -6 is out of range: valid are 0..4 or -5..-1. {_LEVELS}"),
        (
            6,
            f"out_indices=6 asks for the last 6 levels but there are 5: pass 1..5. {_LEVELS}",
        ),
        ([], f"out_indices is empty; pick at least one level. {_LEVELS}"),
        (
            [4, -1],
            "out_indices [4, -1] names level 4 (blocks.2) twice (4 and -1); name each level once",
        ),
        ([0, "1"], "out_indices entries must be ints, got '1' in [0, '1']"),
        (
            1.5,
            "out_indices must be level indices such as (0, 1, -1), the number of last levels "
            "as an int, or None; got 1.5",
        ),
    ],
)
def test_bad_out_indices_name_the_value_the_valid_range_and_the_levels(
    out_indices: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        create_feature_model(_tiny(), out_indices=out_indices)


def test_patch_stem_out_of_range_error_lists_the_blocks_only() -> None:
    with pytest.raises(ValueError, match=re.escape("Levels: 0-2 blocks.0-2 (stride 16, 32")):
        create_feature_model(_tiny("patch"), out_indices=[3])


# -- feature_info ----------------------------------------------------------------------------


def test_feature_info_answers_as_timms_and_names_real_modules() -> None:
    model = _tiny()
    features = create_feature_model(model, out_indices=(0, 1, 3))
    info = features.feature_info
    # As timm's: len() and an int index mean all levels; no index, the returned ones.
    assert len(info) == 5
    assert info.out_indices == (0, 1, 3)
    assert info.channels() == [8, 8, 32]
    assert info.reduction() == [4, 8, 16]
    assert info.module_name() == [
        "tokens_to_token.attention1",
        "tokens_to_token.attention2",
        "blocks.1",
    ]
    assert (info.channels(2), info.reduction(-1), info.module_name(4)) == (32, 16, "blocks.2")
    assert info.channels([0, 4]) == [8, 32]
    assert info[1] == {
        "num_chs": 8,
        "reduction": 8,
        "module": "tokens_to_token.attention2",
        "index": 1,
    }
    assert info.get_dicts(keys=["num_chs"]) == [{"num_chs": 8}, {"num_chs": 8}, {"num_chs": 32}]
    assert info.get("reduction", 0) == 4
    # The names resolve to the same module in the feature model and the classifier.
    for name in info.module_name():
        assert features.get_submodule(name) is model.get_submodule(name)


# -- parameters and weights ------------------------------------------------------------------


def test_parameter_names_are_the_classifiers_without_head_norm_and_later_blocks() -> None:
    model = _tiny()
    full = set(model.state_dict())
    default = set(create_feature_model(model).state_dict())
    assert default <= full
    assert full - default == {"head.weight", "head.bias", "norm.weight", "norm.bias"}
    shallow = set(create_feature_model(model, out_indices=(0, 2)).state_dict())
    assert {k.split(".")[1] for k in full - shallow if k.startswith("blocks.")} == {"1", "2"}
    stem_only = set(create_feature_model(model, out_indices=(1,)).state_dict())
    assert all(k.startswith("tokens_to_token.") for k in stem_only)
    # Stem levels only: the stem without its projection (nothing after level 1 runs).
    stem = {k for k in full if k.startswith("tokens_to_token.")}
    assert stem_only == {k for k in stem if not k.startswith("tokens_to_token.project.")}


def test_classifier_state_dict_loads_strictly_and_gives_that_classifiers_maps() -> None:
    trained, other = _tiny(seed=1), _tiny(seed=2)
    features = create_feature_model(other, out_indices=(0, 1, 3)).eval()
    result = features.load_state_dict(trained.state_dict(), strict=True)
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        expected = create_feature_model(trained, out_indices=(0, 1, 3)).eval()(x)
        for ours, theirs in zip(features(x), expected, strict=True):
            assert torch.equal(ours, theirs)
    # Loading into the features loaded into the modules it shares with `other`.
    assert torch.equal(other.blocks[1].mlp.fc1.weight, trained.blocks[1].mlp.fc1.weight)
    assert not torch.equal(other.head.weight, trained.head.weight)


def test_a_key_the_classifier_does_not_have_still_fails_a_strict_load() -> None:
    model = _tiny()
    features = create_feature_model(model)
    state = {**model.state_dict(), "blocks.7.mlp.fc1.weight": torch.zeros(1)}
    with pytest.raises(RuntimeError, match=re.escape('Unexpected key(s) in state_dict: "blocks.7')):
        features.load_state_dict(state, strict=True)


def test_feature_state_dict_loads_into_a_classifier_missing_only_head_and_norm() -> None:
    features = create_feature_model(_tiny(seed=3))
    fresh = _tiny(seed=4)
    result = fresh.load_state_dict(features.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["head.bias", "head.weight", "norm.bias", "norm.weight"]
    assert result.unexpected_keys == []


def test_backbone_inside_a_segmenter_loads_the_classifier_under_its_prefix() -> None:
    trained = _tiny(seed=5)
    segmenter = nn.Module()
    segmenter.backbone = create_feature_model(_tiny(seed=6))
    segmenter.classifier = nn.Conv2d(8, 11, 1)
    state = {f"backbone.{k}": v for k, v in trained.state_dict().items()}
    state |= {f"classifier.{k}": v for k, v in segmenter.classifier.state_dict().items()}
    segmenter.load_state_dict(state, strict=True)
    assert torch.equal(
        segmenter.backbone.blocks[2].attn.qkv.weight, trained.blocks[2].attn.qkv.weight
    )


def test_pretrained_features_load_through_from_pretrained(tmp_path: Path) -> None:
    model = _tiny("performer", seed=7)
    t2t_vit.save_pretrained(model, tmp_path / "tiny")
    # create_model gives training mode (timm's habit); the maps are compared in eval mode.
    features = t2t_vit.create_model(
        str(tmp_path / "tiny"), features_only=True, pretrained=True
    ).eval()
    assert isinstance(features, T2TFeatures)
    assert features.pretrained_cfg is not None
    assert features.pretrained_cfg["input_size"] == [3, 64, 64]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = create_feature_model(model).eval()(x)
        for ours, theirs in zip(features(x), expected, strict=True):
            assert torch.equal(ours, theirs)
    # from_pretrained's own arguments pass through.
    resized = t2t_vit.create_model(
        str(tmp_path / "tiny"), features_only=True, pretrained=True, img_size=96, out_indices=[-1]
    )
    assert resized.img_size == (96, 96)
    assert resized.pos_embed.shape == (1, 37, 32)


def test_create_model_pretrained_alone_is_from_pretrained(tmp_path: Path) -> None:
    model = _tiny(seed=8)
    t2t_vit.save_pretrained(model, tmp_path)
    loaded = t2t_vit.create_model(str(tmp_path), pretrained=True)
    assert isinstance(loaded, T2TViT)
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_out_indices_without_features_only_is_an_error() -> None:
    with pytest.raises(ValueError, match=re.escape("out_indices=[0] selects feature levels; pass")):
        t2t_vit.create_model("t2t-vit-7", out_indices=[0])


def test_overrides_apply_to_preset_names_and_are_refused_with_a_model() -> None:
    features = create_feature_model("t2t-vit-7", embed_dim=64, depth=2, num_heads=2, token_dim=16)
    assert features.feature_info.channels() == [16, 16, 64]
    with pytest.raises(ValueError, match=re.escape("overrides ['depth'] apply to a preset name")):
        create_feature_model(_tiny(), depth=2)
    with pytest.raises(TypeError, match="T2TFeatures needs a T2TViT, got Linear"):
        T2TFeatures(nn.Linear(2, 2))  # type: ignore[arg-type]


def test_layer_decay_groups_use_the_shared_names() -> None:
    features = create_feature_model(_tiny(), out_indices=(0, 3))
    groups = t2t_vit.param_groups_layer_decay(features, layer_decay=0.5)
    names = {n: g["layer_id"] for g in groups for n in g["param_names"]}
    assert names["cls_token"] == 0
    assert names["tokens_to_token.attention1.attn.qkv.weight"] == 0
    assert names["blocks.1.mlp.fc1.weight"] == 2
    assert "cls_token" in next(g for g in groups if g["weight_decay"] == 0.0)["param_names"]
    assert not any(n.startswith(("head.", "norm.", "blocks.2.")) for n in names)


def test_stem_only_selection_runs_no_block() -> None:
    model = _tiny()
    features = create_feature_model(model, out_indices=[0]).eval()
    # Bit-equality needs the reference's GEMM: no packed one (tests/test_packed_linear.py).
    t2t_vit.use_packed_linear(features, False)
    ran: list[str] = []
    handles = [
        model.blocks[0].register_forward_hook(lambda *_: ran.append("block")),
        model.tokens_to_token.attention2.register_forward_hook(lambda *_: ran.append("t2t 2")),
    ]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        (only,) = features(x)
    for handle in handles:
        handle.remove()
    assert ran == []
    assert torch.equal(only, _official_stem_maps(model, x)[0])


# -- training: gradient checkpointing and torch.compile -------------------------------------


def _loss(maps: list[torch.Tensor]) -> torch.Tensor:
    return sum(((i + 1) * m.square().mean() for i, m in enumerate(maps)), torch.zeros(()))


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_grad_checkpointing_gives_the_same_maps_and_gradients_with_the_neck(
    tokens_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    features = create_feature_model(_tiny(tokens_type), out_indices=(0, 1, 2, 4)).train()
    neck = t2t_vit.SimpleFeaturePyramid(32, 8)
    model = nn.ModuleDict({"backbone": features, "neck": neck}).train()
    x = torch.randn(2, 3, 64, 80)

    def maps_and_grads() -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        model.zero_grad()
        # The Performer layers keep their official dropout; non-reentrant checkpointing
        # replays the RNG, so the same seed gives the same masks.
        torch.manual_seed(1)
        maps = features(x)
        maps += neck(maps[-1])
        _loss(maps).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return [m.detach() for m in maps], grads

    plain_maps, plain = maps_and_grads()
    wrapped: list[str] = []

    def spy(function: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped.append(type(function).__name__)
        return checkpoint(function, *args, **kwargs)

    monkeypatch.setattr(t2t_vit.models.t2t_vit, "checkpoint", spy)
    monkeypatch.setattr(t2t_vit.layers.t2t_module, "checkpoint", spy)
    features.set_grad_checkpointing(True)
    assert features.tokens_to_token.grad_checkpointing
    maps, grads = maps_and_grads()
    layer = "TokenTransformer" if tokens_type == "transformer" else "TokenPerformer"
    assert wrapped == [layer, layer, "Block", "Block", "Block"]
    for ours, theirs in zip(maps, plain_maps, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-7, rtol=0)
    # Every parameter of the backbone and the neck is used: nothing idles under DDP.
    assert set(plain) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads.keys() == plain.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-7, rtol=0, msg=name)


def test_compile_fullgraph_backbone_with_neck_matches_eager_in_training_and_other_sizes() -> None:
    # aot_eager traces the full graphs (forward and backward) without code generation;
    # fullgraph=True fails on any graph break.
    torch.manual_seed(0)
    # The transformer stem: the Performer's dropout draws differ between the graphs.
    backbone = create_feature_model(_tiny("transformer"))
    neck = t2t_vit.SimpleFeaturePyramid(32, 16)
    model = nn.ModuleDict({"backbone": backbone, "neck": neck}).train()

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        maps = model["backbone"](x)
        return [*maps[:-1], *model["neck"](maps[-1])]

    compiled = torch.compile(run, fullgraph=True, backend="aot_eager", dynamic=False)
    x = torch.randn(2, 3, 64, 64)
    _loss(compiled(x)).backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    _loss(run(x)).backward()
    for compiled_grad, p in zip(compiled_grads, model.parameters(), strict=True):
        torch.testing.assert_close(compiled_grad, p.grad, atol=1e-5, rtol=0)
    model.eval()
    x = torch.randn(1, 3, 100, 150)
    with torch.no_grad():
        for ours, theirs in zip(compiled(x), run(x), strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


# -- one index space, the pyramid, pruning ---------------------------------------------------


def test_out_indices_and_forward_intermediates_share_one_index_space() -> None:
    model = _tiny("performer")
    x = torch.randn(2, 3, 64, 96)
    for indices in [(1,), (2,), (0, 3), (-1,), 2]:
        features = create_feature_model(model, out_indices=indices).eval()
        with torch.no_grad():
            maps = features(x)
            same = model.forward_intermediates(x, indices=indices, intermediates_only=True)
            again = features.forward_intermediates(x, indices=indices)
        assert [m.shape for m in maps] == [m.shape for m in same], indices
        for a, b, c in zip(maps, same, again, strict=True):
            assert torch.equal(a, b)
            assert torch.equal(a, c)
    assert model.feature_info == feature_levels(model)
    with pytest.raises(ValueError, match=r"^indices \[4\] reach level 4 \(blocks.2\) but this "):
        create_feature_model(model, out_indices=(0, 2)).forward_intermediates(x, indices=[4])


def test_pyramid_levels_are_one_per_stride_with_the_last_block_pooled_to_32() -> None:
    model = _tiny("performer")
    pyramid = create_feature_model(model, levels="pyramid").eval()
    assert pyramid.feature_info.module_name() == [
        "tokens_to_token.attention1",
        "tokens_to_token.attention2",
        "blocks.2",
        "downsample",
    ]
    assert pyramid.feature_info.reduction() == [4, 8, 16, 32]
    assert len(pyramid.blocks) == 3
    x = torch.randn(2, 3, 64, 112)  # a 4x7 block grid: the pooled grid is 2x4 (ceil)
    with torch.no_grad():
        *stem, last, pooled = pyramid(x)
        expected = model.forward_intermediates(x, indices=(0, 1, -1), intermediates_only=True)
    for a, b in zip([*stem, last], expected, strict=True):
        assert torch.equal(a, b)
    assert pooled.shape == (2, 32, 2, 4)
    assert torch.equal(pooled, nn.functional.max_pool2d(last, 2, ceil_mode=True))
    only_32 = create_feature_model(model, out_indices=(-1,), levels="pyramid").eval()
    with torch.no_grad():
        (alone,) = only_32(x)
    assert torch.equal(alone, pooled)
    with pytest.raises(ValueError, match=r"^levels must be one of all, pyramid; got 'stages'$"):
        create_feature_model(model, levels="stages")


def test_output_stride_16_caps_the_pyramid_at_16_as_timms_output_stride() -> None:
    model = _tiny("performer")
    capped = create_feature_model(model, levels="pyramid", output_stride=16).eval()
    assert capped.feature_info.reduction() == [4, 8, 16, 16]
    assert capped.feature_info.module_name()[-1] == "downsample"
    assert isinstance(capped.downsample, nn.Identity)
    x = torch.randn(2, 3, 64, 112)
    with torch.no_grad():
        *_, last, coarsest = capped(x)
        (alone,) = create_feature_model(
            model, out_indices=(-1,), levels="pyramid", output_stride=16
        ).eval()(x)
    assert last.shape[-2:] == (4, 7)
    assert torch.equal(coarsest, last)
    assert torch.equal(alone, last)
    # 32 (or None) caps nothing; "all" levels are at most 16 already.
    uncapped = create_feature_model(model, levels="pyramid", output_stride=32)
    assert uncapped.feature_info.reduction() == [4, 8, 16, 32]
    every = create_feature_model(model, out_indices=(0, 1, -1), output_stride=16)
    assert every.feature_info.reduction() == [4, 8, 16]
    backbone = t2t_vit.create_model(
        "t2t-vit-7", features_only=True, levels="pyramid", output_stride=16, depth=2
    )
    assert backbone.feature_info.reduction() == [4, 8, 16, 16]
    for bad in (8, 64, True):
        with pytest.raises(ValueError, match=r"^output_stride=") as err:
            create_feature_model(model, levels="pyramid", output_stride=bad)
        assert str(err.value) == (
            f"output_stride={bad!r} is not available: this T2T-ViT's blocks are at stride 16 "
            "and it has no dilation to keep finer maps; pass 16 (smp: "
            "encoder_output_stride=16), 32 or None"
        )
    with pytest.raises(ValueError, match=r"^output_stride=16 caps") as classifier:
        t2t_vit.create_model("t2t-vit-7", output_stride=16)
    assert str(classifier.value) == (
        "output_stride=16 caps the feature maps' stride; pass features_only=True too"
    )


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
@pytest.mark.parametrize(("out_indices", "layers"), [((0,), 1), ((1,), 2), ((0, 1), 2)])
def test_stem_only_levels_prune_the_rest_so_every_parameter_gets_a_gradient(
    tokens_type: str, out_indices: tuple[int, ...], layers: int
) -> None:
    model = _tiny(tokens_type)
    features = create_feature_model(model, out_indices=out_indices).train()
    stem = features.tokens_to_token
    assert [n for n, _ in stem.named_children() if n.startswith("attention")] == [
        f"attention{i + 1}" for i in range(layers)
    ]
    assert not hasattr(stem, "project")
    assert len(features.blocks) == 0
    # The model is left whole, and the pruned stem shares its layers.
    assert hasattr(model.tokens_to_token, "project")
    assert len(model.tokens_to_token.attentions) == 2
    assert stem.attention1 is model.tokens_to_token.attention1
    x = torch.randn(2, 3, 64, 96)
    maps = features(x)
    sum(m.square().mean() for m in maps).backward()
    without_grad = [n for n, p in features.named_parameters() if p.grad is None]
    assert without_grad == []
    assert all(float(p.grad.abs().sum()) > 0 for p in features.parameters())
    features.eval()
    with torch.no_grad():
        got = features(x)
        expected = model.forward_intermediates(x, indices=out_indices, intermediates_only=True)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    # The classifier's state dict still loads strictly: the pruned keys are skipped.
    features.load_state_dict(model.state_dict())


def test_prune_intermediate_layers_keeps_what_the_levels_need_as_timms_vit() -> None:
    model = _tiny("performer")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.forward_intermediates(x, indices=(1, 3), intermediates_only=True)
    assert model.prune_intermediate_layers((1, -2)) == [1, 3]
    assert len(model.blocks) == 2
    assert isinstance(model.norm, nn.Identity) is False
    assert isinstance(model.head, nn.Identity)
    with torch.no_grad():
        got = model.forward_intermediates(x, indices=(1, 3), intermediates_only=True)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    assert model.prune_intermediate_layers(1, prune_norm=True) == [3]
    assert isinstance(model.norm, nn.Identity)
