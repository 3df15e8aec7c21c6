"""Issue 23: evaluation matched by name (R4: items 6, 8), labels refused rather than
replaced (9, 27), one channel from RGB weights (10), and the papercuts of items 11, 12, 16,
20, 23, 32, 33; weights loaded into memory of the model's own (34)."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_models import COLOUR_RGB, colour_model, solid
from PIL import Image

import t2t_vit
from t2t_vit.cli import main


def _reversed_colour_model() -> t2t_vit.T2TViT:
    """The colour model with its classes in reverse order: labels red, green, blue, so that
    the sorted folder names (blue, green, red) are not the class order."""
    model = colour_model()
    head = model.head
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.copy_(head.weight.flip(0))
        head.bias.copy_(head.bias.flip(0))
    assert model.pretrained_cfg is not None
    model.pretrained_cfg["labels"] = ["red", "green", "blue"]
    return model


def _tree(root: Path, folders: dict[str, str]) -> Path:
    for i, (folder, colour) in enumerate(folders.items()):
        (root / folder).mkdir(parents=True, exist_ok=True)
        solid(COLOUR_RGB[colour], size=(40 + 3 * i, 36)).save(root / folder / f"img{i}.png")
    return root


def test_evaluate_matches_class_folders_named_after_the_models_labels(tmp_path: Path) -> None:
    model = _reversed_colour_model()
    tree = _tree(tmp_path / "val", {"blue": "blue", "green": "green", "red": "red"})
    preds = t2t_vit.predict(model, sorted(tree.glob("*/*.png")), top_k=1)
    assert [p[0].label for p in preds] == ["blue", "green", "red"]
    result = t2t_vit.evaluate(model, tree, top_k=1)
    assert (result.top1, result.images) == (1.0, 3)
    # A subset of the classes, matched by name as well.
    subset = _tree(tmp_path / "two", {"red": "red", "blue": "blue"})
    assert t2t_vit.evaluate(model, subset, top_k=1).top1 == 1.0


def test_evaluate_says_when_it_numbers_unnamed_folders_and_refuses_a_partial_match(
    tmp_path: Path,
) -> None:
    model = _reversed_colour_model()
    tree = _tree(tmp_path / "val", {"a": "blue", "b": "green", "c": "red"})
    with pytest.warns(
        UserWarning,
        match=r"the class folders are not named after the model's labels; they are numbered "
        r"in sorted folder-name order \('a' -> 'red', 'b' -> 'green', 'c' -> 'blue', \.\.\.\)",
    ):
        t2t_vit.evaluate(model, tree, top_k=1)
    partial = _tree(tmp_path / "partial", {"blue": "blue", "green": "green", "sky": "blue"})
    with pytest.raises(
        ValueError,
        match=r": 2 of 3 class folders are named after the model's labels, but 'sky' are not; ",
    ):
        t2t_vit.evaluate(model, partial, top_k=1)


def test_evaluate_matches_imagenet_wordnet_id_folders(tmp_path: Path) -> None:
    model = t2t_vit.T2TViT(
        img_size=32, tokens_type="patch", embed_dim=8, depth=1, num_heads=2, num_classes=1000
    ).eval()
    model.pretrained_cfg = {**t2t_vit.default_pretrained_cfg((32, 32)), "labels": "imagenet-1k"}
    wnids = t2t_vit.imagenet_wnids()
    picked = [wnids[999], wnids[3]]
    for wnid in picked:
        (tmp_path / wnid).mkdir()
        solid((10, 20, 30)).save(tmp_path / wnid / "x.png")
    with torch.no_grad():
        model.head.weight.zero_()  # type: ignore[operator]
        model.head.bias.zero_()  # type: ignore[operator]
        model.head.bias[999] = 5.0  # type: ignore[index]
    # Sorted order would make them classes 0 and 1; by WordNet id they are 999 and 3.
    result = t2t_vit.evaluate(model, tmp_path, top_k=1)
    assert (result.top1, result.images) == (0.5, 2)


def test_evaluate_does_not_follow_a_link_up_the_tree_into_other_classes(tmp_path: Path) -> None:
    model = colour_model()
    tree = _tree(tmp_path / "val", {"blue": "blue", "green": "green", "red": "red"})
    (tree / "red" / "up").symlink_to(tree)
    (tree / "green" / "sideways").symlink_to(tree / "blue")
    result = t2t_vit.evaluate(model, tree, top_k=1)
    assert (result.images, result.top1) == (3, 1.0)


def test_labels_of_the_wrong_length_or_an_unknown_set_are_refused() -> None:
    model = t2t_vit.T2TViT(embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=3)
    model.pretrained_cfg = {"labels": ["cat", "dog"]}
    with pytest.raises(
        ValueError,
        match=r"^pretrained_cfg labels \['cat', 'dog'\] name 2 classes but the model has 3; "
        r"set model\.pretrained_cfg\['labels'\] to 3 names",
    ):
        t2t_vit.predict(model, torch.zeros(1, 3, 224, 224, dtype=torch.uint8))
    model.pretrained_cfg = {"labels": "imagenet"}
    with pytest.raises(
        ValueError,
        match=r"^pretrained_cfg labels 'imagenet' is no known label set \(imagenet-1k, "
        r"cifar-10, cifar-100\); give one of them or a list of class names$",
    ):
        t2t_vit.resolve_labels(model)
    # A label-set name in another case is the same set for the count as for the names.
    ten = t2t_vit.T2TViT(embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=10)
    ten.pretrained_cfg = {"labels": "CIFAR-10"}
    assert t2t_vit.resolve_labels(ten)[3] == "cat"


def test_fallback_class_names_are_the_indices_in_code_and_docs() -> None:
    model = t2t_vit.T2TViT(embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=3)
    assert t2t_vit.resolve_labels(model) == ["0", "1", "2"]
    model.pretrained_cfg = {"labels": "imagenet-1k", "metrics": {"top1": 80.0}}
    model.reset_classifier(3)
    assert model.pretrained_cfg == {"labels": ["0", "1", "2"]}
    docs = (Path(__file__).parents[1] / "docs" / "inference.md").read_text()
    assert "class_<i>" not in docs
    assert "`'0'`, `'1'`, ..." in docs


def test_one_channel_from_rgb_weights_adapts_mean_and_std(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = t2t_vit.T2TViT(embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=3)
    t2t_vit.save_pretrained(model, tmp_path / "rgb")
    with pytest.warns(UserWarning, match="in_chans=1 differs"):
        grey = t2t_vit.from_pretrained(tmp_path / "rgb", in_chans=1)
    assert grey.pretrained_cfg is not None
    assert grey.pretrained_cfg["input_size"] == [1, 224, 224]
    assert grey.pretrained_cfg["mean"] == pytest.approx([(0.485 + 0.456 + 0.406) / 3])
    assert grey.pretrained_cfg["std"] == pytest.approx([(0.229 + 0.224 + 0.225) / 3])
    photo = tmp_path / "photo.png"
    solid((200, 100, 50)).save(photo)
    assert t2t_vit.preprocess(photo, grey).shape == (1, 1, 224, 224)
    assert len(t2t_vit.predict(grey, photo, top_k=1)[0]) == 1
    t2t_vit.save_pretrained(grey, tmp_path / "grey")
    assert main(["predict", str(photo), "--weights", str(tmp_path / "grey"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["image"] == str(photo)


def test_overlay_map_takes_an_image_path(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    solid((0, 0, 255), size=(8, 6)).save(photo)
    out = t2t_vit.overlay_map(photo, torch.ones(2, 2), alpha=1.0, colormap="gray")
    assert out.size == (8, 6)
    assert np.asarray(out).min() == 255
    same = t2t_vit.overlay_map(str(photo), torch.zeros(2, 2), alpha=0.0)
    assert np.asarray(same)[0, 0].tolist() == [0, 0, 255]


def test_create_model_of_a_path_or_none_says_what_it_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved7").mkdir()
    advice = (
        "create_model builds a preset by name (t2t_vit.list_models()), from_pretrained loads "
        "a folder written by save_pretrained or t2t-vit convert: "
    )
    for name in ("saved7", "./saved7", Path("saved7")):
        shown = repr(os.fspath(name))
        with pytest.raises(ValueError, match=r"is a folder; create_model builds") as err:
            t2t_vit.create_model(name)  # type: ignore[arg-type]
        assert str(err.value) == (
            f"{shown} is a folder; {advice}t2t_vit.from_pretrained({shown}), or "
            f"create_model({shown}, pretrained=True)"
        )
    with pytest.raises(
        TypeError,
        match=r"^create_model takes a model name such as 't2t-vit-14' \(t2t_vit\.list_models\(\) "
        r"lists them\), got NoneType None$",
    ):
        t2t_vit.create_model(None)  # type: ignore[arg-type]


def test_out_of_range_pyramid_out_indices_list_the_pyramid_levels() -> None:
    with pytest.raises(ValueError, match=r"^out_indices entry 9 is out of range") as err:
        t2t_vit.create_model("t2t-vit-7", features_only=True, levels="pyramid", out_indices=[9])
    assert str(err.value) == (
        "out_indices entry 9 is out of range: valid are 0..3 or -4..-1. Levels: "
        "0 tokens_to_token.attention1 (stride 4, 64 channels), "
        "1 tokens_to_token.attention2 (stride 8, 64 channels), "
        "2 blocks.6 (stride 16, 256 channels), 3 downsample (stride 32, 256 channels)"
    )


def test_info_of_an_image_file_says_it_is_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    solid((1, 2, 3)).save(photo)
    assert main(["info", str(photo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"t2t-vit info: error: {str(photo)!r} is an image file; info takes a preset or registry "
        f"name, or a folder written by save_pretrained (to classify it: t2t-vit predict "
        f"--model NAME {photo})"
    )


def test_a_symlink_loop_and_an_empty_file_are_named_as_such(tmp_path: Path) -> None:
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    with pytest.raises(ValueError, match=r"a symbolic link loop \(the link leads back to itself\)"):
        t2t_vit.load_image(loop)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"^cannot read image '.*empty\.jpg': empty file \(0 bytes\)$"
    ):
        t2t_vit.load_image(empty)


def test_a_long_strip_is_not_resized_whole_before_the_crop() -> None:
    from t2t_vit.inference.preprocess import _center_crop, _resize_shorter

    rng = np.random.default_rng(0)
    strip = Image.fromarray(rng.integers(0, 256, (4, 3000, 3), dtype=np.uint8))
    transform = t2t_vit.EvalTransform(t2t_vit.default_pretrained_cfg())
    start = time.perf_counter()
    crop = transform.resize_crop(strip)
    fast = time.perf_counter() - start
    # The whole resize (248x186000) then the crop: the same pixels, within Pillow's rounding.
    whole = _center_crop(_resize_shorter(strip, 248, Image.Resampling.BICUBIC), 224, 224)
    assert crop.size == (224, 224)
    diff = np.abs(np.asarray(crop, dtype=int) - np.asarray(whole, dtype=int))
    assert diff.max() <= 2
    assert fast < 0.5
    # A 1x200000 strip would need 248x49.6M pixels (37 GB) resized whole.
    line = Image.fromarray(rng.integers(0, 256, (1, 200_000, 3), dtype=np.uint8))
    assert transform.resize_crop(line).size == (224, 224)
    # An ordinary photo is resized whole, exactly as before.
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    expected = _center_crop(_resize_shorter(photo, 248, Image.Resampling.BICUBIC), 224, 224)
    assert np.array_equal(np.asarray(transform.resize_crop(photo)), np.asarray(expected))


def test_loaded_weights_are_the_models_own_memory(tmp_path: Path) -> None:
    model = t2t_vit.T2TViT(embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=3)
    folder = t2t_vit.save_pretrained(model, tmp_path / "m")
    loaded = t2t_vit.from_pretrained(folder)
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    # As `cp other model.safetensors` does: the same file, rewritten in place.
    with open(weights, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * (size - size // 2))
    after = loaded.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.data_ptr() % 64 == 0 for p in loaded.parameters())
    with open(weights, "r+b") as f:
        f.truncate(16)  # a shorter file: no SIGBUS either
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())


def test_a_batch_of_one_round_trips_bit_exactly(tmp_path: Path) -> None:
    model = t2t_vit.create_model("t2t-vit-7").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
    loaded = t2t_vit.from_pretrained(t2t_vit.save_pretrained(model, tmp_path / "m"))
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_loading_takes_at_most_half_the_time_of_a_random_initialisation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = t2t_vit.save_pretrained(t2t_vit.create_model("t2t-vit-14"), tmp_path / "m")
    t2t_vit.from_pretrained(folder)  # imports and caches warm

    def best(call: object) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            call()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        create = best(lambda: t2t_vit.create_model("t2t-vit-14"))
        load = best(lambda: t2t_vit.from_pretrained(folder))
    assert load <= 0.5 * create, (load, create)
