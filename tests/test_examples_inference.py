"""The inference examples run end to end with tiny models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_models import real_photos
from PIL import Image

import t2t_vit
from t2t_vit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_predict_example_prints_ranked_imagenet_classes() -> None:
    photo = str(real_photos()["grace_hopper"])
    lines = run_example("predict.py", photo, "--tiny", "--top-k", "3").splitlines()
    assert lines[0].startswith("preprocessing: EvalTransform(input_size=[3, 64, 64], resize=71,")
    assert lines[1] == photo
    names = t2t_vit.load_labels("imagenet-1k")
    probs = []
    for line in lines[2:]:
        prob, index, label = line.split(maxsplit=2)
        assert names[int(index)] == label
        assert prob.endswith("%")
        probs.append(float(prob[:-1]))
    assert len(probs) == 3
    assert probs == sorted(probs, reverse=True)


def test_predict_example_prints_the_lines_the_cli_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = t2t_vit.T2TViT(
        img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=10
    )
    model.pretrained_cfg = {**t2t_vit.default_pretrained_cfg((32, 32)), "labels": "cifar-10"}
    weights = t2t_vit.save_pretrained(model, tmp_path / "tiny")
    photo = str(real_photos()["china"])
    example = run_example("predict.py", photo, "--weights", str(weights), "--top-k", "3")
    assert main(["predict", photo, "--weights", str(weights), "--top-k", "3"]) == 0
    cli = capsys.readouterr().out
    assert example.splitlines()[1:] == cli.splitlines()
    assert cli.splitlines()[1].strip().split()[0].endswith("%")


def test_attention_map_example_writes_three_panels(tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    stdout = run_example(
        "attention_map.py", str(real_photos()["china"]), "--tiny", "--out", str(out)
    )
    assert "T2T layer 1: (1, 1, 256, 256) on a (16, 16) grid" in stdout
    assert "T2T layer 2: (1, 1, 64, 64) on a (8, 8) grid" in stdout
    assert stdout.splitlines()[-1] == f"wrote {out} (3 panels of 64x64)"
    picture = np.asarray(Image.open(out))
    assert picture.shape == (64, 3 * 64 + 2 * 4, 3)


def test_feature_maps_example_prints_each_block(tmp_path: Path) -> None:
    out = tmp_path / "maps.png"
    stdout = run_example(
        "feature_maps.py", str(real_photos()["flower"]), "--tiny", "--blocks", "1", "-1",
        "--out", str(out),
    )  # fmt: skip
    lines = stdout.splitlines()
    assert lines[0] == "input (1, 3, 64, 64) -> token grid (4, 4)"
    assert lines[1] == "final features (1, 17, 64)"
    assert lines[2].startswith("block 1: map (1, 64, 4, 4)  class token (1, 1, 64)")
    assert lines[3].startswith("block -1: map (1, 64, 4, 4)")
    assert Image.open(out).size == (2 * 132, 128)
