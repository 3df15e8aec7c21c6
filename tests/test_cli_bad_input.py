"""The command line as a new user meets it: folders, unreadable files in worker processes,
closed pipes, `--version`, unknown weight names, and JSON keys that say what they hold."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from inference_models import COLOUR_CLASSES, colour_model, photo_like, solid
from PIL import Image
from test_cli_inference import TREE, run, write_tree

import t2t_vit
from t2t_vit.cli import main


@pytest.fixture
def colour_weights(tmp_path: Path) -> Path:
    return t2t_vit.save_pretrained(colour_model(), tmp_path / "colour")


# -- evaluate ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreadable_image_gives_the_same_one_line_with_worker_processes(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    write_tree(tmp_path / "val", TREE)
    bad = tmp_path / "val" / "green" / "zz.jpg"
    bad.write_bytes(b"not a jpeg")
    lines = []
    for n in ("0", workers):
        status, out, err = run(
            capsys, "evaluate", str(tmp_path / "val"), "--weights", str(colour_weights),
            "--workers", n, "--batch-size", "2", "--no-progress",
        )  # fmt: skip
        assert (status, out) == (2, "")
        lines.append(err)
    assert (
        lines[0]
        == lines[1]
        == (
            f"t2t-vit evaluate: error: cannot read image '{bad}': not an image file Pillow can "
            "decode\n"
        )
    )


def test_evaluate_json_names_the_k_of_its_top_k_accuracy(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_tree(tmp_path / "val", TREE)
    common = ["--weights", str(colour_weights), "--workers", "0", "--no-progress"]
    status, out, _ = run(capsys, "evaluate", str(tmp_path / "val"), *common, "--json")
    assert status == 0
    result = json.loads(out)
    # 3 classes: top-5 is top-3, and the key says so.
    assert (result["top_k"], result["top_k_accuracy"], result["num_classes"]) == (3, 1.0, 3)
    assert "top5" not in result
    # Top-2 by hand: is the folder's class among the two largest logits?
    model = colour_model()
    with torch.no_grad():
        top2 = model(t2t_vit.preprocess(paths, model)).topk(2, dim=-1).indices.tolist()
    hits = sum(COLOUR_CLASSES.index(folder) in t for (folder, _), t in zip(TREE, top2, strict=True))
    status, out, _ = run(
        capsys, "evaluate", str(tmp_path / "val"), *common, "--top-k", "2", "--json"
    )
    assert (json.loads(out)["top_k"], json.loads(out)["top_k_accuracy"]) == (2, hits / 6)
    status, out, _ = run(capsys, "evaluate", str(tmp_path / "val"), *common, "--top-k", "2")
    assert status == 0
    assert out.startswith(f"6 images: top-1 66.67%  top-2 {hits / 6:.2%}  loss ")


def test_evaluate_library_result_carries_k_and_accuracy(tmp_path: Path) -> None:
    write_tree(tmp_path / "val", TREE)
    result = t2t_vit.evaluate(colour_model(), tmp_path / "val", top_k=1)
    assert (result.top_k, result.top_k_accuracy, result.top1) == (1, 4 / 6, 4 / 6)
    with pytest.raises(ValueError, match=r"^top_k must be at least 1, got 0$"):
        t2t_vit.evaluate(colour_model(), tmp_path / "val", top_k=0)


def test_evaluate_checks_its_folder_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --weights names no saved model: the folder error must come first.
    status, _, err = run(
        capsys, "evaluate", str(tmp_path / "absent"), "--weights", str(tmp_path / "nothing")
    )
    assert (status, err) == (
        2,
        f"t2t-vit evaluate: error: evaluation folder not found: '{tmp_path / 'absent'}'\n",
    )


def test_hidden_files_in_class_folders_are_not_read_as_images(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tree(tmp_path / "val", TREE)
    (tmp_path / "val" / "red" / "._img4.png").write_bytes(b"macOS resource fork")
    (tmp_path / "val" / "red" / ".cache").mkdir()
    solid((0, 0, 255)).save(tmp_path / "val" / "red" / ".cache" / "thumb.png")
    status, out, _ = run(
        capsys, "evaluate", str(tmp_path / "val"), "--weights", str(colour_weights),
        "--workers", "0", "--json", "--no-progress",
    )  # fmt: skip
    assert status == 0
    assert (json.loads(out)["images"], json.loads(out)["top1"]) == (6, 4 / 6)


# -- predict -------------------------------------------------------------------------------


def test_predict_a_folder_predicts_its_images_sorted_recursively_in_batches(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "photos"
    files = write_tree(root, [("b", "red"), ("a", "blue"), ("a/deeper", "green"), ("c", "red")])
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "._img1.png").write_bytes(b"macOS resource fork")
    status, out, _ = run(
        capsys, "predict", str(root), "--weights", str(colour_weights), "--top-k", "1",
        "--batch-size", "3", "--json",
    )  # fmt: skip
    assert status == 0
    result = json.loads(out)
    expected = sorted(files)
    assert [r["image"] for r in result] == [str(p) for p in expected]
    assert [r["image"] for r in result] == [
        str(root / "a" / "deeper" / "img2.png"),
        str(root / "a" / "img1.png"),
        str(root / "b" / "img0.png"),
        str(root / "c" / "img3.png"),
    ]
    assert [r["predictions"][0]["label"] for r in result] == ["green", "blue", "red", "red"]
    # The same answers as naming the files one by one.
    status, out, _ = run(
        capsys, "predict", *map(str, expected), "--weights", str(colour_weights), "--top-k",
        "1", "--json",
    )  # fmt: skip
    assert json.loads(out) == result


def test_predict_an_empty_folder_or_missing_file_fails_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image")
    no_model = ["--weights", str(tmp_path / "no-such-model")]
    status, _, err = run(capsys, "predict", str(tmp_path / "empty"), *no_model)
    assert status == 2
    assert err.startswith("t2t-vit predict: error: no images (.jpg, .jpeg, .png, ")
    assert err.endswith(f" in folder '{tmp_path / 'empty'}'\n")
    image = tmp_path / "one.png"
    solid((1, 2, 3)).save(image)
    status, _, err = run(
        capsys, "predict", str(image), str(tmp_path / "two.png"), *no_model, "--json"
    )
    assert (status, err) == (
        2,
        f"t2t-vit predict: error: image file not found: '{tmp_path / 'two.png'}'\n",
    )


def test_library_calls_with_a_folder_say_it_is_a_folder(tmp_path: Path) -> None:
    model = colour_model()
    with pytest.raises(ValueError, match="is a folder, not an image file; pass the image files"):
        t2t_vit.predict(model, tmp_path)


# -- attention ------------------------------------------------------------------------------


def test_attention_checks_its_arguments_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.png"
    Image.fromarray(photo_like(40, 40, seed=1)).save(image)
    no_model = ["--weights", str(tmp_path / "no-such-model")]

    def error(*argv: str) -> str:
        status, out, err = run(capsys, "attention", *argv, *no_model)
        assert (status, out) == (2, "")
        return err

    assert error(str(tmp_path), "--out", str(tmp_path / "m.png")) == (
        f"t2t-vit attention: error: '{tmp_path}' is a folder; attention takes one image file\n"
    )
    assert error(str(image), "--out", str(tmp_path / "m.png"), "--alpha", "1.5") == (
        "t2t-vit attention: error: --alpha must be in [0, 1], got 1.5\n"
    )
    assert error(str(image), "--out", str(tmp_path / "map")) == (
        f"t2t-vit attention: error: --out '{tmp_path / 'map'}' has no image file ending "
        "Pillow writes; use e.g. .png or .jpg\n"
    )
    assert error(str(image), "--out", str(tmp_path / "m.png"), "--colormap", "infern") == (
        "t2t-vit attention: error: unknown matplotlib colormap 'infern'\n"
    )
    assert error(str(image), "--out", str(tmp_path / "nodir" / "m.png")) == (
        f"t2t-vit attention: error: output folder not found: '{tmp_path / 'nodir'}'\n"
    )


# -- info, --version, pipes ------------------------------------------------------------------


def test_info_with_an_unknown_weights_name_lists_the_registry_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, "info", "t2t-vit-14.foo")
    assert (status, out) == (2, "")
    assert err.startswith(
        "t2t-vit info: error: unknown pretrained model 't2t-vit-14.foo' (t2t-vit-14 has "
        "t2t-vit-14.official, t2t-vit-14.cifar10, t2t-vit-14.cifar100); known: "
    )
    assert err.count("\n") == 1
    named = err.rstrip("\n").split("; known: ")[1].split(", ")
    assert set(t2t_vit.list_pretrained()) <= set(named)
    assert "t2t-vit-14.cifar10" in named


def test_info_with_a_folder_without_config_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "info", str(tmp_path))
    assert (status, err) == (
        2,
        f"t2t-vit info: error: '{tmp_path}' is a folder without config.json, not one written "
        "by save_pretrained\n",
    )


def test_version_prints_the_package_and_torch_versions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"t2t-vit {t2t_vit.__version__} (torch {torch.__version__})\n"
    # The version the package reports is the one it was installed as.
    assert t2t_vit.__version__ == importlib.metadata.version("t2t-vit")


def test_a_closed_output_pipe_ends_quietly_with_the_sigpipe_status(tmp_path: Path) -> None:
    # `t2t-vit info NAME | head -1`, made deterministic: the reader is gone before any write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "t2t_vit", "info", "t2t-vit-7"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")  # 128 + SIGPIPE, as a shell reports it


def test_predict_and_evaluate_counts_must_be_ints_of_their_minimum(tmp_path: Path) -> None:
    model = colour_model()
    image = solid((1, 2, 3))
    write_tree(tmp_path / "val", TREE)
    cases = [
        (lambda: t2t_vit.predict(model, image, top_k=2.5), TypeError,  # type: ignore[arg-type]
         "top_k must be an int, got 2.5 (float)"),
        (lambda: t2t_vit.predict(model, image, batch_size=True), TypeError,
         "batch_size must be an int, got True (bool)"),
        (lambda: t2t_vit.predict(model, image, batch_size=0), ValueError,
         "batch_size must be at least 1, got 0"),
        (lambda: t2t_vit.evaluate(model, tmp_path / "val", workers=-1), ValueError,
         "workers must be at least 0, got -1"),
        (lambda: t2t_vit.evaluate(model, tmp_path / "val", limit=0), ValueError,
         "limit must be at least 1, got 0"),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            call()


# -- messages that fit the mistake (issue 17, item 19) ----------------------------------


def test_evaluate_of_an_image_file_says_it_takes_a_folder(
    tmp_path: Path, colour_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    solid((200, 10, 10)).save(photo)
    status, out, err = run(capsys, "evaluate", str(photo), "--weights", str(colour_weights))
    assert (status, out) == (2, "")
    assert err == (
        f"t2t-vit evaluate: error: {str(photo)!r} is a file; evaluate takes a folder "
        f"DATA_DIR/<class>/<image> (for single images use t2t-vit predict)\n"
    )
    with pytest.raises(ValueError, match=r"^'.*photo\.jpg' is a file; evaluate takes a folder"):
        t2t_vit.evaluate(colour_model(), photo)


def test_weights_that_do_not_exist_or_are_a_file_are_called_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    solid((200, 10, 10)).save(photo)
    missing = tmp_path / "does-not-exist"
    status, _, err = run(capsys, "predict", str(photo), "--weights", str(missing))
    assert (status, err) == (
        2,
        f"t2t-vit predict: error: --weights {str(missing)!r}: no such folder\n",
    )
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"x")
    status, _, err = run(capsys, "predict", str(photo), "--weights", str(ckpt))
    assert (status, err) == (
        2,
        f"t2t-vit predict: error: --weights {str(ckpt)!r} is a file; it takes a folder "
        "written by save_pretrained (for a checkpoint file run `t2t-vit convert FILE DIR` "
        "and pass DIR)\n",
    )


@pytest.mark.parametrize("command", ["predict", "evaluate", "attention", "info"])
def test_an_empty_model_name_is_called_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    photo = tmp_path / "photo.jpg"
    solid((200, 10, 10)).save(photo)
    write_tree(tmp_path / "val", TREE)
    argv = {
        "predict": ["predict", str(photo), "--model", ""],
        "evaluate": ["evaluate", str(tmp_path / "val"), "--model", ""],
        "attention": ["attention", str(photo), "--model", "", "--out", str(tmp_path / "a.png")],
        "info": ["info", ""],
    }[command]
    status, _, err = run(capsys, *argv)
    what = "NAME" if command == "info" else "--model"
    assert (status, err) == (
        2,
        f"t2t-vit {command}: error: {what} is empty; give a preset or registry name "
        "(e.g. t2t-vit-14) or a Hub repository id (org/name)\n",
    )


def test_info_of_a_path_that_does_not_exist_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "info", "./does-not-exist")
    assert (status, err) == (
        2,
        "t2t-vit info: error: './does-not-exist': no such folder; info takes a preset or "
        "registry name, or a folder written by save_pretrained\n",
    )
