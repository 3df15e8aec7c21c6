"""What timm and DDP ask of every model, without timm: construction on a device and in a
dtype (the `meta` device included), the pooling choice, `reset_classifier` in the model's
place and mode, and a one-line refusal of TorchScript."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import t2t_vit

TINY: dict[str, Any] = dict(img_size=64, embed_dim=32, depth=3, num_heads=2, token_dim=8)


def _places(model: torch.nn.Module) -> set[tuple[str, torch.dtype]]:
    tensors = [*model.parameters(), *model.buffers()]
    return {(t.device.type, t.dtype) for t in tensors}


@pytest.mark.parametrize("name", t2t_vit.list_models())
def test_every_preset_builds_and_runs_on_the_meta_device(name: str) -> None:
    model = t2t_vit.create_model(name, device="meta")
    assert {device for device, _ in _places(model)} == {"meta"}
    size = model.img_size
    logits = model(torch.randn(2, 3, *size, device="meta"))
    assert (logits.device.type, tuple(logits.shape)) == ("meta", (2, 1000))
    features = t2t_vit.create_model(name, device="meta", features_only=True)
    maps = features(torch.randn(1, 3, *size, device="meta"))
    assert [m.shape[1] for m in maps] == features.feature_info.channels()


def test_device_and_dtype_place_every_tensor_as_built_and_stay_out_of_the_config() -> None:
    model = t2t_vit.T2TViT(**TINY, dtype=torch.float64)
    performer = t2t_vit.T2TViT(**TINY, dtype=torch.bfloat16)
    assert _places(model) == {("cpu", torch.float64)}
    # As `model.to(torch.bfloat16)`: the Performer's random features stay fp32.
    assert performer.tokens_to_token.attention1.w.dtype == torch.float32
    assert performer.head.weight.dtype == torch.bfloat16
    assert "device" not in model.config
    assert "dtype" not in model.config
    made = t2t_vit.create_model("t2t-vit-7", device="meta", dtype=torch.float16, **TINY)
    assert _places(made) == {("meta", torch.float16), ("meta", torch.float32)}
    with pytest.raises(TypeError, match=r"^dtype=torch.int64 is not a floating dtype"):
        t2t_vit.T2TViT(**TINY, dtype=torch.int64)


def test_global_pool_token_avg_and_none_pool_as_timms_vit() -> None:
    torch.manual_seed(0)
    model = t2t_vit.T2TViT(**TINY, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.forward_features(x)
        token = model.forward_head(tokens, pre_logits=True)
        model.reset_classifier(5, "avg")
        avg = model.forward_head(tokens, pre_logits=True)
        model.reset_classifier(5, "")
        every = model.forward_head(tokens, pre_logits=True)
        per_token = model(x)
    assert torch.equal(token, tokens[:, 0])
    torch.testing.assert_close(avg, tokens[:, 1:].mean(dim=1))
    assert torch.equal(every, tokens)
    assert per_token.shape == (2, tokens.shape[1], 5)
    assert model.config["global_pool"] == ""
    assert model.global_pool == ""
    built = t2t_vit.T2TViT(**TINY, global_pool="avg")
    assert built.global_pool == built.config["global_pool"] == "avg"


def test_reset_classifier_keeps_the_pooling_unless_told() -> None:
    model = t2t_vit.T2TViT(**TINY, global_pool="avg")
    model.reset_classifier(3)
    assert model.global_pool == "avg"
    model.reset_classifier(3, "token")
    assert model.global_pool == "token"


@pytest.mark.parametrize("call", ["build", "reset"])
def test_an_unknown_global_pool_is_refused_in_one_line_naming_the_accepted(call: str) -> None:
    expected = (
        "global_pool='max' is not supported by T2T-ViT; accepted: 'token', 'avg', '' "
        "(the class token, the mean of the patch tokens, or no pooling)"
    )
    if call == "build":
        with pytest.raises(ValueError, match="global_pool") as err:
            t2t_vit.T2TViT(**TINY, global_pool="max")
        assert str(err.value) == expected
    else:
        model = t2t_vit.T2TViT(**TINY)
        with pytest.raises(ValueError, match="global_pool") as err:
            model.reset_classifier(3, "max")
        assert str(err.value) == expected
        assert model.global_pool == "token"
        assert model.num_classes == 1000


@pytest.mark.parametrize("training", [True, False])
def test_reset_classifier_builds_the_head_on_the_models_device_dtype_and_mode(
    training: bool,
) -> None:
    model = t2t_vit.T2TViT(**TINY).train(training)
    model.to(device="meta", dtype=torch.float64)
    model.reset_classifier(0)
    assert isinstance(model.head, torch.nn.Identity)
    model.reset_classifier(7)
    weight = model.head.weight
    assert (weight.device.type, weight.dtype, tuple(weight.shape)) == (
        "meta",
        torch.float64,
        (7, 32),
    )
    assert {m.training for m in model.modules()} == {training}
    assert model.num_classes == model.config["num_classes"] == 7


def test_timm_attributes_default_cfg_head_hidden_size_and_group_matcher() -> None:
    model = t2t_vit.create_model("t2t-vit-7", **TINY)
    assert model.default_cfg is model.pretrained_cfg
    model.default_cfg = {"mean": [0.5] * 3}
    assert model.pretrained_cfg == {"mean": [0.5] * 3}
    assert model.head_hidden_size == model.num_features == 32
    matcher = model.group_matcher()
    assert matcher["stem"] == r"^cls_token|^pos_embed|^tokens_to_token"
    assert matcher["blocks"][0] == (r"^blocks\.(\d+)", None)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("part", ["model", "features", "stem", "transformer", "performer"])
def test_torchscript_is_refused_in_one_line_naming_torch_export(part: str) -> None:
    model = t2t_vit.T2TViT(**TINY, tokens_type="transformer")
    performer = t2t_vit.T2TViT(**TINY)
    module: torch.nn.Module = {
        "model": model,
        "features": t2t_vit.create_feature_model(model),
        "stem": model.tokens_to_token,
        "transformer": model.tokens_to_token.attention1,
        "performer": performer.tokens_to_token.attention1,
    }[part]
    with pytest.raises(RuntimeError) as err:
        torch.jit.script(module)
    message = str(err.value)
    assert message == (
        f"{type(module).__name__} does not support TorchScript (torch.jit.script); export it "
        "with torch.export.export(model, (x,)) or compile it with torch.compile "
        "(see docs/interop.md, 'TorchScript')"
    )


@pytest.mark.parametrize("part", ["model", "features", "stem"])
def test_jit_trace_is_refused_in_one_line_naming_torch_export(part: str) -> None:
    # It used to fail inside the size check (`cond must be a bool, but got a Tensor`).
    model = t2t_vit.T2TViT(**TINY, tokens_type="transformer")
    module: torch.nn.Module = {
        "model": model,
        "features": t2t_vit.create_feature_model(model),
        "stem": model.tokens_to_token,
    }[part]
    with pytest.raises(RuntimeError) as err:
        torch.jit.trace(module, torch.randn(1, 3, 32, 32))
    assert str(err.value) == (
        f"{type(module).__name__} does not support TorchScript (torch.jit.trace); export it "
        "with torch.export.export(model, (x,)) or compile it with torch.compile "
        "(see docs/interop.md, 'TorchScript')"
    )
