"""`t2t-vit convert`: an original checkpoint to a Hub folder ready to upload."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `convert` subcommand."""
    parser = subcommands.add_parser(
        "convert",
        help="convert an official or mmpretrain checkpoint to model.safetensors + config.json",
        description=(
            "Read an original T2T-ViT checkpoint (.pth / .pth.tar of yitu-opensource/T2T-ViT "
            "or OpenMMLab mmpretrain) without running code from it, check every key and "
            "shape, and write model.safetensors, config.json and a model card README.md."
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="the original checkpoint file")
    parser.add_argument(
        "out_dir",
        metavar="OUT_DIR",
        help=("folder to write: new, empty, or written by an earlier convert (else --force)"),
    )
    parser.add_argument(
        "--source",
        choices=("official", "mmpretrain", "auto"),
        default="auto",
        help="checkpoint layout (default: auto, from the key names)",
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        help=(
            "registry weights (t2t-vit-14.cifar10), a preset (t2t-vit-14) or a JSON file of "
            "T2TViT arguments; default: the registry entry of the file name, else the preset "
            "inferred from the shapes"
        ),
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="unpickle with full pickle (can run code from the file); only for files you trust",
    )
    parser.add_argument(
        "--ignore-keys",
        metavar="PREFIX",
        action="append",
        default=[],
        help="drop checkpoint keys starting with PREFIX (repeatable), e.g. aux_head.",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into OUT_DIR even if it holds files that an earlier convert did not write",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert, then print what was decided and the sha256 of each written file."""
    from ..weights.checkpoint import convert_checkpoint

    result = convert_checkpoint(
        args.checkpoint,
        args.out_dir,
        source=args.source,
        model=args.model,
        trust_checkpoint=args.trust_checkpoint,
        ignore_keys=args.ignore_keys,
        force=args.force,
    )
    for note in result.notes:
        print(f"note: {note}")
    key = result.state_dict_key or "the whole file"
    print(f"read {result.source} weights from {key}; model: {result.model_name or 'custom'}")
    for name, digest in result.files.items():
        print(f"{digest}  {result.out_dir / name}")
    return 0
