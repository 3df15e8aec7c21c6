"""The commands never lose results or files: predict reports every readable image, attention
and convert never overwrite what they were not asked to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, load_tensors
from inference_models import COLOUR_RGB, colour_model, photo_like, solid, tiny_model
from PIL import Image

import t2t_vit
from t2t_vit.cli import main

SRC = Path(t2t_vit.__file__).parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def colour_weights(tmp_path: Path) -> Path:
    return t2t_vit.save_pretrained(colour_model(), tmp_path / "colour")


def _folder_with_unreadable_images(root: Path) -> list[Path]:
    """a.png (red), b.jpg (broken), c.png (blue), d/e.png (green), z.png (broken, the last)."""
    (root / "d").mkdir(parents=True)
    solid(COLOUR_RGB["red"]).save(root / "a.png")
    (root / "b.jpg").write_bytes(b"not a jpeg")
    solid(COLOUR_RGB["blue"]).save(root / "c.png")
    solid(COLOUR_RGB["green"]).save(root / "d" / "e.png")
    (root / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return [root / n for n in ("a.png", "b.jpg", "c.png", "d/e.png", "z.png")]


@pytest.mark.parametrize("batch_size", ["1", "2", "32"])
def test_predict_prints_every_readable_image_and_names_the_unreadable_ones(
    batch_size: str, tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c, e, z = _folder_with_unreadable_images(tmp_path / "imgs")
    argv = ["predict", str(tmp_path / "imgs"), "--weights", str(colour_weights), "--top-k", "1"]
    status, out, err = run(capsys, *argv, "--batch-size", batch_size)
    assert status == 1
    lines = out.splitlines()
    assert lines[0::2] == [str(a), str(c), str(e)]
    assert [line.split()[-1] for line in lines[1::2]] == ["red", "blue", "green"]
    err_lines = err.splitlines()
    assert err_lines[0].startswith(f"t2t-vit predict: error: cannot read image '{b}': ")
    assert err_lines[1].startswith(f"t2t-vit predict: error: cannot read image '{z}': ")
    assert err_lines[2:] == ["t2t-vit predict: 2 of 5 images could not be read"]

    status, out, err = run(capsys, *argv, "--batch-size", batch_size, "--json")
    assert status == 1
    result = json.loads(out)
    assert [r["image"] for r in result] == [str(a), str(c), str(e)]
    assert [r["predictions"][0]["label"] for r in result] == ["red", "blue", "green"]
    assert err.splitlines()[-1] == "t2t-vit predict: 2 of 5 images could not be read"


def test_predict_through_python_dash_m_exits_non_zero_after_the_readable_results(
    tmp_path: Path, colour_weights: Path
) -> None:
    a, _, c, e, z = _folder_with_unreadable_images(tmp_path / "imgs")
    done = subprocess.run(
        [sys.executable, "-m", "t2t_vit", "predict", str(tmp_path / "imgs"),
         "--weights", str(colour_weights), "--top-k", "1"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.splitlines()[0::2] == [str(a), str(c), str(e)]
    assert f"cannot read image '{z}'" in done.stderr


# -- attention --out ------------------------------------------------------------------------


def test_attention_never_overwrites_its_input_and_needs_force_for_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = t2t_vit.save_pretrained(tiny_model("transformer", img_size=32), tmp_path / "w")
    photo = tmp_path / "photo.png"
    Image.fromarray(photo_like(40, 40, seed=3)).save(photo)
    original = photo.read_bytes()
    model = ["--weights", str(weights)]

    for extra in ([], ["--force"]):
        status, out, err = run(capsys, "attention", str(photo), *model, "--out", str(photo), *extra)
        assert (status, out) == (2, "")
        assert err == (
            f"t2t-vit attention: error: --out '{photo}' is the input image; give another file "
            "name\n"
        )
    # The same file under another name (a relative path) is still the input.
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "attention", str(photo), *model, "--out", "photo.png", "--force")
    assert (status, err) == (2, "t2t-vit attention: error: --out 'photo.png' is the input image; "
                                "give another file name\n")  # fmt: skip
    assert photo.read_bytes() == original

    existing = tmp_path / "map.png"
    existing.write_bytes(b"keep me")
    status, out, err = run(capsys, "attention", str(photo), *model, "--out", str(existing))
    assert (status, out) == (2, "")
    assert err == (
        f"t2t-vit attention: error: --out '{existing}' exists; give another file name, or "
        "--force to replace it\n"
    )
    assert existing.read_bytes() == b"keep me"
    status, out, _ = run(capsys, "attention", str(photo), *model, "--out", str(existing), "--force")
    assert status == 0
    assert out.startswith(f"wrote {existing} ")
    assert Image.open(existing).size == (32, 32)


# -- convert OUT_DIR ------------------------------------------------------------------------


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> tuple[Path, str]:
    ckpt = tmp_path / "tiny.pth"
    torch.save({"state_dict": load_tensors("tiny_transformer.state_dict.safetensors")}, ckpt)
    return ckpt, str(FIXTURES / "tiny_transformer.json")


def test_convert_refuses_a_folder_holding_other_files_unless_forced(
    tmp_path: Path, tiny_checkpoint: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, spec = tiny_checkpoint
    out = tmp_path / "project"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    (out / "config.json").write_text('{"mine": true}')
    (out / "train.py").write_text("print()")
    status, stdout, err = run(capsys, "convert", str(ckpt), str(out), "--model", spec)
    assert (status, stdout) == (2, "")
    assert err == (
        f"t2t-vit convert: error: output folder '{out}' holds other files (README.md, "
        "config.json, train.py); convert writes into a new or empty folder, or one it wrote "
        "before; pass --force (force=True) to write there anyway\n"
    )
    assert (out / "README.md").read_text() == "my notes"
    assert (out / "config.json").read_text() == '{"mine": true}'
    # A save_pretrained folder (a fine-tuned model, say) is not convert's own either.
    saved = t2t_vit.save_pretrained(tiny_model(), tmp_path / "finetuned")
    before = (saved / "model.safetensors").read_bytes()
    status, _, err = run(capsys, "convert", str(ckpt), str(saved), "--model", spec)
    assert status == 2
    assert "holds other files (config.json, model.safetensors)" in err
    assert (saved / "model.safetensors").read_bytes() == before

    status, _, err = run(capsys, "convert", str(ckpt), str(out), "--model", spec, "--force")
    assert (status, err) == (0, "")
    assert (out / "train.py").read_text() == "print()"
    assert json.loads((out / "config.json").read_text())["architecture"] == "t2t_vit_t_14"


def test_convert_writes_into_a_new_or_empty_folder_or_its_own_again(
    tmp_path: Path, tiny_checkpoint: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, spec = tiny_checkpoint
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "new" / "sub", tmp_path / "empty"):
        status, _, err = run(capsys, "convert", str(ckpt), str(folder), "--model", spec)
        assert (status, err) == (0, "")
    # Its own folder again (a second conversion, e.g. with other --ignore-keys): no --force.
    status, _, err = run(capsys, "convert", str(ckpt), str(tmp_path / "empty"), "--model", spec)
    assert (status, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]


def test_convert_never_overwrites_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = t2t_vit.save_pretrained(tiny_model(), tmp_path / "w")
    weights = folder / "model.safetensors"
    before = weights.read_bytes()
    spec = str(FIXTURES / "tiny_transformer.json")
    status, _, err = run(capsys, "convert", str(weights), str(folder), "--model", spec, "--force")
    assert status == 2
    assert err == (
        f"t2t-vit convert: error: writing {weights} would overwrite the checkpoint itself; "
        "choose another output folder\n"
    )
    assert weights.read_bytes() == before
