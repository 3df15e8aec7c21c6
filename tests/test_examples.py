"""The examples run end to end with small settings (CI smoke runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2t_vit import T2TViT
from t2t_vit.weights.serialization import read_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(args: list[str], tmp_path: Path, timeout: int = 180) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_train_digits_quick_mode_reports_both_stems(tmp_path: Path) -> None:
    out = _run(
        [str(EXAMPLES / "train_digits.py"), "--epochs", "3", "--json", "results.json"],
        tmp_path,
    )
    pattern = (
        r"RESULT stem=(\w+) accuracy=([\d.]+) seconds=([\d.]+) cpu_seconds=[\d.]+ "
        r"params=(\d+) epochs=3 threads=2"
    )
    found = re.findall(pattern, out)
    assert [f[0] for f in found] == ["transformer", "patch"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["stem"] for r in saved] == ["transformer", "patch"]
    for (_, acc, seconds, params), record in zip(found, saved, strict=True):
        assert float(acc) == round(record["accuracy"], 4)
        assert int(params) == record["params"]
        assert record["test_images"] == 450
        assert float(seconds) > 0
        # Three epochs already beat chance (0.1) by far on both stems.
        assert record["accuracy"] > 0.3
    # The same backbone: only the stems differ in size.
    assert saved[0]["params"] != saved[1]["params"]


def test_segment_digits_quick_mode_reports_miou_for_every_variant_and_lowers_the_loss(
    tmp_path: Path,
) -> None:
    out = _run(
        [
            str(EXAMPLES / "segment_digits.py"),
            *("--epochs", "2", "--train-canvases", "96", "--test-canvases", "24"),
            *("--json", "results.json"),
        ],
        tmp_path,
    )
    pattern = (
        r"RESULT variant=([\w-]+) stem=(\w+) miou=([\d.]+) pixel_accuracy=([\d.]+) "
        r"loss_first=([\d.]+) loss_last=([\d.]+) seconds=([\d.]+) cpu_seconds=[\d.]+ "
        r"params=(\d+) steps=12 epochs=2 threads=1 seed=0"
    )
    found = re.findall(pattern, out)
    assert [(f[0], f[1]) for f in found] == [
        ("t2t", "transformer"),
        ("t2t-neck", "transformer"),
        ("patch", "patch"),
    ]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["variant"] for r in saved] == ["t2t", "t2t-neck", "patch"]
    # The T2T backbone returns its own pyramid; the patch stem only the stride-16 map.
    assert [r["levels"] for r in saved] == [[4, 8, 16], [4, 8, 16], [16]]
    for line, record in zip(found, saved, strict=True):
        _, _, miou, acc, first, last, seconds, params = line
        assert float(miou) == round(record["miou"], 4)
        assert float(acc) == round(record["pixel_accuracy"], 4)
        assert int(params) == record["params"]
        assert record["test_canvases"] == 24
        assert 0.0 < record["miou"] <= 1.0
        assert float(seconds) > 0
        # Twelve steps already lower the per-pixel cross-entropy by far (from about
        # ln(11) = 2.4 towards the background-only level).
        assert record["loss_last"] < 0.8 * record["loss_first"]
        assert float(first) == round(record["loss_first"], 4)
        assert float(last) == round(record["loss_last"], 4)


def test_custom_backbone_example_trains_both_backbones(tmp_path: Path) -> None:
    out = _run(
        [str(EXAMPLES / "custom_backbone.py"), "--steps", "4", "--height", "32", "--width", "48"],
        tmp_path,
    )
    lines = re.findall(
        r"(T2TEncoder|T2TConvNet): 32x48 input -> 2x3 tokens; loss ([\d.]+) -> ([\d.]+) in 4 steps",
        out,
    )
    assert [name for name, _, _ in lines] == ["T2TEncoder", "T2TConvNet"]
    for _, first, last in lines:
        assert float(last) < float(first)


def test_train_ddp_example_under_torchrun_saves_a_loadable_checkpoint(tmp_path: Path) -> None:
    from PIL import Image

    data = tmp_path / "data"
    g = torch.Generator().manual_seed(0)
    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        (data / name).mkdir(parents=True)
        for i in range(6):
            noise = torch.randint(-20, 21, (3,), generator=g).tolist()
            pixel = tuple(c + n for c, n in zip(colour, noise, strict=True))
            Image.new("RGB", (40, 36), pixel).save(data / name / f"{i}.png")
    out = _run(
        [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(EXAMPLES / "train_ddp.py"),
            "--data",
            str(data),
            "--val-data",
            str(data),
            "--model",
            "tiny",
            "--img-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "3",
            "--lr",
            "3e-3",
            "--workers",
            "0",
            "--log-every",
            "1",
            "--output",
            "ckpt",
        ],
        tmp_path,
    )
    assert "world_size=2 device=cpu images=12 classes=2 steps=4 lr=0.003" in out
    steps = re.findall(r"epoch (\d) step (\d)/4 loss ([\d.]+) lr ", out)
    assert [(e, s) for e, s, _ in steps] == [("0", "1"), ("0", "2"), ("1", "3"), ("1", "4")]
    assert all(0.0 < float(loss) < 5.0 for _, _, loss in steps)
    assert re.findall(r"epoch (\d) val accuracy ([\d.]+)", out)[-1][0] == "1"
    assert "saved ckpt/checkpoint.pt (epoch 1, step 4)" in out
    ckpt = torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=False)
    assert ckpt["classes"] == ["blue", "red"]
    assert (ckpt["epoch"], ckpt["step"]) == (1, 4)
    model = T2TViT(**ckpt["config"])
    model.load_state_dict(ckpt["model"])  # strict: every key and shape matches
    assert model.num_classes == 2
    assert len(ckpt["optimizer"]["param_groups"]) == 8  # 4 layer ids x decay / no decay


def _colour_tree(root: Path, count: int = 6) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        (root / name).mkdir(parents=True)
        for i in range(count):
            noise = torch.randint(-20, 21, (3,), generator=g).tolist()
            pixel = tuple(c + n for c, n in zip(colour, noise, strict=True))
            Image.new("RGB", (40, 36), pixel).save(root / name / f"{i}.png")


def test_train_ddp_from_a_pretrained_folder_applies_its_flags_and_saves_a_predictable_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from t2t_vit import save_pretrained
    from t2t_vit.cli import main

    data = tmp_path / "data"
    _colour_tree(data)
    start = T2TViT(
        img_size=32, tokens_type="transformer", embed_dim=32, depth=2, num_heads=2,
        token_dim=8, num_classes=3, drop_path_rate=0.0,
    )  # fmt: skip
    save_pretrained(start, tmp_path / "start")
    common = [str(EXAMPLES / "train_ddp.py"), "--data", str(data), "--pretrained", "start",
              "--epochs", "1", "--batch-size", "4", "--workers", "0", "--output", "ft"]  # fmt: skip
    out = _run([*common, "--img-size", "48", "--drop-path", "0.2"], tmp_path)
    assert "saved ft/model (t2t-vit predict --weights ft/model)" in out
    config = read_config(tmp_path / "ft" / "model" / "config.json")
    args = config["model_args"]
    assert (args["img_size"], args["drop_path_rate"], args["num_classes"]) == (48, 0.2, 2)
    assert config["pretrained_cfg"]["labels"] == ["blue", "red"]
    assert config["pretrained_cfg"]["input_size"] == [3, 48, 48]

    image = data / "red" / "0.png"
    assert main(["predict", str(image), "--weights", str(tmp_path / "ft" / "model")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image)
    assert sorted(line.split()[-1] for line in lines[1:]) == ["blue", "red"]
    argv = ["evaluate", str(data), "--weights", str(tmp_path / "ft" / "model"), "--workers",
            "0", "--no-progress", "--json"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 12

    # --model names the architecture it expects; one that is not the folder's is refused.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *common, "--model", "t2t-vit-14", "--output", "ft2"], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "--model t2t-vit-14 does not match the --pretrained folder start: "
        "tokens_type='transformer' (preset: 'performer'), embed_dim=32 (preset: 384), "
        "depth=2 (preset: 14), num_heads=2 (preset: 6), mlp_ratio=4.0 (preset: 3.0); leave "
        "--model out to train the folder's architecture"
    )


# Runs the example's main() in each torchrun worker, then lists the process's native
# threads by name: gloo names its worker threads pt_gloo_runloop and its I/O thread
# gloo_tcp_loop.
_THREADS_AFTER_MAIN = """
import os, runpy, sys
example = runpy.run_path(sys.argv[1], run_name="train_ddp")
example["main"](sys.argv[2:])
tasks = os.listdir("/proc/self/task")
names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks)
# One file per rank: two ranks printing to one pipe can interleave their lines.
with open(f"threads-{os.environ['RANK']}.txt", "w") as f:
    f.write(" ".join(names))
"""


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="native thread names are read from /proc"
)
def test_train_ddp_example_stops_gloo_threads_before_interpreter_shutdown(
    tmp_path: Path,
) -> None:
    # The cause of a rare SIGABRT at exit: the process group outlived
    # destroy_process_group() (torch.distributed.nn held it), so gloo's threads were still
    # running when the interpreter shut down. After main() no gloo thread may be left.
    from PIL import Image

    data = tmp_path / "data"
    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (36, 36), colour).save(data / name / f"{i}.png")
    driver = tmp_path / "driver.py"
    driver.write_text(_THREADS_AFTER_MAIN)
    _run(
        [
            "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(driver),
            str(EXAMPLES / "train_ddp.py"), "--data", str(data), "--val-data", str(data),
            "--model", "tiny", "--img-size", "32", "--epochs", "1", "--batch-size", "2",
            "--workers", "0", "--output", "ckpt",
        ],
        tmp_path,
    )  # fmt: skip
    found = {rank: (tmp_path / f"threads-{rank}.txt").read_text() for rank in ("0", "1")}
    for rank, names in found.items():
        assert "python" in names.split(), rank
        assert not [n for n in names.split() if "gloo" in n], (rank, names)
