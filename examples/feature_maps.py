"""Per-block feature maps of a T2T-ViT on the real token grid (`forward_intermediates`).

    python examples/feature_maps.py IMAGE --tiny [--out maps.png]
    python examples/feature_maps.py IMAGE --weights DIR | --model NAME

Prints each chosen block's `(B, C, h, w)` map and class token; `--out` saves the
maps' per-token feature norm, one panel per block, as a picture (never over the input
image; over an existing file only with `--force`).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

import t2t_vit
from t2t_vit.output import check_output_file, write_file


def load(args: argparse.Namespace) -> t2t_vit.T2TViT:
    if args.tiny:
        torch.manual_seed(0)
        return t2t_vit.T2TViT(
            img_size=64, tokens_type="performer", embed_dim=64, depth=4, num_heads=2,
            token_dim=16, num_classes=10,
        )  # fmt: skip
    if args.weights:
        return t2t_vit.from_pretrained(args.weights)
    return t2t_vit.from_pretrained(args.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", metavar="IMAGE")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="preset or Hub repository with weights")
    group.add_argument("--weights", help="a folder written by save_pretrained")
    group.add_argument("--tiny", action="store_true", help="a tiny randomly initialised model")
    parser.add_argument("--blocks", type=int, nargs="*", default=None, help="block indices")
    parser.add_argument("--out", help="save the feature-norm maps to this PNG")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    args = parser.parse_args()
    inputs = {args.image: "the input image"}
    if args.weights:
        for name in ("config.json", "model.safetensors"):
            inputs[f"{args.weights}/{name}"] = f"the --weights folder's {name}"
    if args.out:
        try:
            # Before any work: the picture must not replace the photo or an existing file.
            check_output_file(args.out, inputs, force=args.force, option="--out")
        except (OSError, ValueError) as err:
            parser.error(str(err))

    model = load(args).eval()
    x = t2t_vit.preprocess(args.image, model)
    with torch.inference_mode():
        indices = args.blocks if args.blocks is not None else list(range(len(model.blocks)))
        # forward_intermediates indexes levels: the stem's T2T layers come before the blocks.
        num_stem = len(model.feature_info) - len(model.blocks)
        levels = [i + num_stem if i >= 0 else i for i in indices]
        final, maps = model.forward_intermediates(x, indices=levels, return_prefix_tokens=True)
    print(
        f"input {tuple(x.shape)} -> token grid {model.tokens_to_token.output_grid(*x.shape[-2:])}"
    )
    print(f"final features {tuple(final.shape)}")
    norms = []
    for i, (spatial, cls) in zip(indices, maps, strict=True):
        norm = spatial.norm(dim=1)[0]
        norms.append(norm)
        print(
            f"block {i}: map {tuple(spatial.shape)}  class token {tuple(cls.shape)}  "
            f"mean token norm {norm.mean():.3f}"
        )
    if args.out:
        panels = []
        for norm in norms:
            scaled = (norm - norm.min()) / (norm.max() - norm.min() + 1e-12)
            img = Image.fromarray(np.uint8(np.round(scaled.numpy() * 255)))
            panels.append(img.resize((128, 128), Image.Resampling.NEAREST))
        sheet = Image.new("L", (132 * len(panels), 128), 255)
        for k, panel in enumerate(panels):
            sheet.paste(panel, (132 * k, 0))
        write_file(args.out, sheet.save, inputs, force=args.force, option="--out")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
