"""timm's factory and model contract on T2T-ViT (issue 22, item 1): `create_model`'s
`device`/`dtype`, `global_pool`, `pretrained_cfg=` and `pretrained_cfg_overlay=`, timm's
pretrained-cfg keys, `feature_cls`, and timm's `in_chans` call with pretrained weights.

Interop tests: they run in CI's interop venv (`pytest -m interop`)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from checkpoints import T7
from fakehub import ReleaseServer

import t2t_vit

pytestmark = pytest.mark.interop

TINY: dict[str, Any] = dict(img_size=64, embed_dim=32, depth=3, num_heads=2, token_dim=8)


def _timm() -> Any:
    import timm

    import t2t_vit.timm  # noqa: F401  (registers the models)

    return timm


@pytest.mark.parametrize("features_only", [False, True])
def test_create_model_places_every_tensor_on_the_device_and_dtype_asked(
    features_only: bool,
) -> None:
    timm = _timm()
    model = timm.create_model(
        "t2t_vit_t_14", device="meta", dtype=torch.float64, features_only=features_only
    )
    places = {(t.device.type, t.dtype) for t in [*model.parameters(), *model.buffers()]}
    assert places == {("meta", torch.float64)}


def test_global_pool_as_a_keyword_and_through_reset_classifier() -> None:
    timm = _timm()
    torch.manual_seed(0)
    model = timm.create_model("t2t_vit_7", global_pool="avg", num_classes=4, **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.forward_features(x)
        torch.testing.assert_close(
            model.forward_head(tokens, pre_logits=True), tokens[:, 1:].mean(dim=1)
        )
        model.reset_classifier(0, global_pool="token")
        assert torch.equal(model(x), tokens[:, 0])
        model.reset_classifier(0, "")
        assert torch.equal(model(x), tokens)
    with pytest.raises(ValueError, match="global_pool") as err:
        timm.create_model("t2t_vit_7", global_pool="avgmax", **TINY)
    assert str(err.value) == (
        "global_pool='avgmax' is not supported by T2T-ViT; accepted: 'token', 'avg', '' "
        "(the class token, the mean of the patch tokens, or no pooling)"
    )


def test_pretrained_cfg_has_timms_keys_and_first_conv_and_classifier_name_real_weights() -> None:
    timm = _timm()
    for name, first in [
        ("t2t_vit_7", "tokens_to_token.attention1.kqv"),
        ("t2t_vit_t_14", "tokens_to_token.attention1.attn.qkv"),
    ]:
        model = timm.create_model(name, device="meta")
        cfg = model.pretrained_cfg
        assert model.default_cfg is cfg
        assert (cfg["architecture"], cfg["first_conv"], cfg["classifier"]) == (name, first, "head")
        assert cfg["tag"] == timm.models.get_pretrained_cfg(name).tag
        state = model.state_dict()
        assert state[first + ".weight"].shape[1] == 3 * 7 * 7  # reads the image's channels
        assert cfg["num_classes"] == state["head.weight"].shape[0] == 1000
        # This library's keys beside timm's: preprocessing and labels.
        assert cfg["labels"] == "imagenet-1k"
        assert cfg["input_size"] == [3, 224, 224]
        assert model.head_hidden_size == model.num_features


@pytest.mark.parametrize("how", ["pretrained_cfg", "pretrained_cfg_overlay"])
def test_a_pretrained_cfg_and_an_overlay_are_applied_as_timm_applies_them(how: str) -> None:
    timm = _timm()
    from timm.data import resolve_data_config

    given = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_pct=1.0)
    model = timm.create_model("t2t_vit_7", **{how: given}, **TINY)
    cfg = model.pretrained_cfg
    assert (cfg["mean"], cfg["std"], cfg["crop_pct"]) == (given["mean"], given["std"], 1.0)
    assert resolve_data_config(model=model)["mean"] == (0.5, 0.5, 0.5)
    # The library's own preprocessing reads the same cfg.
    image = torch.full((3, 64, 64), 0.8)  # 204 / 255: an 8-bit level
    batch = t2t_vit.preprocess(image, model)
    torch.testing.assert_close(batch, torch.full((1, 3, 64, 64), 1.2))
    features = timm.create_model("t2t_vit_7", features_only=True, **{how: given}, **TINY)
    assert features.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)


def test_feature_cls_getter_is_timms_wrapper_on_the_classifiers_intermediates() -> None:
    timm = _timm()
    from timm.models._features import FeatureGetterNet

    torch.manual_seed(0)
    reference = timm.create_model("t2t_vit_7", **TINY).eval()
    torch.manual_seed(0)
    getter = timm.create_model(
        "t2t_vit_7", features_only=True, feature_cls="getter", out_indices=(0, 2, 4), **TINY
    ).eval()
    assert isinstance(getter, FeatureGetterNet)
    assert getter.feature_info.reduction() == [4, 16, 16]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, (0, 2, 4), intermediates_only=True)
        got = getter(x)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    assert getter.pretrained_cfg["architecture"] == "t2t_vit_7"


def test_timm_keywords_that_do_not_apply_are_refused_in_one_line() -> None:
    timm = _timm()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        (
            dict(features_only=True, feature_cls="pyramid"),
            ValueError,
            "feature_cls='pyramid' is not one of timm's feature wrappers for t2t_vit_7; "
            "accepted: 'getter', 'hook', 'list', 'dict', 'fx', a class, or none (this "
            "library's T2TFeatures)",
        ),
        (
            dict(features_only=True, feature_cls="getter", levels="pyramid"),
            ValueError,
            "levels='pyramid' applies to this library's feature model; leave "
            "feature_cls='getter' out to use it, or drop levels",
        ),
        (dict(feature_cls="getter"), ValueError, "feature_cls='getter' needs features_only=True"),
        (
            dict(features_only=True, output_fmt="NHWC"),
            ValueError,
            "output_fmt='NHWC' is not available for T2T-ViT features_only; accepted: 'NCHW' "
            "(or feature_cls='getter', whose forward_intermediates takes 'NLC')",
        ),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error) as err:
            timm.create_model("t2t_vit_7", **kwargs, **TINY)
        assert str(err.value) == message, kwargs
    with pytest.raises(TypeError, match=r"^unknown T2TViT argument 'not_a_model_arg'"):
        timm.create_model("t2t_vit_7", not_a_model_arg=1)


def test_pretrained_with_in_chans_1_and_a_new_head_through_timm(
    no_hub: str, releases: ReleaseServer, t7_file: bytes
) -> None:
    """timm's own `test_model_load_pretrained` calls, offline: the weights come from the
    release mirror the tests serve, converted by this library's loader."""
    timm = _timm()
    releases.files[T7] = t7_file
    rgb = timm.create_model("t2t_vit_7", pretrained=True).eval()
    grey = timm.create_model("t2t_vit_7", pretrained=True, in_chans=1, num_classes=5).eval()
    headless = timm.create_model("t2t_vit_7", pretrained=True, in_chans=1, num_classes=0).eval()
    first = grey.pretrained_cfg["first_conv"] + ".weight"
    assert grey.state_dict()[first].shape[1] == 7 * 7
    assert grey.pretrained_cfg["input_size"][0] == 1
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        ours = headless(x)
        rgb.reset_classifier(0)
        theirs = rgb(x.expand(-1, 3, -1, -1))
    # A one-channel model gives on x what the RGB checkpoint gives on x repeated to RGB.
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)
    assert grey(x).shape == (2, 5)
