"""`t2t-vit convert`: original checkpoints in both layouts, written by the tests, to Hub folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from checkpoints import official_checkpoint, to_mmpretrain
from conftest import FIXTURES, OFFICIAL_PRESETS, TINY_ATOL, load_tensors
from safetensors import safe_open

import t2t_vit
from t2t_vit.cli import main
from t2t_vit.weights.serialization import read_config


class Foreign:
    """A class the safe loader must refuse to rebuild."""

    def __init__(self) -> None:
        self.payload = "anything"


def _shape_only(shapes: dict[str, list[int]], fill: float = 0.0) -> dict[str, torch.Tensor]:
    # Stride-0 views: full-size shapes at the cost of one element each.
    return {k: torch.tensor(fill).expand(s) for k, s in shapes.items()}


def _convert(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["convert", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _tensor(folder: Path, key: str) -> torch.Tensor:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return f.get_tensor(key)


@pytest.mark.parametrize("official_name", list(OFFICIAL_PRESETS))
def test_preset_is_inferred_from_full_size_shapes(official_name: str) -> None:
    state = _shape_only(OFFICIAL_PRESETS[official_name]["state_dict_shapes"])
    preset, kwargs, others = t2t_vit.infer_model_args(state)
    expected = official_name.replace("_", "-")
    if expected == "t2t-vit-14-resnext":
        # Same shapes as T2T-ViT-14; only num_heads differs, which shapes cannot show.
        assert (preset, others) == ("t2t-vit-14", ["t2t-vit-14-resnext"])
    else:
        assert preset == expected
        assert others == ([] if expected != "t2t-vit-14" else ["t2t-vit-14-resnext"])
    assert kwargs == {**t2t_vit.PRESETS[preset], "num_classes": 1000, "img_size": 224}


def test_official_checkpoint_converts_from_ema_weights_with_inferred_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = OFFICIAL_PRESETS["t2t_vit_14"]["state_dict_shapes"]
    ckpt = tmp_path / "my_t2t_vit_14.pth.tar"
    torch.save(official_checkpoint(_shape_only(shapes, 0.0), _shape_only(shapes, 0.5)), ckpt)
    status, out, err = _convert(str(ckpt), str(tmp_path / "out"), capsys=capsys)
    assert (status, err) == (0, "")
    folder = tmp_path / "out"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    lines = out.splitlines()
    assert lines[:4] == [
        "note: took the EMA weights under 'state_dict_ema', as for the official files; the "
        "checkpoint also holds raw weights under 'state_dict'",
        "note: inferred preset 't2t-vit-14' from the checkpoint's shapes",
        "note: the shapes also fit t2t-vit-14-resnext (num_heads differs); pass --model to choose",
        "read official weights from state_dict_ema; model: t2t-vit-14",
    ]
    for line, name in zip(
        lines[4:], ["model.safetensors", "config.json", "README.md"], strict=True
    ):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert line == f"{digest}  {folder / name}"
    # state_dict_ema (0.5) wins over state_dict (0.0), `module.` is gone, every key kept.
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == sorted(shapes)
        assert torch.equal(f.get_tensor("tokens_to_token.attention2.w"), torch.full((32, 64), 0.5))
    config = read_config(folder / "config.json")
    args = config["model_args"]
    assert {k: args[k] for k in t2t_vit.PRESETS["t2t-vit-14"]} == t2t_vit.PRESETS["t2t-vit-14"]
    assert (args["num_classes"], args["img_size"], args["num_heads"]) == (1000, 224, 6)
    assert (
        config["pretrained_cfg"]["source"]["sha256"]
        == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    )
    assert config["pretrained_cfg"]["labels"] == "imagenet-1k"


def test_mmpretrain_checkpoint_maps_every_key_and_takes_registry_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = OFFICIAL_PRESETS["t2t_vit_t_14"]["state_dict_shapes"]
    # A distinct value per key proves each mmpretrain key lands on its official name.
    value = {k: float(i) for i, k in enumerate(sorted(shapes))}
    state = {to_mmpretrain(k): torch.tensor(value[k]).expand(s) for k, s in shapes.items()}
    assert "backbone.encoder.13.ffn.layers.0.0.weight" in state
    assert "head.layers.head.bias" in state
    ckpt = tmp_path / "t2t-vit-t-14_8xb64_in1k_20211220-f7378dd5.pth"
    torch.save({"meta": {"epoch": 310, "CLASSES": ["tench"]}, "state_dict": state}, ckpt)
    folder = tmp_path / "out"
    # Not the released bytes (their SHA-256 does not start with f7378dd5): the registry
    # metadata comes only when asked for by name.
    argv = ("--source", "mmpretrain", "--model", "t2t-vit-t-14.mmpretrain")
    status, out, _ = _convert(str(ckpt), str(folder), *argv, capsys=capsys)
    assert status == 0
    assert out.splitlines()[0] == (
        "read mmpretrain weights from state_dict; model: t2t-vit-t-14.mmpretrain"
    )
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == sorted(shapes)
        checked = ("blocks.13.mlp.fc1.weight", "tokens_to_token.attention1.norm1.bias",
                   "norm.weight", "head.bias", "blocks.0.attn.qkv.weight", "pos_embed")  # fmt: skip
        for key in checked:
            assert f.get_tensor(key).unique().tolist() == [value[key]]
    cfg = read_config(folder / "config.json")["pretrained_cfg"]
    assert cfg["metrics"] == {"top1": 81.83, "top5": 95.84, "dataset": "imagenet-1k"}
    assert cfg["source"]["url"] == (
        "https://download.openmmlab.com/mmclassification/v0/t2t-vit/"
        "t2t-vit-t-14_8xb64_in1k_20211220-f7378dd5.pth"
    )
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\nlibrary_name: t2t-vit\n")
    assert "| 81.83 | 95.84 |" in card
    assert "@inproceedings{yuan2021tokens," in card
    assert "model = t2t_vit.from_pretrained('t2t-vit-t-14.mmpretrain')" in card


@pytest.mark.parametrize("name", ["tiny_transformer", "tiny_performer"])
def test_converted_official_tiny_checkpoint_reproduces_golden_outputs(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_tensors(f"{name}.state_dict.safetensors")
    noise = {k: v + 1.0 for k, v in state.items()}  # the non-EMA weights must not be used
    ckpt = tmp_path / "ckpt.pth.tar"
    torch.save(official_checkpoint(noise, state), ckpt)
    spec = str(FIXTURES / f"{name}.json")
    status, _, err = _convert(str(ckpt), str(tmp_path / "out"), "--model", spec, capsys=capsys)
    assert (status, err) == (0, "")
    model = t2t_vit.from_pretrained(tmp_path / "out")
    io = load_tensors(f"{name}.io.safetensors")
    with torch.no_grad():
        tokens = model.forward_features(io["input"])
    torch.testing.assert_close(tokens[:, 0], io["features"], atol=TINY_ATOL, rtol=0)
    torch.testing.assert_close(model.forward_head(tokens), io["logits"], atol=TINY_ATOL, rtol=0)


def test_converted_mmpretrain_tiny_checkpoint_reproduces_golden_outputs(tmp_path: Path) -> None:
    state = load_tensors("tiny_transformer.state_dict.safetensors")
    ckpt = tmp_path / "tiny_mm.pth"
    torch.save({"meta": {}, "state_dict": {to_mmpretrain(k): v for k, v in state.items()}}, ckpt)
    kwargs = json.loads((FIXTURES / "tiny_transformer.json").read_text())["official_kwargs"]
    result = t2t_vit.convert_checkpoint(ckpt, tmp_path / "out", model=kwargs)
    assert (result.source, result.state_dict_key) == ("mmpretrain", "state_dict")
    model = t2t_vit.from_pretrained(tmp_path / "out")
    io = load_tensors("tiny_transformer.io.safetensors")
    with torch.no_grad():
        logits = model(io["input"])
    torch.testing.assert_close(logits, io["logits"], atol=TINY_ATOL, rtol=0)


def test_pickled_foreign_object_is_refused_unless_trusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_tensors("tiny_transformer.state_dict.safetensors")
    ckpt = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "extra": Foreign()}, ckpt)
    spec = str(FIXTURES / "tiny_transformer.json")
    status, out, err = _convert(str(ckpt), str(tmp_path / "out"), "--model", spec, capsys=capsys)
    foreign = f"{Foreign.__module__}.{Foreign.__qualname__}"
    assert (status, out) == (2, "")
    assert err == (
        f"t2t-vit convert: error: refusing to unpickle {ckpt}: it holds objects of {foreign}, "
        "which weights-only loading does not rebuild (allowed beyond tensors and plain "
        "containers: Namespace). If you trust where the file comes from, pass "
        "--trust-checkpoint (trust_checkpoint=True) to load it with full pickle, which can run "
        "code from the file.\n"
    )
    assert not (tmp_path / "out").exists()
    status, _, err = _convert(
        str(ckpt), str(tmp_path / "out"), "--model", spec, "--trust-checkpoint", capsys=capsys
    )
    assert (status, err) == (0, "")
    assert torch.equal(_tensor(tmp_path / "out", "pos_embed"), state["pos_embed"])


def test_checkpoint_of_another_architecture_lists_the_mismatched_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "performer.pth"
    torch.save({"state_dict": load_tensors("tiny_performer.state_dict.safetensors")}, ckpt)
    spec = str(FIXTURES / "tiny_transformer.json")
    status, _, err = _convert(str(ckpt), str(tmp_path / "out"), "--model", spec, capsys=capsys)
    assert status == 2
    assert err.startswith(
        "t2t-vit convert: error: performer.pth does not fit the given architecture: checkpoint "
        "does not fit the model: 14 missing keys (tokens_to_token.attention1.attn.proj.bias, "
        "tokens_to_token.attention1.attn.proj.weight, tokens_to_token.attention1.attn.qkv.weight,"
        " ... and 11 more); 18 unexpected keys (tokens_to_token.attention1.kqv.bias, "
    )
    assert not (tmp_path / "out").exists()


def test_unused_keys_are_refused_and_ignore_keys_drops_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_tensors("tiny_transformer.state_dict.safetensors")
    aux = {"aux_head.weight": torch.zeros(10, 48), "aux_head.bias": torch.zeros(10)}
    ckpt = tmp_path / "tl.pth.tar"
    torch.save({"state_dict_ema": {**state, **aux}}, ckpt)
    spec = str(FIXTURES / "tiny_transformer.json")
    status, _, err = _convert(str(ckpt), str(tmp_path / "out"), "--model", spec, capsys=capsys)
    assert status == 2
    assert "2 unexpected keys (aux_head.bias, aux_head.weight). The weights look like" in err
    argv = (str(ckpt), str(tmp_path / "out"), "--model", spec, "--ignore-keys", "aux_head.")
    status, out, _ = _convert(*argv, capsys=capsys)
    assert status == 0
    assert out.splitlines()[0] == "note: dropped 2 ignored keys: aux_head.bias, aux_head.weight"


def test_shapes_that_fit_no_preset_ask_for_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "tiny.pth"
    torch.save(load_tensors("tiny_transformer.state_dict.safetensors"), ckpt)
    status, _, err = _convert(str(ckpt), str(tmp_path / "out"), capsys=capsys)
    assert status == 2
    assert err == (
        "t2t-vit convert: error: the checkpoint's shapes (tokens_type=transformer, embed_dim=48, "
        "depth=2, mlp_ratio=2.0, token_dim=16, in_chans=3, qkv_bias=False, num_classes=10, "
        f"img_size=64) fit no preset ({', '.join(t2t_vit.PRESETS)}); pass --model "
        "CONFIG.json with its T2TViT arguments (num_heads cannot be read from shapes)\n"
    )


def test_truncated_checkpoint_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "cut.pth.tar"
    torch.save({"state_dict": load_tensors("tiny_transformer.state_dict.safetensors")}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    status, _, err = _convert(str(ckpt), str(tmp_path / "out"), capsys=capsys)
    assert status == 2
    assert err.startswith(
        f"t2t-vit convert: error: {ckpt} is not a readable PyTorch checkpoint "
        "(truncated or corrupt?)"
    )


def test_missing_checkpoint_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _convert(str(tmp_path / "nope.pth"), str(tmp_path / "out"), capsys=capsys)
    assert status == 2
    assert err == (
        f"t2t-vit convert: error: checkpoint '{tmp_path / 'nope.pth'}' does not exist or is not "
        "a file\n"
    )


def test_cifar_checkpoint_with_registry_name_gets_cifar_preprocessing(tmp_path: Path) -> None:
    shapes = dict(OFFICIAL_PRESETS["t2t_vit_14"]["state_dict_shapes"])
    shapes["head.weight"], shapes["head.bias"] = [10, 384], [10]
    ckpt = tmp_path / "downloaded.pth"
    # transfer_learning.py saves {'net': DataParallel state dict, 'acc', 'epoch'}.
    net = {"module." + k: v for k, v in _shape_only(shapes).items()}
    torch.save({"net": net, "acc": 98.3, "epoch": 59}, ckpt)
    result = t2t_vit.convert_checkpoint(ckpt, tmp_path / "out", model="t2t-vit-14.cifar10")
    assert (result.model_name, result.state_dict_key) == ("t2t-vit-14.cifar10", "net")
    cfg = read_config(tmp_path / "out" / "config.json")["pretrained_cfg"]
    assert cfg["labels"] == "cifar-10"
    assert (cfg["mean"], cfg["std"]) == ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["input_size"]) == (
        1.0,
        "bilinear",
        [3, 224, 224],
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '{"embed_dim": 48, "depthh": 2}',
            "unknown T2TViT argument 'depthh' (did you mean 'depth'?); accepted: img_size, "
            "tokens_type, in_chans",
        ),
        (
            '{"embed_dim": 48,}',
            "not valid JSON (Expecting property name enclosed in double "
            "quotes at line 1 column 18)",
        ),
        ('{"embed_dim": "48"}', "T2TViT argument embed_dim='48' must be an integer, not str"),
        ("[1, 2]", "must hold a JSON object of T2TViT arguments, got a list"),
    ],
)
def test_a_bad_model_json_is_one_line_naming_the_file_and_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    ckpt = tmp_path / "tiny.pth"
    torch.save({"state_dict": load_tensors("tiny_transformer.state_dict.safetensors")}, ckpt)
    spec = tmp_path / "args.json"
    spec.write_text(text)
    status, out, err = _convert(
        str(ckpt), str(tmp_path / "out"), "--model", str(spec), capsys=capsys
    )
    assert (status, out) == (2, "")
    assert err.startswith(f"t2t-vit convert: error: --model {str(spec)!r}: {problem}")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_model_json_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "tiny.pth"
    torch.save({"state_dict": load_tensors("tiny_transformer.state_dict.safetensors")}, ckpt)
    spec = tmp_path / "nowhere.json"
    status, _, err = _convert(str(ckpt), str(tmp_path / "out"), "--model", str(spec), capsys=capsys)
    assert (status, err) == (
        2,
        f"t2t-vit convert: error: --model {str(spec)!r}: file not found\n",
    )
