"""Models and images with known answers for the inference tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import t2t_vit

#: Class folders in sorted order, and the RGB channel each class reads.
COLOUR_CLASSES = ("blue", "green", "red")
COLOUR_RGB = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}
_CHANNEL = {"blue": 2, "green": 1, "red": 0}


def colour_model() -> t2t_vit.T2TViT:
    """A 3-class model that answers with the dominant (normalised) mean colour.

    Patch stem: each token is (r, g, b, -r, -g, -b, 0, 0), the patch's mean
    normalised colour and its negative, so every token has zero mean over its
    channels and LayerNorm only rescales it. Position table and class token are
    zero. Block 0 attends uniformly (q = k = 0) with identity values and
    projection, so the class token becomes a positive multiple of the tokens'
    mean; all MLPs and the later blocks' attention add nothing. The head reads
    channel b, g, r for classes blue, green, red. A solid-colour image is thus
    classified by its largest normalised channel.
    """
    model = t2t_vit.T2TViT(
        img_size=32,
        tokens_type="patch",
        embed_dim=8,
        depth=2,
        num_heads=2,
        token_dim=8,
        num_classes=3,
    )
    dim = model.embed_dim
    with torch.no_grad():
        conv = model.tokens_to_token.project
        assert isinstance(conv, torch.nn.Conv2d)
        conv.weight.zero_()
        conv.bias.zero_()
        area = conv.kernel_size[0] * conv.kernel_size[1]
        for c in range(3):
            conv.weight[c, c] = 1.0 / area
            conv.weight[c + 3, c] = -1.0 / area
        model.pos_embed.zero_()
        model.cls_token.zero_()
        for i, block in enumerate(model.blocks):
            block.mlp.fc2.weight.zero_()
            block.mlp.fc2.bias.zero_()
            block.attn.qkv.weight.zero_()
            block.attn.proj.bias.zero_()
            if i == 0:
                block.attn.qkv.weight[2 * dim :] = torch.eye(dim)
                block.attn.proj.weight.copy_(torch.eye(dim))
            else:
                block.attn.proj.weight.zero_()
        head = model.head
        assert isinstance(head, torch.nn.Linear)
        head.weight.zero_()
        head.bias.zero_()
        for k, name in enumerate(COLOUR_CLASSES):
            head.weight[k, _CHANNEL[name]] = 1.0
    model.pretrained_cfg = {
        **t2t_vit.default_pretrained_cfg((32, 32)),
        "labels": list(COLOUR_CLASSES),
    }
    return model.eval()


def tiny_model(tokens_type: str = "transformer", **kwargs: object) -> t2t_vit.T2TViT:
    """A randomly initialised tiny T2T-ViT (32x32 input, 2x2 token grid)."""
    args: dict[str, object] = dict(
        img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10
    )
    args.update(kwargs)
    return t2t_vit.T2TViT(tokens_type=tokens_type, **args).eval()  # type: ignore[arg-type]


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (40, 36)) -> Image.Image:
    """A solid RGB image of `size` (width, height)."""
    return Image.new("RGB", size, colour)


def photo_like(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic photograph-like RGB uint8 array: smooth gradients, a disc, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    r = 200 * u + 30 * np.sin(7 * v)
    g = 180 * v + 40 * np.cos(5 * u + 2 * v)
    b = 120 + 100 * np.sin(3 * (u + v))
    cx, cy, rad = 0.6 * width, 0.4 * height, 0.25 * min(width, height)
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < rad**2
    img = np.stack([r, g, b], axis=-1)
    img[disc] = img[disc] * 0.3 + np.array([230.0, 60.0, 40.0]) * 0.7
    img += rng.normal(0.0, 12.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def real_photos() -> dict[str, Path]:
    """Photographs shipped by matplotlib and scikit-learn (dev extra), read in place."""
    import matplotlib
    import sklearn

    mpl = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
    skl = Path(sklearn.__file__).parent / "datasets" / "images"
    photos = {
        "grace_hopper": mpl / "grace_hopper.jpg",
        "china": skl / "china.jpg",
        "flower": skl / "flower.jpg",
    }
    for path in photos.values():
        if not path.is_file():
            raise FileNotFoundError(f"test photograph missing from the dev install: {path}")
    return photos
