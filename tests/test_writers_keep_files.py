"""No write loses a file (issue 23, R1): every writer goes through the one output guard.

`WRITERS` lists every writer of the package, its command line and its examples; a new
writer gets a row here. Each row is walked three ways: an output that is one of its inputs
(by the same path, `./`, a symlink, a hard link) is refused even with `--force`; an existing
file the writer did not write is not replaced without `--force`; and a failure while the
files are moved into place leaves the output as it was.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from checkpoints import T7, assert_state
from conftest import FIXTURES, load_tensors
from fakehub import ReleaseServer
from inference_models import photo_like, tiny_model
from PIL import Image

import t2t_vit
from t2t_vit.cli import main
from t2t_vit.weights.serialization import write_model_card

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


class Failed(Exception):
    """A writer refused or failed (a non-zero exit status, SystemExit, or an exception)."""


@dataclass
class Env:
    tmp: Path
    image: Path
    weights: Path
    ckpt: Path
    spec: str
    data: Path
    releases: ReleaseServer | None = None


def _cli(*argv: str) -> None:
    if main(list(argv)) != 0:
        raise Failed(argv)


def _example(name: str, *argv: str) -> None:
    old = sys.argv, torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    sys.argv = [str(EXAMPLES / name), *argv]
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    except SystemExit as err:
        if err.code:
            raise Failed(name) from err
    finally:
        # The training examples set these for their process: not for the next test.
        sys.argv = old[0]
        torch.set_num_threads(old[1])
        torch.use_deterministic_algorithms(old[2])


def _force(force: bool) -> list[str]:
    return ["--force"] if force else []


# -- the writers ---------------------------------------------------------------------------
# Each: run(env, out, force) writes to `out` (a file or a folder). `inputs(env, out)` gives
# the path inside the output that would be an input if it named one, and that input
# (None: the writer reads no file).


def cli_attention(env: Env, out: Path, force: bool) -> None:
    _cli("attention", str(env.image), "--weights", str(env.weights), "--out", str(out),
         *_force(force))  # fmt: skip


def cli_convert(env: Env, out: Path, force: bool) -> None:
    _cli("convert", str(env.ckpt), str(out), "--model", env.spec, *_force(force))


def api_convert(env: Env, out: Path, force: bool) -> None:
    t2t_vit.convert_checkpoint(env.ckpt, out, model=env.spec, force=force)


def cli_publish(env: Env, out: Path, force: bool) -> None:
    # `out` is OUT/<name>: the folder publish writes for the one weight.
    assert out.name == "t2t-vit-7.official"
    _cli("publish", "--org", "acme", "t2t-vit-7", "--out", str(out.parent), "--dry-run",
         *_force(force))  # fmt: skip


def api_save_pretrained(env: Env, out: Path, force: bool) -> None:
    t2t_vit.save_pretrained(tiny_model(), out, overwrite=force)


def api_write_model_card(env: Env, out: Path, force: bool) -> None:
    model = tiny_model()
    cfg = t2t_vit.resolve_pretrained_cfg(model)
    write_model_card(out, model_args=model.config, pretrained_cfg=cfg, overwrite=force)


def example_attention_map(env: Env, out: Path, force: bool) -> None:
    _example("attention_map.py", str(env.image), "--out", str(out), "--tiny", *_force(force))


def example_feature_maps(env: Env, out: Path, force: bool) -> None:
    _example("feature_maps.py", str(env.image), "--tiny", "--out", str(out), *_force(force))


def example_train_digits(env: Env, out: Path, force: bool) -> None:
    _example("train_digits.py", "--epochs", "1", "--stems", "patch", "--embed-dim", "16",
             "--depth", "1", "--batch-size", "256", "--json", str(out), *_force(force))  # fmt: skip


def example_segment_digits(env: Env, out: Path, force: bool) -> None:
    _example("segment_digits.py", "--epochs", "1", "--train-canvases", "4", "--test-canvases",
             "2", "--size", "32", "32", "--digits-per-canvas", "1", "--embed-dim", "16",
             "--depth", "1", "--variants", "patch", "--json", str(out), *_force(force))  # fmt: skip


def example_train_ddp(env: Env, out: Path, force: bool) -> None:
    _example("train_ddp.py", "--data", str(env.data), "--model", "tiny", "--img-size", "32",
             "--epochs", "1", "--batch-size", "4", "--workers", "0", "--output", str(out),
             *_force(force))  # fmt: skip


@dataclass(frozen=True)
class Writer:
    name: str
    run: Callable[[Env, Path, bool], None]
    #: "file": `out` is the file written; else the folder, and this is a file it writes.
    target: str
    #: The input that `target` must never be: an attribute of Env, or None (no input file).
    input: str | None
    #: A file the writer did not write, placed at `out / unrelated` ("" : `out` itself).
    unrelated: str
    #: Writes several files into a folder at once (all or nothing).
    folder_write: bool = False


# fmt: off
WRITERS = [
    Writer("t2t-vit attention --out", cli_attention, "file", "image", ""),
    Writer("t2t-vit convert OUT_DIR", cli_convert, "model.safetensors", "ckpt", "config.json",
           folder_write=True),
    Writer("convert_checkpoint(out_dir)", api_convert, "model.safetensors", "ckpt", "README.md",
           folder_write=True),
    Writer("t2t-vit publish --out", cli_publish, "model.safetensors", "cache", "README.md",
           folder_write=True),
    Writer("save_pretrained(folder)", api_save_pretrained, "config.json", None, "config.json",
           folder_write=True),
    Writer("write_model_card(folder)", api_write_model_card, "README.md", None, "README.md"),
    Writer("examples/attention_map.py --out", example_attention_map, "file", "image", ""),
    Writer("examples/feature_maps.py --out", example_feature_maps, "file", "image", ""),
    Writer("examples/train_digits.py --json", example_train_digits, "file", None, ""),
    Writer("examples/segment_digits.py --json", example_segment_digits, "file", None, ""),
    Writer("examples/train_ddp.py --output", example_train_ddp, "checkpoint.pt", None,
           "checkpoint.pt"),
]
# fmt: on


@pytest.fixture
def env(tmp_path: Path, releases: ReleaseServer, t7_file: bytes) -> Env:
    releases.files[T7] = t7_file
    image = tmp_path / "photo.png"
    Image.fromarray(photo_like(40, 40, seed=3)).save(image)
    weights = t2t_vit.save_pretrained(tiny_model(), tmp_path / "weights")
    ckpt = tmp_path / "tiny.pth"
    torch.save({"state_dict": load_tensors("tiny_transformer.state_dict.safetensors")}, ckpt)
    data = tmp_path / "data"
    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (36, 36), (colour[0], colour[1] + i, colour[2])).save(
                data / name / f"{i}.png"
            )
    work = tmp_path / "work"
    work.mkdir()
    return Env(work, image, weights, ckpt, str(FIXTURES / "tiny_transformer.json"), data, releases)


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file under `path` (or `path` itself) with its bytes; None when it is missing."""
    if path.is_file():
        return {"": path.read_bytes()}
    if not path.is_dir():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def out_path(env: Env, writer: Writer, name: str = "out") -> Path:
    if writer.run is api_write_model_card:
        (env.tmp / name).mkdir()  # a card goes into a folder that exists
    if writer.run is cli_publish:
        return env.tmp / name / "t2t-vit-7.official"
    if writer.target == "file":
        return env.tmp / f"{name}.{'json' if 'json' in writer.name else 'png'}"
    return env.tmp / name


def params(writers: list[Writer]) -> list[Any]:
    return [pytest.param(w, id=w.name) for w in writers]


# -- 1. an output that is an input is refused, through ./, symlinks and hard links --------


def _input_of(env: Env, writer: Writer) -> Path:
    if writer.input == "cache":
        assert env.releases is not None
        # The converted copy publish reads from: made by a first publish.
        cli_publish(env, env.tmp / "first" / "t2t-vit-7.official", False)
        return env.releases.cache / "converted" / "t2t-vit-7.official" / writer.target
    path: Path = getattr(env, str(writer.input))
    return path


@pytest.mark.parametrize("how", ["same path", "./", "symlink", "hard link"])
@pytest.mark.parametrize("writer", params([w for w in WRITERS if w.input]))
def test_an_output_that_is_an_input_is_refused_even_with_force(
    writer: Writer,
    how: str,
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _input_of(env, writer)
    before = source.read_bytes()
    if writer.target == "file":
        real_out = source
    elif writer.input == "cache":
        real_out = source.parent
    else:
        real_out = env.tmp / "folder"
    if how in ("same path", "./"):
        if writer.target != "file" and writer.input != "cache":
            # The input inside the output folder, under the name the writer writes.
            real_out.mkdir()
            os.replace(source, real_out / writer.target)
            source = real_out / writer.target
            setattr(env, str(writer.input), source)
        out = real_out
        if how == "./":
            monkeypatch.chdir(real_out.parent)
            out = Path(".") / real_out.name
    else:
        if writer.target == "file":
            link = env.tmp / f"link{source.suffix}"
        elif writer.input == "cache":
            link = env.tmp / "linked" / real_out.name / writer.target
        else:
            link = real_out / writer.target
        link.parent.mkdir(parents=True, exist_ok=True)
        if how == "symlink":
            link.symlink_to(source)
        else:
            os.link(source, link)
        out = link if writer.target == "file" else link.parent
    capsys.readouterr()
    with pytest.raises((Failed, ValueError)) as err:
        writer.run(env, out, True)
    said = f"{err.value} {capsys.readouterr().err}"
    assert " is the input image; give another file name" in said or " would overwrite " in said
    assert source.read_bytes() == before


# -- 2. a file the writer did not write is replaced only when told ------------------------


@pytest.mark.parametrize("writer", params(WRITERS))
def test_an_existing_file_it_did_not_write_is_kept_without_force(writer: Writer, env: Env) -> None:
    out = out_path(env, writer)
    mine = out / writer.unrelated if writer.unrelated else out
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_bytes(b'{"mine": true}')
    with pytest.raises((Failed, FileExistsError)):
        writer.run(env, out, False)
    assert mine.read_bytes() == b'{"mine": true}'
    writer.run(env, out, True)
    assert mine.exists()
    assert mine.read_bytes() != b'{"mine": true}'


# -- 3. a failure while writing leaves the output as it was --------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new output", "earlier output"])
@pytest.mark.parametrize("writer", params(WRITERS))
def test_a_failure_midway_leaves_the_output_as_it_was(
    writer: Writer, existing: bool, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = out_path(env, writer)
    if existing:
        writer.run(env, out, True)
        if writer.run is api_save_pretrained:
            # An earlier folder with a model card of t2t-vit's, which the new save removes.
            api_write_model_card(env, out, False)
    before = snapshot(out)
    parent_before = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    # In a folder written before, the second rename: one old file is already moved aside.
    fail_at = 2 if existing and writer.folder_write else 1
    calls = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        inside = Path(dst).absolute()
        if inside == out.absolute() or out.absolute() in inside.parents:
            calls.append(dst)
            if len(calls) == fail_at:
                raise OSError(28, "No space left on device (injected)")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises((Failed, OSError)):
        writer.run(env, out, True)
    monkeypatch.undo()
    assert calls, "the writer did not write through the guard"
    assert snapshot(out) == before
    # No temporary file or folder is left beside it.
    after = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    assert after == parent_before


# -- the items of issue 23 that these rules fix --------------------------------------------


def test_item1_save_pretrained_that_fails_midway_keeps_the_old_folder(tmp_path: Path) -> None:
    folder = t2t_vit.save_pretrained(tiny_model(), tmp_path / "saved")
    before = snapshot(folder)
    with pytest.raises(TypeError, match=r"^config.json cannot hold \{'a'\} \(a builtins.set\)"):
        t2t_vit.save_pretrained(tiny_model(), folder, pretrained_cfg={"odd": {"a"}})
    assert snapshot(folder) == before


def test_item1_numpy_numbers_in_pretrained_cfg_are_written_as_numbers(tmp_path: Path) -> None:
    cfg = {"mean": np.array([0.5, 0.5, 0.5], dtype=np.float64), "crop_pct": np.float32(0.875)}
    folder = t2t_vit.save_pretrained(tiny_model(), tmp_path / "saved", pretrained_cfg=cfg)
    written = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    assert written["mean"] == [0.5, 0.5, 0.5]
    assert written["crop_pct"] == 0.875
    assert t2t_vit.from_pretrained(folder).pretrained_cfg["crop_pct"] == 0.875


def test_item5_save_pretrained_keeps_an_unrelated_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"lr": 0.1}')
    with pytest.raises(FileExistsError) as err:
        t2t_vit.save_pretrained(tiny_model(), folder)
    assert str(err.value) == (
        f"save folder '{folder}' holds other files (config.json); save_pretrained replaces "
        "only a config.json and model.safetensors it wrote before, so choose another folder; "
        "pass overwrite=True to write there anyway"
    )
    assert (folder / "config.json").read_text() == '{"lr": 0.1}'
    assert not (folder / "model.safetensors").exists()
    # Its own folder again: no overwrite needed; other files stay.
    (folder / "config.json").unlink()
    (folder / "notes.txt").write_text("mine")
    t2t_vit.save_pretrained(tiny_model(), folder)
    t2t_vit.save_pretrained(tiny_model(), folder)
    assert (folder / "notes.txt").read_text() == "mine"


def test_item14_save_pretrained_onto_a_file_says_so_in_one_line(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff jpeg")
    with pytest.raises(FileExistsError) as err:
        t2t_vit.save_pretrained(tiny_model(), photo)
    assert str(err.value) == (
        f"save folder '{photo}' is a file; save_pretrained writes a folder: give a new folder's "
        "path"
    )
    assert photo.read_bytes() == b"\xff\xd8\xff jpeg"


def test_item28_save_pretrained_into_a_converted_folder_drops_the_stale_model_card(
    tmp_path: Path,
) -> None:
    ckpt = tmp_path / "tiny.pth"
    torch.save({"state_dict": load_tensors("tiny_transformer.state_dict.safetensors")}, ckpt)
    spec = str(FIXTURES / "tiny_transformer.json")
    folder = t2t_vit.convert_checkpoint(ckpt, tmp_path / "converted", model=spec).out_dir
    assert "original file sha256" in (folder / "README.md").read_text()
    model = t2t_vit.from_pretrained(folder)
    with torch.no_grad():
        model.head.weight.add_(1.0)  # fine-tuned: other weights than the card describes
    t2t_vit.save_pretrained(model, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    # A README.md of the user's own is kept.
    (folder / "README.md").write_text("# my notes\n")
    t2t_vit.save_pretrained(model, folder)
    assert (folder / "README.md").read_text() == "# my notes\n"


def test_item4_and_21_publish_checks_its_output_before_downloading(
    releases: ReleaseServer, t7_file: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    releases.files[T7] = t7_file
    dest = tmp_path / "out" / "t2t-vit-7.official"
    dest.mkdir(parents=True)
    (dest / "README.md").write_text("my card")
    argv = ["publish", "--org", "acme", "t2t-vit-7", "--dry-run"]
    assert main([*argv, "--out", str(dest.parent)]) == 2
    _, err = capsys.readouterr()
    assert err == (
        f"t2t-vit publish: error: output folder '{dest}' holds other files (README.md); "
        "publish writes each weight into a new or empty folder, or one it wrote before; pass "
        "--force (force=True) to write there anyway\n"
    )
    assert (dest / "README.md").read_text() == "my card"
    somefile = tmp_path / "somefile"
    somefile.write_text("x")
    assert main([*argv, "--out", str(somefile)]) == 2
    _, err = capsys.readouterr()
    assert err == (
        f"t2t-vit publish: error: output folder '{somefile / 't2t-vit-7.official'}' is inside "
        f"'{somefile}', which is a file\n"
    )
    assert releases.requests == []  # refused before any download


def test_item2_examples_refuse_to_write_over_their_input_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(photo_like(40, 40, seed=3)).save(photo)
    before = photo.read_bytes()
    for name, args in (
        ("attention_map.py", [str(photo), "--out", str(photo), "--tiny"]),
        ("feature_maps.py", [str(photo), "--tiny", "--out", str(photo)]),
    ):
        with pytest.raises(Failed):
            _example(name, *args, "--force")
        _, err = capsys.readouterr()
        assert err.splitlines()[-1].endswith(
            f"error: --out '{photo}' is the input image; give another file name"
        )
    assert photo.read_bytes() == before


def test_item3_train_ddp_resumes_its_run_and_refuses_to_replace_it_unasked(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env.tmp / "run"
    example_train_ddp(env, out, False)
    first = capsys.readouterr().out
    assert "saved " + str(out / "checkpoint.pt") + " (epoch 0, step 2)" in first
    before = snapshot(out)
    with pytest.raises(Failed):
        example_train_ddp(env, out, False)
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.endswith(
        f"error: --output '{out}' holds other files (checkpoint.pt, model); it holds an "
        "earlier run; pass --resume to continue that run, --force to start a new one over it, "
        "or choose another --output"
    )
    assert snapshot(out) == before

    _example("train_ddp.py", "--data", str(env.data), "--model", "tiny", "--img-size", "32",
             "--epochs", "2", "--batch-size", "4", "--workers", "0", "--output", str(out),
             "--resume")  # fmt: skip
    resumed = capsys.readouterr().out
    assert f"resumed {out / 'checkpoint.pt'} after epoch 0 (step 2)" in resumed
    assert "epoch 0 step" not in resumed  # the first epoch is not trained again
    assert f"saved {out / 'checkpoint.pt'} (epoch 1, step 4)" in resumed
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 4)
    assert state["optimizer"]["state"][0]["step"].item() == 4.0  # AdamW went on counting
    model = t2t_vit.from_pretrained(out / "model")
    assert_state(model, state["model"])
    assert model.pretrained_cfg["labels"] == ["blue", "red"]


def test_item3_train_ddp_resume_without_a_checkpoint_says_so(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Failed):
        _example("train_ddp.py", "--data", str(env.data), "--output", str(env.tmp / "none"),
                 "--resume")  # fmt: skip
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"error: --resume: no {env.tmp / 'none' / 'checkpoint.pt'} to continue from")
    )


def test_item3_train_ddp_never_saves_over_its_pretrained_folder(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env.tmp / "run"
    pretrained = t2t_vit.save_pretrained(tiny_model(img_size=32), out / "model")
    before = snapshot(pretrained)
    with pytest.raises(Failed):
        _example("train_ddp.py", "--data", str(env.data), "--pretrained", str(pretrained),
                 "--output", str(out), "--force")  # fmt: skip
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.endswith(
        f"error: writing {pretrained / 'config.json'} would overwrite the --pretrained folder's "
        "config.json; choose another --output"
    )
    assert snapshot(pretrained) == before


@pytest.mark.parametrize("where", ["", "/blue", "/./"])
def test_train_ddp_refuses_an_output_inside_its_image_tree(
    env: Env, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """Found by the newcomer pass: `--output` inside `--data` wrote `model/` into the tree,
    a class folder the next run trained on."""
    before = snapshot(env.data)
    output = f"{env.data}{where}"
    with pytest.raises(Failed):
        _example("train_ddp.py", "--data", str(env.data), "--output", output)
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.endswith(
        f"error: --output {output} is inside --data {env.data}: the run would write into the "
        "image tree; choose an --output outside it"
    )
    assert snapshot(env.data) == before
