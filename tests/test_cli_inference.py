"""The `t2t-vit predict | evaluate | info | attention` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from inference_models import (
    COLOUR_CLASSES,
    COLOUR_RGB,
    colour_model,
    photo_like,
    real_photos,
    solid,
    tiny_model,
)
from PIL import Image

import t2t_vit
from t2t_vit.cli import main
from t2t_vit.weights import WEIGHTS

#: What each class folder holds: (folder, colour drawn). Two are drawn in the wrong colour.
TREE = [
    ("blue", "blue"),
    ("blue", "blue"),
    ("green", "green"),
    ("green", "red"),
    ("red", "red"),
    ("red", "green"),
]


@pytest.fixture
def colour_weights(tmp_path: Path) -> Path:
    return t2t_vit.save_pretrained(colour_model(), tmp_path / "colour")


def write_tree(root: Path, entries: list[tuple[str, str]]) -> list[Path]:
    paths = []
    for i, (folder, colour) in enumerate(entries):
        (root / folder).mkdir(parents=True, exist_ok=True)
        path = root / folder / f"img{i}.png"
        solid(COLOUR_RGB[colour], size=(40 + 3 * i, 36)).save(path)
        paths.append(path)
    return paths


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_evaluate_reports_the_exact_accuracy_and_loss(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_tree(tmp_path / "val", TREE)
    status, out, _ = run(
        capsys, "evaluate", str(tmp_path / "val"), "--weights", str(colour_weights),
        "--workers", "0", "--batch-size", "4", "--json",
    )  # fmt: skip
    assert status == 0
    result = json.loads(out)
    assert result["images"] == 6
    assert result["top1"] == 4 / 6  # the two images drawn in another class's colour miss
    assert (result["top_k"], result["top_k_accuracy"]) == (3, 1.0)  # top-5 capped at 3 classes
    assert "top5" not in result
    model = colour_model()
    targets = torch.tensor([COLOUR_CLASSES.index(folder) for folder, _ in TREE])
    with torch.no_grad():
        logits = model(t2t_vit.preprocess(paths, model))
    assert logits.argmax(-1).tolist() == [COLOUR_CLASSES.index(c) for _, c in TREE]
    assert abs(result["loss"] - float(F.cross_entropy(logits, targets))) < 1e-6
    assert result["images_per_second"] > 0

    status, out, err = run(
        capsys, "evaluate", str(tmp_path / "val"), "--weights", str(colour_weights),
        "--workers", "0",
    )  # fmt: skip
    assert status == 0
    assert out.startswith("6 images: top-1 66.67%  top-3 100.00%  loss ")
    assert out.rstrip().endswith("images/s")
    assert "evaluate" in err  # the tqdm progress bar


def test_evaluate_limit_spreads_over_classes(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tree(tmp_path / "val", TREE)
    status, out, _ = run(
        capsys, "evaluate", str(tmp_path / "val"), "--weights", str(colour_weights),
        "--workers", "0", "--limit", "3", "--json", "--no-progress",
    )  # fmt: skip
    assert status == 0
    result = json.loads(out)
    # images 0, 2, 4 of the sorted list: blue/blue, green/green, red/red
    assert (result["images"], result["top1"]) == (3, 1.0)


def test_evaluate_with_a_worker_process_matches_a_manual_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model("transformer", num_classes=3)
    weights = t2t_vit.save_pretrained(model, tmp_path / "tiny")
    entries = [(c, c) for c in COLOUR_CLASSES for _ in range(2)]
    root = tmp_path / "val"
    paths = []
    for i, (folder, _) in enumerate(entries):
        (root / folder).mkdir(parents=True, exist_ok=True)
        paths.append(root / folder / f"p{i}.jpg")
        Image.fromarray(photo_like(50 + 7 * i, 45, seed=i)).save(paths[-1], quality=90)
    status, out, _ = run(
        capsys, "evaluate", str(root), "--model", "tiny", "--weights", str(weights),
        "--workers", "1", "--batch-size", "4", "--json", "--no-progress",
    )  # fmt: skip
    assert status == 0
    result = json.loads(out)
    targets = torch.tensor([COLOUR_CLASSES.index(f) for f, _ in entries])
    with torch.no_grad():
        logits = model(t2t_vit.preprocess(paths, model))
    correct = int((logits.argmax(-1) == targets).sum())
    assert result["top1"] == correct / 6
    assert result["loss"] == pytest.approx(float(F.cross_entropy(logits, targets)), abs=1e-5)


def test_evaluate_errors_name_the_problem(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def error(root: Path) -> str:
        status, _, err = run(
            capsys, "evaluate", str(root), "--weights", str(colour_weights), "--workers", "0",
            "--no-progress",
        )  # fmt: skip
        assert status == 2
        return err.strip()

    assert error(tmp_path / "absent") == (
        f"t2t-vit evaluate: error: evaluation folder not found: '{tmp_path / 'absent'}'"
    )
    (tmp_path / "flat").mkdir()
    solid((1, 2, 3)).save(tmp_path / "flat" / "a.png")
    assert error(tmp_path / "flat") == (
        f"t2t-vit evaluate: error: no class folders in '{tmp_path / 'flat'}'; expected an "
        f"ImageFolder tree {tmp_path / 'flat'}/<class>/<image> with one folder per class"
    )
    write_tree(tmp_path / "two", [("sky", "blue"), ("rose", "red")])
    assert error(tmp_path / "two") == (
        f"t2t-vit evaluate: error: '{tmp_path / 'two'}' has 2 class folders but the model "
        f"has 3 classes, and the folders are not named after its labels"
    )
    write_tree(tmp_path / "hole", [("blue", "blue"), ("red", "red")])
    (tmp_path / "hole" / "green").mkdir()
    (tmp_path / "hole" / "green" / "notes.txt").write_text("no image")
    assert error(tmp_path / "hole").startswith(
        "t2t-vit evaluate: error: class folders without images (.jpg, .jpeg, "
    )
    assert error(tmp_path / "hole").endswith(f"in '{tmp_path / 'hole'}': green")
    write_tree(tmp_path / "bad", [("blue", "blue"), ("green", "green"), ("red", "red")])
    (tmp_path / "bad" / "green" / "zz.jpg").write_bytes(b"not a jpeg")
    assert f"cannot read image '{tmp_path / 'bad' / 'green' / 'zz.jpg'}'" in error(tmp_path / "bad")


def test_predict_json_parses_sorted_probabilities(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_tree(tmp_path / "imgs", [("x", "red"), ("x", "blue")])
    status, out, _ = run(
        capsys, "predict", *map(str, paths), "--weights", str(colour_weights), "--top-k", "2",
        "--json",
    )  # fmt: skip
    assert status == 0
    result = json.loads(out)
    assert [r["image"] for r in result] == [str(p) for p in paths]
    assert [r["predictions"][0]["label"] for r in result] == ["red", "blue"]
    assert [r["predictions"][0]["index"] for r in result] == [2, 0]
    for r in result:
        probs = [p["probability"] for p in r["predictions"]]
        assert len(probs) == 2
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1.0 + 1e-6
        assert all(0.0 < p < 1.0 for p in probs)

    status, out, _ = run(capsys, "predict", str(paths[0]), "--weights", str(colour_weights))
    lines = out.splitlines()
    assert lines[0] == str(paths[0])
    assert len(lines) == 4  # top-5 capped at 3 classes
    assert lines[1].split()[1:] == ["2", "red"]


def test_predict_errors(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jpg"
    image = write_tree(tmp_path / "imgs", [("x", "red")])[0]
    status, _, err = run(capsys, "predict", str(missing), "--weights", str(colour_weights))
    assert status == 2
    assert err.strip() == f"t2t-vit predict: error: image file not found: '{missing}'"
    status, _, err = run(capsys, "predict", str(missing))
    assert (status, err.strip()) == (
        2,
        "t2t-vit predict: error: give --model NAME, or --weights DIR with a saved model",
    )
    status, _, err = run(
        capsys, "predict", str(image), "--model", "t2t-vit-14", "--weights", str(colour_weights)
    )
    assert status == 2
    assert err.startswith(
        f"t2t-vit predict: error: the weights in '{colour_weights}' are not a t2t-vit-14: "
        f"tokens_type='patch' (preset: 'performer'), embed_dim=8 (preset: 384)"
    )
    status, _, err = run(capsys, "predict", str(image), "--weights", str(tmp_path))
    assert err.strip() == (
        f"t2t-vit predict: error: --weights '{tmp_path}' is not a folder written by "
        f"save_pretrained (no config.json in it)"
    )
    # Without --weights the model comes from from_pretrained(NAME); its errors are reported.
    status, _, err = run(capsys, "predict", str(image), "--model", str(tmp_path / "nowhere"))
    assert status == 2
    assert err.startswith("t2t-vit predict: error: ")


def test_info_prints_architecture_params_macs_and_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "info", "t2t-vit-7")
    assert status == 0
    model = t2t_vit.create_model("t2t-vit-7")
    params = t2t_vit.count_params(model, trainable_only=True)
    total = t2t_vit.count_params(model)
    # The count the zoo table shows (whole state dict) is the one labelled so.
    assert total == WEIGHTS["t2t-vit-7.official"].params
    macs = t2t_vit.count_macs(model, 224)
    lines = out.splitlines()
    assert lines[0] == "model: t2t-vit-7"
    assert lines[2] == (
        "architecture: tokens_type=performer embed_dim=256 depth=7 num_heads=4 mlp_ratio=2.0 "
        "token_dim=64 num_classes=1000"
    )
    assert lines[3] == "input: 224x224 -> 14x14 tokens"
    assert lines[4] == (
        f"params: {total:,} ({total / 1e6:.2f} M) in the state dict, as the zoo table counts; "
        f"{params:,} ({params / 1e6:.2f} M) trainable"
    )
    assert lines[5] == f"MACs: {macs:,} ({macs / 1e9:.2f} G)"
    assert lines[-2] == "labels: imagenet-1k"
    # The registry's figures for the official T2T-ViT-7 weights, without a download.
    # An unknown figure (the official release states no top-5) is left out, not "None".
    assert lines[-1] == "metrics: top1=71.7  dataset=imagenet-1k"
    assert lines[1].startswith("source: t2t-vit-7.official from https://github.com/")

    status, out, _ = run(capsys, "info", "t2t-vit-14-wide")
    assert status == 0
    assert out.splitlines()[1] == "source: preset (no released weights; randomly initialised)"
    assert out.splitlines()[-1] == "metrics: none in the config"

    model = tiny_model("performer")
    cfg = {
        **t2t_vit.default_pretrained_cfg((32, 32), num_classes=model.num_classes),
        "metrics": {"top1": 71.7, "top5": 90.8},
    }
    weights = t2t_vit.save_pretrained(model, tmp_path / "w", pretrained_cfg=cfg)
    status, out, _ = run(capsys, "info", str(weights))
    assert status == 0
    assert out.splitlines()[-1] == "metrics: top1=71.7  top5=90.8"
    assert f"source: {weights}" in out.splitlines()


def test_attention_writes_the_overlay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model("transformer", img_size=64)
    weights = t2t_vit.save_pretrained(model, tmp_path / "w")
    photo = real_photos()["grace_hopper"]
    out_png = tmp_path / "map.png"
    status, out, _ = run(
        capsys, "attention", str(photo), "--weights", str(weights), "--out", str(out_png)
    )
    assert status == 0
    assert out.strip() == f"wrote {out_png} (64x64, 4x4 tokens)"
    written = np.asarray(Image.open(out_png))
    loaded = t2t_vit.from_pretrained(weights)
    transform = t2t_vit.EvalTransform.from_model(loaded)
    crop = transform.resize_crop(photo)
    mask = t2t_vit.rollout(loaded, transform.to_tensor(crop)[None])[0]
    expected = np.asarray(t2t_vit.overlay_map(crop, mask, alpha=0.5))
    assert written.shape == (64, 64, 3)
    assert np.array_equal(written, expected)
    assert not np.array_equal(written, np.asarray(crop))


def test_missing_pillow_is_reported_with_the_extra(
    tmp_path: Path,
    colour_weights: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_tree(tmp_path / "imgs", [("x", "red")])[0]
    monkeypatch.setitem(sys.modules, "PIL", None)
    status, _, err = run(capsys, "predict", str(path), "--weights", str(colour_weights))
    assert (status, err.strip()) == (
        2,
        "t2t-vit predict: error: image preprocessing needs Pillow; install it with: "
        'pip install ".[image]" in a clone of t2t-vit (pip install "t2t-vit[image]" once it '
        "is on PyPI)",
    )


def test_predict_and_evaluate_both_follow_symlinked_folders_each_folder_once(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = write_tree(tmp_path / "outside", [("deep", "red")])[0]
    inside = write_tree(tmp_path / "imgs", [("a", "blue")])[0]
    (tmp_path / "imgs" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "imgs" / "loop").symlink_to(tmp_path / "imgs")  # seen once, not forever
    status, out, _ = run(
        capsys, "predict", str(tmp_path / "imgs"), "--weights", str(colour_weights), "--json"
    )
    assert status == 0
    images = [r["image"] for r in json.loads(out)]
    assert images == [str(inside), str(tmp_path / "imgs" / "link" / "deep" / outside.name)]

    # evaluate reads the same files: a class folder's symlinked subfolder counts.
    tree = tmp_path / "tree"
    write_tree(tree, [("blue", "blue"), ("green", "green"), ("red", "red")])
    (tree / "red" / "more").symlink_to(tmp_path / "outside")
    status, out, _ = run(
        capsys, "evaluate", str(tree), "--weights", str(colour_weights), "--json",
        "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["images"] == 4


def test_ctrl_c_in_evaluate_is_one_line_and_exit_status_130(
    tmp_path: Path,
    colour_weights: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_tree(tmp_path / "tree", TREE)

    def interrupted(self: t2t_vit.T2TViT, x: torch.Tensor) -> torch.Tensor:
        raise KeyboardInterrupt

    monkeypatch.setattr(t2t_vit.T2TViT, "forward", interrupted)
    status, out, err = run(
        capsys, "evaluate", str(tmp_path / "tree"), "--weights", str(colour_weights),
        "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert (status, out, err) == (130, "", "t2t-vit evaluate: interrupted\n")
