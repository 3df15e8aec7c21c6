"""Shipped class names and `predict`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inference_models import COLOUR_CLASSES, COLOUR_RGB, colour_model, solid, tiny_model
from PIL import Image

import t2t_vit


def test_imagenet_names_are_the_standard_1000_in_index_order() -> None:
    names = t2t_vit.load_labels("imagenet-1k")
    assert len(names) == 1000
    assert len(set(names)) == 1000
    expected = {
        0: "tench",
        1: "goldfish",
        2: "great white shark",
        207: "golden retriever",
        281: "tabby",
        285: "Egyptian cat",
        409: "analog clock",
        817: "sports car",
        954: "banana",
        999: "toilet tissue",
    }
    for index, name in expected.items():
        assert names[index] == name, index
    assert (names[134], names[517], names[638], names[639]) == (
        "crane (bird)",
        "crane (machine)",
        "maillot",
        "tank suit",
    )
    wnids = t2t_vit.imagenet_wnids()
    assert wnids == sorted(wnids)
    assert (wnids[0], wnids[207], wnids[999]) == ("n01440764", "n02099601", "n15075141")


def test_cifar_names() -> None:
    cifar10 = t2t_vit.load_labels("cifar-10")
    assert cifar10 == [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    cifar100 = t2t_vit.load_labels("CIFAR-100")
    assert len(cifar100) == 100
    assert cifar100 == sorted(cifar100)  # the fine labels are numbered alphabetically
    assert (cifar100[0], cifar100[1], cifar100[99]) == ("apple", "aquarium_fish", "worm")


def test_unknown_label_set_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown label set") as err:
        t2t_vit.load_labels("imagenet-21k")
    assert str(err.value) == (
        "unknown label set 'imagenet-21k'; known: imagenet-1k, cifar-10, cifar-100"
    )


def test_labels_follow_the_config_and_fall_back_to_indices() -> None:
    model = tiny_model(num_classes=10)
    # An untrained model's default config names its 10 classes by index, not ImageNet's.
    assert t2t_vit.resolve_labels(model) == [str(i) for i in range(10)]
    # Labels that do not fit the head are refused, never replaced (issue 23, item 9).
    model.pretrained_cfg = {**t2t_vit.default_pretrained_cfg((32, 32)), "labels": ["a", "b"]}
    with pytest.raises(ValueError, match=r"^pretrained_cfg labels \['a', 'b'\] name 2 classes"):
        t2t_vit.resolve_labels(model)
    model.pretrained_cfg = {**t2t_vit.default_pretrained_cfg((32, 32)), "labels": "cifar-10"}
    assert t2t_vit.resolve_labels(model)[3] == "cat"
    big = tiny_model(num_classes=1000)
    assert t2t_vit.resolve_labels(big)[281] == "tabby"


def test_predict_ranks_classes_with_probabilities_and_labels() -> None:
    model = colour_model()
    images = [solid(COLOUR_RGB[c]) for c in COLOUR_CLASSES]
    results = t2t_vit.predict(model, images, top_k=2)
    assert [r[0].label for r in results] == list(COLOUR_CLASSES)
    with torch.no_grad():
        probs = model(t2t_vit.preprocess(images, model)).softmax(-1)
    for i, ranked in enumerate(results):
        assert len(ranked) == 2
        assert ranked[0].probability >= ranked[1].probability
        for p in ranked:
            assert p.label == COLOUR_CLASSES[p.class_index]
            assert abs(p.probability - float(probs[i, p.class_index])) < 1e-6
    # top_k is capped at the class count; tuples unpack as (index, label, probability)
    (index, label, _probability), *_ = t2t_vit.predict(model, images[0], top_k=10)[0]
    assert (index, label) == (0, "blue")
    assert len(t2t_vit.predict(model, images[0], top_k=10)[0]) == 3


def test_predict_uses_eval_mode_and_restores_training_flag() -> None:
    model = tiny_model(drop_rate=0.5)  # dropout would make two calls differ in train mode
    model.train()
    img = Image.new("RGB", (40, 40), (120, 30, 200))
    first = t2t_vit.predict(model, img, top_k=3)
    second = t2t_vit.predict(model, img, top_k=3)
    assert first == second
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = model(t2t_vit.preprocess(img, model)).softmax(-1).topk(3)
    assert [p.class_index for p in first[0]] == expected.indices[0].tolist()


def test_predict_rejects_top_k_below_one() -> None:
    with pytest.raises(ValueError, match=r"^top_k must") as err:
        t2t_vit.predict(colour_model(), solid((1, 2, 3)), top_k=0)
    assert str(err.value) == "top_k must be at least 1, got 0"


def test_predict_with_the_arguments_swapped_names_what_it_takes(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    solid(COLOUR_RGB["red"]).save(path)
    with pytest.raises(
        TypeError,
        match=r"^predict\(model, images\) takes a model \(nn\.Module\) first, got str "
        r"'.*photo\.png'; the images come second: predict\(model, images\)$",
    ):
        t2t_vit.predict(str(path), colour_model())  # type: ignore[arg-type]


def test_predict_with_a_features_model_says_it_needs_a_classifier() -> None:
    features = t2t_vit.create_model("t2t-vit-7", features_only=True, img_size=32)
    with pytest.raises(
        TypeError,
        match=r"^predict needs a classifier; got a T2TFeatures \(features_only=True\), "
        r"which returns feature maps: load the model without features_only$",
    ):
        t2t_vit.predict(features, solid(COLOUR_RGB["red"]))


def test_predict_with_a_headless_model_says_it_has_no_classes() -> None:
    model = tiny_model(num_classes=0)
    with pytest.raises(
        ValueError,
        match=r"^predict needs a classifier; the model has num_classes=0 \(no head\): "
        r"give it a head with model\.reset_classifier\(n\)$",
    ):
        t2t_vit.predict(model, solid(COLOUR_RGB["red"]))


def test_evaluate_with_the_arguments_swapped_or_a_features_model_names_what_it_takes(
    tmp_path: Path,
) -> None:
    with pytest.raises(
        TypeError,
        match=r"^evaluate\(model, root\) takes a model \(nn\.Module\) first, got str 'data'; "
        r"the folder comes second: evaluate\(model, root\)$",
    ):
        t2t_vit.evaluate("data", colour_model())  # type: ignore[arg-type]
    features = t2t_vit.create_model("t2t-vit-7", features_only=True, img_size=32)
    with pytest.raises(TypeError, match=r"^evaluate needs a classifier; got a T2TFeatures"):
        t2t_vit.evaluate(features, tmp_path)
