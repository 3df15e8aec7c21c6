"""Bad input on the weights side, as a new user hands it in: one clear line each."""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from checkpoints import official_checkpoint
from conftest import OFFICIAL_PRESETS, TINY_ATOL, load_json, load_tensors

import t2t_vit
from t2t_vit import PretrainedLoadError
from t2t_vit.cli import main

ACCEPTED = "expected a file written by torch.save (.pth, .pth.tar, .bin) or a .safetensors file"


def _zip_without_data_pkl(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.txt", "1 2 3")


WRITERS: dict[str, tuple[Callable[[Path], object], str]] = {
    "text": (lambda p: p.write_text("hello I am text"), "text ('hello I am text')"),
    "empty": (lambda p: p.write_bytes(b""), "an empty file (0 bytes; an interrupted download?)"),
    "jpeg": (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "a JPEG image"),
    "random": (
        lambda p: p.write_bytes(bytes(range(7, 256)) * 4),
        "binary data of an unknown format (it starts with 07 08 09 0a 0b 0c 0d 0e)",
    ),
    "html": (
        lambda p: p.write_text("<!DOCTYPE html>\n<html><body>Not Found</body></html>"),
        "an HTML page (a download that got a web page instead of the file?)",
    ),
    "lfs": (
        lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n"),
        "a Git LFS pointer, not the file it points to (run git lfs pull)",
    ),
    "zip": (_zip_without_data_pkl, "a zip archive without the data.pkl of torch.save (1 entries)"),
    "pickle": (
        lambda p: p.write_bytes(pickle.dumps({"weights": [1, 2]})),
        "a Python pickle that torch.save did not write (no PyTorch magic number)",
    ),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_file_that_is_not_a_checkpoint_is_named_for_what_it_looks_like(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write, looks = WRITERS[kind]
    path = tmp_path / "model.pth"
    write(path)
    status = main(["convert", str(path), str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert status == 2
    assert err == (
        f"t2t-vit convert: error: {path} is not a PyTorch checkpoint: it looks like {looks}; "
        f"{ACCEPTED}\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_a_truncated_checkpoint_is_called_truncated_without_unsafe_advice(
    legacy: bool, tmp_path: Path
) -> None:
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.arange(1000.0)}, whole, _use_new_zipfile_serialization=not legacy)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(ValueError, match="truncated") as err:
        t2t_vit.load_checkpoint(cut)
    message = str(err.value)
    assert message.startswith(
        f"{cut} is not a readable PyTorch checkpoint (truncated or corrupt?): "
    )
    assert len(message.splitlines()) == 1
    assert not message.endswith(": ")
    assert "--trust-checkpoint" not in message


class Foreign:
    """A class of the user's own, pickled into a checkpoint."""


def test_only_a_real_pickle_of_a_foreign_object_gets_the_trust_advice(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Foreign()}, path)
    with pytest.raises(t2t_vit.UnsafeCheckpointError) as err:
        t2t_vit.load_checkpoint(path)
    assert "it holds objects of test_bad_input_weights.Foreign" in str(err.value)
    assert "pass --trust-checkpoint (trust_checkpoint=True)" in str(err.value)


def test_safetensors_content_under_a_pth_name_is_read_as_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    cfg = load_json("tiny_transformer.json")
    path = tmp_path / "tiny.pth"
    save_file(load_tensors("tiny_transformer.state_dict.safetensors"), str(path))
    t2t_vit.convert_checkpoint(path, tmp_path / "out", model=cfg["official_kwargs"])
    model = t2t_vit.from_pretrained(tmp_path / "out")
    io = load_tensors("tiny_transformer.io.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(model(io["input"]), io["logits"], atol=TINY_ATOL, rtol=0)


def test_a_corrupt_local_folder_gets_advice_for_a_local_folder(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder)
    message = str(err.value)
    assert message.startswith(f"{weights} is not a valid safetensors file (truncated or corrupt")
    assert message.endswith(
        "Write the folder again (t2t_vit.save_pretrained, or t2t-vit convert from the original "
        "checkpoint)."
    )
    assert "force_download" not in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("depth", "fourteen", "T2TViT argument depth='fourteen' must be an integer, not str"),
        ("mlp_ratio", [3], "T2TViT argument mlp_ratio=[3] must be a number, not list"),
        ("qkv_bias", "yes", "T2TViT argument qkv_bias='yes' must be true or false, not str"),
        ("dept", 2, "unknown T2TViT argument 'dept' (did you mean 'depth'?); accepted: img_size"),
    ],
)
def test_config_json_of_the_wrong_type_names_the_field(
    folder: Path, field: str, value: object, expected: str
) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_args"][field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder)
    assert str(err.value).startswith(
        f"{folder}: config.json model_args do not fit T2TViT: {expected}"
    )


def test_weights_of_another_architecture_are_summarised_with_the_preset_they_look_like(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = OFFICIAL_PRESETS["t2t_vit_14"]["state_dict_shapes"]
    # Stride-0 views: full-size shapes at the cost of one element each.
    state = {k: torch.tensor(0.5).expand(s) for k, s in shapes.items()}
    path = tmp_path / "performer.pth"
    torch.save(official_checkpoint(state, state), path)
    status = main(["convert", str(path), str(tmp_path / "out"), "--model", "t2t-vit-t-14"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err == (
        "t2t-vit convert: error: performer.pth does not fit t2t-vit-t-14: checkpoint does not "
        "fit the model: 14 missing keys (tokens_to_token.attention1.attn.proj.bias, "
        "tokens_to_token.attention1.attn.proj.weight, tokens_to_token.attention1.attn.qkv.weight,"
        " ... and 11 more); 18 unexpected keys (tokens_to_token.attention1.kqv.bias, "
        "tokens_to_token.attention1.kqv.weight, tokens_to_token.attention1.mlp.0.bias, ... and "
        "15 more). The weights look like t2t-vit-14 (performer stem, width 384, 14 blocks, 1000 "
        "classes, 224x224)\n"
    )


def test_a_mismatch_keeps_the_full_lists_on_the_exception(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["embed_dim"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError) as err:
        t2t_vit.from_pretrained(folder)
    mismatch = err.value.mismatch
    assert isinstance(mismatch, t2t_vit.StateDictMismatchError)
    assert len(mismatch.mismatched) > 3
    assert ("blocks.0.attn.qkv.weight", (144, 48), (288, 96)) in mismatch.mismatched
    message = str(err.value)
    assert len(message) < 1000
    assert f"{len(mismatch.mismatched)} shape mismatches (" in message
    assert f"... and {len(mismatch.mismatched) - 3} more)" in message
    assert message.endswith(
        "The weights look like no preset (transformer stem, width 48, 2 blocks, 10 classes, 64x64)"
    )


def test_typos_suggest_the_closest_known_name() -> None:
    with pytest.raises(TypeError) as err:
        t2t_vit.create_model("t2t-vit-t-14", num_clases=10)
    assert str(err.value).startswith(
        "unknown T2TViT argument 'num_clases' (did you mean 'num_classes'?); accepted: img_size, "
    )
    with pytest.raises(TypeError) as err:
        t2t_vit.create_model("t2t-vit-t-14", pretrained=True, cache_dirr="here")
    assert str(err.value).startswith(
        "unknown argument 'cache_dirr' (did you mean 'cache_dir'?); from_pretrained takes "
        "num_classes, img_size, source, revision, cache_dir, force_download, device, "
        "map_location, dtype and T2TViT arguments (img_size, "
    )
    with pytest.raises(ValueError, match=r"^unknown model 't2t-vit-t14' \(did you mean "):
        t2t_vit.create_model("t2t-vit-t14")
    with pytest.raises(ValueError, match="unknown pretrained model") as verr:
        t2t_vit.from_pretrained("t2t-vit-t-14.mmpretrian")
    assert str(verr.value).startswith(
        "unknown pretrained model 't2t-vit-t-14.mmpretrian' (did you mean "
        "'t2t-vit-t-14.mmpretrain'?); known: t2t-vit-7, "
    )


def test_a_negative_num_classes_is_refused_before_loading(folder: Path) -> None:
    with pytest.raises(
        ValueError, match=r"^num_classes must be at least 0 \(0: no head\), got -1$"
    ):
        t2t_vit.from_pretrained(folder, num_classes=-1)


def test_num_classes_0_drops_the_head_without_a_warning_of_a_new_head(
    folder: Path, recwarn: pytest.WarningsRecorder
) -> None:
    model = t2t_vit.from_pretrained(folder, num_classes=0)
    assert [str(w.message) for w in recwarn] == []
    assert isinstance(model.head, torch.nn.Identity)
    assert model.num_classes == 0


@pytest.mark.parametrize(
    ("dtype", "message"),
    [
        ("float16", "dtype must be a torch.dtype such as torch.float16, got the string 'float16'"),
        (torch.int8, "dtype must be a floating-point torch.dtype, got torch.int8"),
    ],
)
def test_a_dtype_that_is_no_float_torch_dtype_is_refused_before_loading(
    folder: Path, dtype: object, message: str
) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        t2t_vit.from_pretrained(folder, dtype=dtype)  # type: ignore[arg-type]
