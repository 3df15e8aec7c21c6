"""Found by the newcomer pass on this round's main: a wrapped model keeps its own settings, a
meta-device model says it has no weights, TorchScript is refused by every layer, and a
`pretrained_cfg` that is not a dict is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import t2t_vit

TINY: dict[str, Any] = dict(img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8)


def _model() -> t2t_vit.T2TViT:
    torch.manual_seed(0)
    model = t2t_vit.T2TViT(**TINY, num_classes=3).eval()
    model.pretrained_cfg = {
        **t2t_vit.resolve_pretrained_cfg(model),
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "labels": ["cat", "dog", "bird"],
    }
    return model


@pytest.mark.parametrize("wrap", ["data_parallel", "compile"])
def test_a_wrapped_model_is_preprocessed_and_named_with_its_own_settings(wrap: str) -> None:
    model = _model()
    wrapped = torch.nn.DataParallel(model) if wrap == "data_parallel" else torch.compile(model)
    image = torch.full((3, 40, 40), 0.8)
    assert torch.equal(t2t_vit.preprocess(image, wrapped), t2t_vit.preprocess(image, model))
    assert t2t_vit.preprocess(image, wrapped).shape == (1, 3, 32, 32)
    assert t2t_vit.resolve_labels(wrapped) == ["cat", "dog", "bird"]
    assert t2t_vit.resolve_pretrained_cfg(wrapped)["mean"] == [0.5, 0.5, 0.5]
    if wrap == "data_parallel":  # compiling costs minutes here; preprocessing is the point
        got = t2t_vit.predict(wrapped, image, top_k=5)
        assert got == t2t_vit.predict(model, image, top_k=5)
        assert sorted(p.label for p in got[0]) == ["bird", "cat", "dog"]


def test_a_meta_model_says_it_has_no_weights_in_one_line(tmp_path: Path) -> None:
    model = t2t_vit.create_model("t2t-vit-7", device="meta", **TINY)
    with pytest.raises(ValueError, match="the model is on meta") as err:
        model(torch.randn(1, 3, 32, 32))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="meta device") as saved:
        t2t_vit.save_pretrained(model, tmp_path / "meta")
    assert "no weights to save" in str(saved.value)
    assert not (tmp_path / "meta").exists()
    # Shapes still flow on the meta device itself.
    assert model(torch.randn(1, 3, 32, 32, device="meta")).shape == (1, 1000)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("layer", ["Attention", "Block", "Mlp"])
def test_every_public_layer_refuses_torchscript_in_one_line(layer: str) -> None:
    module = {
        "Attention": lambda: t2t_vit.Attention(dim=16, num_heads=2),
        "Block": lambda: t2t_vit.Block(dim=16, num_heads=2),
        "Mlp": lambda: t2t_vit.Mlp(in_features=8),
    }[layer]()
    with pytest.raises(RuntimeError) as err:
        torch.jit.script(module)
    assert str(err.value).startswith(f"{layer} does not support TorchScript (torch.jit.script)")


def test_a_pretrained_cfg_that_is_not_a_dict_is_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as err:
        t2t_vit.save_pretrained(_model(), tmp_path / "x", pretrained_cfg="imagenet")  # type: ignore[arg-type]
    assert str(err.value) == (
        "pretrained_cfg must be a dict (e.g. {'labels': [...]}) or None, not str 'imagenet'"
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["predict", "attention"])
def test_the_cli_names_a_symbolic_link_loop_as_the_api_does(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from t2t_vit.cli import main

    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    weights = t2t_vit.save_pretrained(_model(), tmp_path / "weights")
    args = [command, str(loop), "--weights", str(weights)]
    if command == "attention":
        args += ["--out", str(tmp_path / "map.png")]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        f"cannot read image {str(loop)!r}: a symbolic link loop (the link leads back to "
        "itself); point it at an image file"
    )


def test_an_empty_save_path_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="empty path") as err:
        t2t_vit.save_pretrained(_model(), "")
    assert str(err.value) == (
        "save_pretrained needs a folder name, got an empty path; pass e.g. './my-model' "
        "(the current folder is never taken by default)"
    )
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_another_colormap_is_refused_never_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from t2t_vit.inference.visualize import colormap_lut

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    assert colormap_lut("inferno").shape == (256, 3)
    with pytest.raises(ValueError, match="needs matplotlib") as err:
        colormap_lut("viridis")
    assert str(err.value).startswith(
        "colormap 'viridis' needs matplotlib, which is not installed (pip install"
    )
    assert str(err.value).endswith("without it only the built-in 'inferno' ramp is available")
