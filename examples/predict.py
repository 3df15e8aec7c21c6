"""Classify images with a T2T-ViT: its own preprocessing, its own class names.

    python examples/predict.py IMAGE [IMAGE ...] --model t2t-vit-t-14   # published weights
    python examples/predict.py IMAGE --weights DIR                      # a save_pretrained folder
    python examples/predict.py IMAGE --tiny                             # tiny random model, offline

A random model's answers are meaningless; `--tiny` only shows the mechanics.
"""

from __future__ import annotations

import argparse

import torch

import t2t_vit


def load(args: argparse.Namespace) -> t2t_vit.T2TViT:
    if args.tiny:
        torch.manual_seed(0)
        return t2t_vit.T2TViT(
            img_size=64, tokens_type="transformer", embed_dim=64, depth=2, num_heads=2,
            token_dim=16, num_classes=1000,
        )  # fmt: skip
    if args.weights:
        return t2t_vit.from_pretrained(args.weights)
    return t2t_vit.from_pretrained(args.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="preset or Hub repository with weights")
    group.add_argument("--weights", help="a folder written by save_pretrained")
    group.add_argument("--tiny", action="store_true", help="a tiny randomly initialised model")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()

    model = load(args)
    print(f"preprocessing: {t2t_vit.EvalTransform.from_model(model)}")
    for image, ranked in zip(
        args.images, t2t_vit.predict(model, args.images, args.top_k), strict=True
    ):
        print(image)
        for index, label, probability in ranked:
            # The lines `t2t-vit predict` prints: percent, class index, name.
            print(f"  {probability:7.2%}  {index:>5}  {label}")


if __name__ == "__main__":
    main()
