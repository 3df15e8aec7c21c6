"""timm sees every preset and weight (`import t2t_vit.timm`): names, pretrained configs,
loading through this library's own loader, preprocessing, bad input, and timm's feature
contract (`FeatureInfo`, `FeatureGetterNet`, one index space).

Interop tests: they run in CI's interop venv (`pytest -m interop`), where timm is
installed; a missing package there fails the import, never skips."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from checkpoints import T7, assert_state
from fakehub import ReleaseServer

import t2t_vit

pytestmark = pytest.mark.interop

TINY: dict[str, Any] = dict(img_size=64, embed_dim=32, depth=3, num_heads=2, token_dim=8)

OFFICIAL_NAMES = [
    "t2t_vit_7",
    "t2t_vit_10",
    "t2t_vit_12",
    "t2t_vit_14",
    "t2t_vit_19",
    "t2t_vit_24",
    "t2t_vit_t_14",
    "t2t_vit_t_19",
    "t2t_vit_t_24",
    "t2t_vit_14_resnext",
    "t2t_vit_14_wide",
    "t2t_vit_14_384",
]


def _timm_tag(name: str) -> str:
    """`t2t-vit-24.token-labeling` -> `t2t_vit_24.token-labeling`."""
    preset, tag = name.split(".")
    return f"{preset.replace('-', '_')}.{tag}"


def _timm() -> Any:
    import timm

    import t2t_vit.timm  # noqa: F401  (registers the models)

    return timm


def test_every_preset_is_registered_under_its_official_underscore_name() -> None:
    timm = _timm()
    assert sorted(timm.list_models("t2t_vit*")) == sorted(OFFICIAL_NAMES)
    assert [n.replace("_", "-") for n in OFFICIAL_NAMES] == t2t_vit.list_models()
    model = timm.create_model("t2t_vit_t_14", num_classes=5, drop_path_rate=0.1)
    assert isinstance(model, t2t_vit.T2TViT)
    reference = t2t_vit.create_model("t2t-vit-t-14", num_classes=5, drop_path_rate=0.1)
    assert model.config == reference.config


def test_every_registered_weight_is_a_timm_tag_with_its_pretrained_cfg() -> None:
    timm = _timm()
    expected = {_timm_tag(name) for name in t2t_vit.WEIGHTS}
    assert set(timm.list_pretrained("t2t_vit*")) == expected
    for name, entry in t2t_vit.WEIGHTS.items():
        cfg = timm.models.get_pretrained_cfg(_timm_tag(name))
        assert cfg.input_size == (3, entry.img_size, entry.img_size), name
        assert (cfg.crop_pct, cfg.interpolation) == (entry.crop_pct, entry.interpolation)
        assert (cfg.mean, cfg.std) == (entry.mean, entry.std)
        assert (cfg.num_classes, cfg.license) == (entry.num_classes, entry.license)
        assert cfg.url == entry.url
    # A bare name's default tag is the library's default weights.
    assert timm.models.get_pretrained_cfg("t2t_vit_14").tag == "official"
    assert timm.models.get_pretrained_cfg("t2t_vit_t_14").tag == "mmpretrain"
    assert not timm.models.get_pretrained_cfg("t2t_vit_14_wide").has_weights


def test_pretrained_loads_through_the_librarys_loader_from_the_original_release(
    no_hub: str, releases: ReleaseServer, t7_file: bytes, t7_state: dict[str, torch.Tensor]
) -> None:
    timm = _timm()
    releases.files[T7] = t7_file
    model = timm.create_model("t2t_vit_7", pretrained=True)
    assert_state(model, t7_state)
    assert model.pretrained_cfg["source"]["url"] == t2t_vit.WEIGHTS["t2t-vit-7.official"].url
    tagged = timm.create_model("t2t_vit_7.official", pretrained=True, num_classes=10)
    assert tagged.head.weight.shape == (10, 256)
    features = timm.create_model("t2t_vit_7", pretrained=True, features_only=True)
    assert isinstance(features, t2t_vit.T2TFeatures)
    assert torch.equal(features.blocks[6].mlp.fc1.weight, t7_state["blocks.6.mlp.fc1.weight"])
    # Downloaded once from the release mirror, converted, then served from the cache.
    assert releases.gets(T7) == 1
    # A size the stem cannot take: one line, the same through timm as through the library.
    too_small = r"img_size \(2, 2\) is too small for the T2T stem .* at least 3"
    with pytest.raises(t2t_vit.PretrainedLoadError, match=too_small) as ours:
        t2t_vit.create_model("t2t-vit-7", pretrained=True, img_size=2)
    with pytest.raises(t2t_vit.PretrainedLoadError, match=too_small) as theirs:
        timm.create_model("t2t_vit_7", pretrained=True, img_size=2)
    assert str(theirs.value) == str(ours.value)
    assert "\n" not in str(ours.value)


def _images() -> list[Any]:
    from PIL import Image

    images = []
    for w, h in [(96, 72), (64, 160), (300, 200), (50, 50)]:
        image = Image.new("RGB", (w, h))
        image.putdata(
            [((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(h) for x in range(w)]
        )
        images.append(image)
    return images


@pytest.mark.parametrize("name", ["t2t_vit_7", "t2t_vit_14.cifar10", "t2t_vit_14_384"])
def test_timm_data_config_and_transform_give_the_tensor_of_t2t_vit_preprocess(name: str) -> None:
    timm = _timm()
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(name, img_size=96 if "384" not in name else 128)
    model.pretrained_cfg = dict(
        timm.models.get_pretrained_cfg(name).to_dict(), input_size=[3, 80, 80]
    )
    config = resolve_data_config(model=model)
    transform = create_transform(**config)
    for image in _images():
        ours = t2t_vit.preprocess(image, model)
        theirs = transform(image).unsqueeze(0)
        assert ours.shape == theirs.shape == (1, 3, 80, 80)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_bad_input_through_timm_names_the_value_and_what_is_accepted() -> None:
    timm = _timm()
    with pytest.raises(RuntimeError, match=r"^Unknown model \(t2t_vit_15\)$"):
        timm.create_model("t2t_vit_15")
    with pytest.raises(ValueError, match="unknown pretrained tag") as tag:
        timm.create_model("t2t_vit_14.cifar11")
    assert str(tag.value) == (
        "unknown pretrained tag 'cifar11' for t2t_vit_14; its weights: t2t_vit_14.official, "
        "t2t_vit_14.cifar10, t2t_vit_14.cifar100"
    )
    with pytest.raises(ValueError, match="out of range") as ours:
        t2t_vit.create_model("t2t-vit-7", features_only=True, out_indices=(0, 9), levels="all")
    with pytest.raises(ValueError, match="out of range") as theirs:
        timm.create_model("t2t_vit_7", features_only=True, out_indices=(0, 9), levels="all")
    assert str(theirs.value) == str(ours.value)
    assert str(ours.value).startswith("out_indices entry 9 is out of range: valid are 0..8")
    with pytest.raises(ValueError, match=r"^output_stride=8 is not available: .* pass 16 "
                       r"\(smp: encoder_output_stride=16\), 32 or None$"):  # fmt: skip
        timm.create_model("t2t_vit_7", features_only=True, output_stride=8)
    capped = timm.create_model("t2t_vit_7", features_only=True, output_stride=16)
    assert capped.feature_info.reduction() == [4, 8, 16, 16]
    with pytest.raises(ValueError, match=r"^no pretrained weights for preset 't2t-vit-14-wide'"):
        timm.create_model("t2t_vit_14_wide", pretrained=True)
    with pytest.raises(TypeError) as ours_kw:
        t2t_vit.create_model("t2t-vit-7", img_size="big")
    with pytest.raises(TypeError) as theirs_kw:
        timm.create_model("t2t_vit_7", img_size="big")
    assert str(theirs_kw.value) == str(ours_kw.value)


# -- timm's feature contract --------------------------------------------------------------


def _calls(info: Any) -> dict[str, Any]:
    """Every call of timm's FeatureInfo, with None, an int, a negative int and a list."""
    n = len(info)
    out: dict[str, Any] = {"len": n, "out_indices": tuple(info.out_indices)}
    for idx in [None, 0, n - 1, -1, [0, n - 1], (0,)]:
        key = repr(idx)
        out[f"channels {key}"] = info.channels(idx)
        out[f"reduction {key}"] = info.reduction(idx)
        out[f"module_name {key}"] = info.module_name(idx)
        out[f"get {key}"] = info.get("num_chs", idx)
        out[f"get_dicts {key}"] = info.get_dicts(idx=idx)
        out[f"get_dicts keys {key}"] = info.get_dicts(keys=["module", "index"], idx=idx)
    out["items"] = [info[i] for i in range(n)]
    out["last"] = info[-1]
    other = info.from_other((0, -1))
    out["from_other"] = (tuple(other.out_indices), other.channels(), len(other))
    out["from_other int"] = tuple(info.from_other(2).out_indices), info.from_other(2).reduction()
    return out


@pytest.mark.parametrize("name", ["vit_small_patch16_224", "resnet18", "t2t_vit_7"])
def test_feature_info_answers_every_call_as_timms(name: str) -> None:
    timm = _timm()
    from timm.models import FeatureInfo as TimmFeatureInfo

    if name.startswith("t2t"):
        model = timm.create_model(name, features_only=True, out_indices=(0, 3, -1), levels="all")
        ours = model.feature_info
        theirs = TimmFeatureInfo(copy.deepcopy(ours.info), ours.out_indices)
    else:
        model = timm.create_model(name, features_only=True, pretrained=False)
        theirs = model.feature_info
        ours = t2t_vit.FeatureInfo(copy.deepcopy(theirs.info), theirs.out_indices)
    assert isinstance(ours, t2t_vit.FeatureInfo)
    assert _calls(ours) == _calls(theirs)


def test_timms_feature_getter_on_the_classifier_gives_the_feature_models_maps() -> None:
    _timm()
    from timm.models._features import FeatureGetterNet

    torch.manual_seed(0)
    classifier = t2t_vit.T2TViT(**TINY).eval()
    features = t2t_vit.create_feature_model(classifier, out_indices=(0, 1, 3)).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = features(x)
        classifier_maps = classifier.forward_intermediates(x, (0, 1, 3), intermediates_only=True)
    getter = FeatureGetterNet(copy.deepcopy(classifier), out_indices=(0, 1, 3)).eval()
    assert getter.feature_info.module_name() == features.feature_info.module_name()
    assert getter.feature_info.channels() == [8, 8, 32]
    # Pruned as timm's ViT: the blocks after blocks.1 (level 3), the norm and the head.
    assert len(getter.model.blocks) == 2
    assert isinstance(getter.model.norm, torch.nn.Identity)
    assert getter.model.num_classes == 0
    with torch.no_grad():
        got = getter(x)
    for a, b, c in zip(got, expected, classifier_maps, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, c)


def test_features_only_through_timm_is_the_librarys_feature_model_in_one_index_space() -> None:
    timm = _timm()
    torch.manual_seed(0)
    model = timm.create_model(
        "t2t_vit_7", features_only=True, out_indices=(1, 4), levels="all", **TINY
    ).eval()
    torch.manual_seed(0)
    ours = t2t_vit.create_model("t2t-vit-7", features_only=True, out_indices=(1, 4), **TINY)
    ours.eval()
    assert type(model) is t2t_vit.T2TFeatures
    assert model.feature_info.module_name() == ["tokens_to_token.attention2", "blocks.2"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        again = model.forward_intermediates(x, indices=(1, 4))
        same = ours(x)
    for a, b, c in zip(maps, again, same, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, c)
    # timm's default for features_only: one level per stride, as its hierarchical models.
    pyramid = timm.create_model("t2t_vit_7", features_only=True, **TINY)
    assert pyramid.levels == "pyramid"
    assert pyramid.feature_info.module_name() == [
        "tokens_to_token.attention1",
        "tokens_to_token.attention2",
        "blocks.2",
        "downsample",
    ]
    assert pyramid.feature_info.reduction() == [4, 8, 16, 32]
