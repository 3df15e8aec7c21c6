"""The reference documentation a user reads with `help()` and on the API page: every
constructor argument of the public classes is documented, and `forward_intermediates`
has a return type a type checker can use."""

from __future__ import annotations

import dataclasses
import inspect
import pydoc
import re
import textwrap
from pathlib import Path

import pytest
import torch
from mypy import api as mypy_api

import t2t_vit

ROOT = Path(__file__).parents[1]


def _section(doc: str, title: str) -> list[str]:
    """The names a Google-style docstring section (`Args:`, `Attributes:`) documents."""
    lines = inspect.cleandoc(doc).splitlines()
    start = lines.index(f"{title}:") + 1
    names = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the next section
        match = re.match(r"^    (\w+): \S", line)
        if match:
            names.append(match.group(1))
    return names


def _classes_with_constructors() -> list[type]:
    found = []
    for name in t2t_vit.__all__:
        obj = getattr(t2t_vit, name)
        if inspect.isclass(obj) and "__init__" in vars(obj) and not dataclasses.is_dataclass(obj):
            found.append(obj)
    return found


def test_the_public_classes_with_constructors_are_the_ones_checked_below() -> None:
    assert sorted(c.__name__ for c in _classes_with_constructors()) == [
        "Attention", "Block", "DropPath", "EvalTransform", "FeatureInfo", "ImageFolder", "Mlp",
        "PretrainedLoadError", "SimpleFeaturePyramid", "StateDictMismatchError",
        "T2TFeatures", "T2TModule", "T2TViT", "TokenPerformer", "TokenTransformer",
    ]  # fmt: skip


@pytest.mark.parametrize("cls", _classes_with_constructors(), ids=lambda c: c.__name__)
def test_every_constructor_argument_is_documented_in_order(cls: type) -> None:
    doc = vars(cls)["__init__"].__doc__
    assert doc, f"{cls.__name__}.__init__ has no docstring: help() shows the base class's"
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert _section(doc, "Args") == params


@pytest.mark.parametrize(
    "cls",
    [t2t_vit.AttentionMaps, t2t_vit.EvalResult, t2t_vit.PretrainedWeights],
    ids=lambda c: c.__name__,
)
def test_every_dataclass_field_is_documented_in_order(cls: type) -> None:
    fields = [f.name for f in dataclasses.fields(cls)]
    assert _section(cls.__doc__ or "", "Attributes") == fields


def test_help_on_the_model_shows_its_own_arguments_not_torchs_generic_text() -> None:
    text = pydoc.render_doc(t2t_vit.T2TViT, renderer=pydoc.plaintext)
    assert "Initialize internal Module state" not in text
    assert "img_size: Input size the model is built for" in text
    assert "drop_path_rate: Stochastic depth of the last block" in text
    text = pydoc.render_doc(t2t_vit.TokenAttention, renderer=pydoc.plaintext)
    assert "out_dim: Width of the output tokens" in text  # inherited from Attention


def test_forward_intermediates_types_follow_its_flags() -> None:
    snippet = textwrap.dedent(
        """
        import torch
        import t2t_vit

        m = t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8)
        x = torch.zeros(1, 3, 32, 32)
        reveal_type(m.forward_intermediates(x))
        reveal_type(m.forward_intermediates(x, intermediates_only=True))
        reveal_type(m.forward_intermediates(x, [0], return_prefix_tokens=True))
        reveal_type(
            m.forward_intermediates(x, return_prefix_tokens=True, intermediates_only=True)
        )
        """
    )
    out, err, status = mypy_api.run(
        ["--strict", "--cache-dir", str(ROOT / ".mypy_cache"), "-c", snippet]
    )
    assert status == 0, out + err
    tensor = "torch._tensor.Tensor"
    revealed = re.findall(r'Revealed type is "(.*)"', out)
    assert revealed == [
        f"tuple[{tensor}, list[{tensor}]]",
        f"list[{tensor}]",
        f"tuple[{tensor}, list[tuple[{tensor}, {tensor}]]]",
        f"list[tuple[{tensor}, {tensor}]]",
    ]


def test_forward_intermediates_returns_what_its_types_say() -> None:
    model = t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        pairs = model.forward_intermediates(x, return_prefix_tokens=True, intermediates_only=True)
        features = model.forward_features(x)
    assert torch.equal(final, features)
    # Every level: the two T2T layers (no class token: an empty prefix), then the blocks.
    assert [m.shape for m in maps] == [(1, 8, 8, 8), (1, 8, 4, 4)] + [(1, 32, 2, 2)] * 2
    assert all(isinstance(p, tuple) and len(p) == 2 for p in pairs)
    for (spatial, _), plain in zip(pairs, maps, strict=True):
        assert torch.equal(spatial, plain)
    assert [p.shape for _, p in pairs] == [(1, 0, 32)] * 2 + [(1, 1, 32)] * 2
