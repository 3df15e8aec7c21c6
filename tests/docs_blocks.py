"""Running the code blocks of Markdown pages: extraction, a photo to read, a tiny pretrained
model served by the fake Hub under a registry name, and the `# (shape)` comments."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fakehub import FakeHub

import t2t_vit

ROOT = Path(__file__).parents[1]
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
# `name = ...  # (1, 197, 384)`: the comment states the shape of `name`.
_SHAPE_COMMENT = re.compile(r"^\s*(\w+) = .*#\s*\((\d+(?:, \d+)*)\)\s*$", re.M)

#: A tiny stand-in for a pretrained ImageNet model: T2T-ViT_t layout, 1000 classes, 64x64.
TINY_ARGS: dict[str, Any] = dict(
    img_size=64,
    tokens_type="transformer",
    embed_dim=32,
    depth=4,
    num_heads=2,
    token_dim=8,
    num_classes=1000,
)


def code_blocks(page: str, language: str = "python") -> list[str]:
    """The fenced blocks of `language` in a page (path relative to the repository root)."""
    text = (ROOT / page).read_text()
    return [code for lang, code in _BLOCK.findall(text) if lang == language]


def run_blocks(blocks: list[str], name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute the blocks in order in one namespace, as a reader pasting them would."""
    for i, code in enumerate(blocks):
        exec(compile(code, f"{name} block {i + 1}", "exec"), namespace)
    return namespace


def shape_comments(blocks: list[str]) -> dict[str, tuple[int, ...]]:
    """`{variable: shape}` for every assignment whose comment is a shape."""
    found = {}
    for code in blocks:
        for var, dims in _SHAPE_COMMENT.findall(code):
            found[var] = tuple(int(d) for d in dims.split(", "))
    return found


def write_photo(path: Path) -> Path:
    """A 96x72 RGB gradient, saved as JPEG."""
    from PIL import Image

    image = Image.new("RGB", (96, 72))
    image.putdata([(x * 2, y * 3, (x + y) % 256) for y in range(72) for x in range(96)])
    image.save(path, quality=95)
    return path


def serve_tiny_pretrained(
    hub: FakeHub, weights_name: str, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> t2t_vit.T2TViT:
    """Publish a tiny model on the fake Hub where `from_pretrained(weights_name)` looks, with
    the registry entry's preprocessing at 64x64; the Hub cache goes under `folder`."""
    from huggingface_hub import constants

    entry = t2t_vit.get_weights(weights_name)
    model = t2t_vit.T2TViT(**TINY_ARGS).eval()
    cfg = {**entry.pretrained_cfg(), "input_size": [3, 64, 64]}
    t2t_vit.save_pretrained(model, folder / "published", pretrained_cfg=cfg)
    hub.add(entry.hub_repo_id, folder / "published")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder / "hf-cache"))
    return model
