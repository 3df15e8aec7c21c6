"""`t2t-vit publish`: the registry's original weights, converted, to a Hub organisation."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `publish` subcommand."""
    parser = subcommands.add_parser(
        "publish",
        help="convert the released checkpoints and upload them to a Hub organisation",
        description=(
            "For each weight name: download the original release file (as from_pretrained "
            "does, honouring T2T_VIT_RELEASE_MIRROR), convert it, write OUT/<name>/ with "
            "config.json, model.safetensors and a model card, check that it loads, and "
            "upload it to ORG/<name>. Log in first (hf auth login, or HF_TOKEN)."
        ),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="weights (default: all)")
    parser.add_argument("--org", required=True, help="Hub organisation (or user) to upload to")
    parser.add_argument(
        "--out", default="t2t-vit-publish", metavar="DIR", help="where to write the folders"
    )
    parser.add_argument("--dry-run", action="store_true", help="write the folders, upload nothing")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write OUT/<name>/ even if it holds files that an earlier publish did not write",
    )
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Publish, printing one line per weight."""
    from ..weights.publish import publish

    for done in publish(
        args.org,
        args.names,
        out_dir=args.out,
        dry_run=args.dry_run,
        token=args.token,
        force=args.force,
    ):
        what = "dry run, not uploaded" if args.dry_run else f"uploaded to {done.repo_id}"
        print(f"{done.name}: {done.folder} (original sha256 {done.original_sha256}); {what}")
    return 0
