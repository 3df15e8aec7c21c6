"""Attention rollout of a T2T-ViT over an image, and the T2T stem's own attention.

    python examples/attention_map.py IMAGE --out map.png --tiny
    python examples/attention_map.py IMAGE --out map.png --random t2t-vit-t-14 [--palette]
    python examples/attention_map.py IMAGE --out map.png --weights DIR | --model NAME

`--out` is never the input image, and an existing file is replaced only with `--force`.

Writes a picture: the crop the model sees, the rollout over the encoder blocks
(Abnar & Zuidema, 2020) overlaid on it and, for a transformer stem, the attention
each token of the first T2T layer receives (56x56 tokens at 224x224). `--random`
and `--tiny` use untrained weights: their maps show the mechanics, not what a
trained model looks at. Each map is stretched to its own min..max for display
(an untrained model's rollout is close to uniform).
"""

from __future__ import annotations

import argparse

import torch
from PIL import Image

import t2t_vit
from t2t_vit.output import check_output_file, write_file


def load(args: argparse.Namespace) -> t2t_vit.T2TViT:
    torch.manual_seed(0)
    if args.tiny:
        return t2t_vit.T2TViT(
            img_size=64, tokens_type="transformer", embed_dim=64, depth=2, num_heads=2,
            token_dim=16, num_classes=10,
        )  # fmt: skip
    if args.random:
        return t2t_vit.create_model(args.random)
    if args.weights:
        return t2t_vit.from_pretrained(args.weights)
    return t2t_vit.from_pretrained(args.model)


def inputs_of(args: argparse.Namespace) -> dict[str, str]:
    """The files this run reads, which `--out` must never be."""
    found = {args.image: "the input image"}
    if args.weights:
        for name in ("config.json", "model.safetensors"):
            found[f"{args.weights}/{name}"] = f"the --weights folder's {name}"
    return found


def stretch(m: torch.Tensor) -> torch.Tensor:
    return (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="preset or Hub repository with weights")
    group.add_argument("--weights", help="a folder written by save_pretrained")
    group.add_argument("--random", metavar="PRESET", help="a randomly initialised preset")
    group.add_argument("--tiny", action="store_true", help="a tiny randomly initialised model")
    parser.add_argument(
        "--palette", action="store_true", help="save with 256 colours (smaller, e.g. for docs)"
    )
    args = parser.parse_args()
    inputs = inputs_of(args)
    try:
        # Before any work: the picture must not replace the photo or an existing file.
        check_output_file(args.out, inputs, force=args.force, option="--out")
    except (OSError, ValueError) as err:
        parser.error(str(err))

    model = load(args)
    transform = t2t_vit.EvalTransform.from_model(model)
    crop = transform.resize_crop(args.image)
    maps = t2t_vit.record_attention_maps(model, transform.to_tensor(crop)[None])
    mask = maps.rollout()[0]
    print(f"blocks: {len(maps.blocks)} x {tuple(maps.blocks[0].shape)} on a {maps.grid} grid")
    print(f"rollout: {tuple(mask.shape)} in [{mask.min():.3f}, {mask.max():.3f}]")
    panels = [crop, t2t_vit.overlay_map(crop, stretch(mask))]
    for k, (attn, grid) in enumerate(zip(maps.t2t, maps.t2t_grids, strict=True), start=1):
        print(f"T2T layer {k}: {tuple(attn.shape)} on a {grid} grid")
    if maps.t2t:
        panels.append(t2t_vit.overlay_map(crop, stretch(maps.t2t_map(1)[0])))
    width, height = crop.size
    sheet = Image.new("RGB", (len(panels) * width + (len(panels) - 1) * 4, height), "white")
    for k, panel in enumerate(panels):
        sheet.paste(panel, (k * (width + 4), 0))
    if args.palette:
        sheet = sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    write_file(
        args.out,
        lambda path: sheet.save(path, optimize=True),
        inputs,
        force=args.force,
        option="--out",
    )
    print(f"wrote {args.out} ({len(panels)} panels of {width}x{height})")


if __name__ == "__main__":
    main()
