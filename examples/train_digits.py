"""Train a small T2T-ViT from scratch on scikit-learn's digits, beside the patch stem.

The digits are 8x8 grey images (1,797 of them, bundled with scikit-learn, no
download). The paper's stem (7/4/2, 3/2/1, 3/2/1) shrinks 224 pixels by 16 and
would leave an 8x8 image a single token, so this script uses a stem sized for
small images, at the native 8x8 resolution:

* soft split 1: 3x3 kernel, stride 1, padding 1 -> an 8x8 grid of 9-dim tokens,
  re-structured by a T2T transformer layer (every pixel sees its neighbourhood);
* soft split 2: 3x3 kernel, stride 2, padding 1 -> a 4x4 grid, projected to
  `embed_dim`.

The comparison model is the same backbone with `tokens_type='patch'` on the same
layers: one 2x2 convolution with stride 2, also a 4x4 grid. Both train with the
same optimizer, schedule, epochs, batches and seed; test accuracy and wall time
are printed for each, one `RESULT` line per stem.

    python examples/train_digits.py               # the full run (see docs/training.md)
    python examples/train_digits.py --epochs 3    # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F

from t2t_vit import T2TViT, cosine_with_warmup, param_groups_layer_decay
from t2t_vit.output import check_output_file, write_file

#: (kernel, stride, padding) per soft split, sized for 8x8 inputs.
SMALL_STEM = ((3, 1, 1), (3, 2, 1))


def load_digits_split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits as `(N, 1, 8, 8)` tensors in [-1, 1], split 75/25 stratified."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - the dev extra has it
        raise SystemExit(
            'this example needs scikit-learn: pip install ".[examples]" (or scikit-learn)'
        ) from err
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    y = torch.tensor(digits.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        list(range(len(y))), test_size=0.25, random_state=seed, stratify=digits.target
    )
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


def build(tokens_type: str, args: argparse.Namespace) -> T2TViT:
    """The shared backbone with the given stem."""
    return T2TViT(
        img_size=8,
        in_chans=1,
        num_classes=10,
        tokens_type=tokens_type,
        t2t_layers=SMALL_STEM,
        embed_dim=args.embed_dim,
        depth=args.depth,
        num_heads=args.num_heads,
        mlp_ratio=2.0,
        token_dim=args.token_dim,
        drop_path_rate=args.drop_path,
    )


@torch.no_grad()
def accuracy(model: T2TViT, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + 256]).argmax(-1) == y[i : i + 256]).sum())
        for i in range(0, len(y), 256)
    )
    return correct / len(y)


def train(tokens_type: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model from the same seed; return its test accuracy and wall time."""
    x_train, y_train, x_test, y_test = load_digits_split(args.seed)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = build(tokens_type, args)
    optimizer = torch.optim.AdamW(
        param_groups_layer_decay(model, weight_decay=0.05, layer_decay=1.0, lr=args.lr)
    )
    steps_per_epoch = (len(y_train) + args.batch_size - 1) // args.batch_size
    total = args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total, min(total, steps_per_epoch))
    )
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        running = 0.0
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            loss = F.cross_entropy(
                model(x_train[batch]), y_train[batch], label_smoothing=args.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(batch)
        if args.verbose:
            print(
                f"  {tokens_type} epoch {epoch + 1}: train loss {running / len(order):.4f}, "
                f"test accuracy {accuracy(model, x_test, y_test):.4f}, "
                f"{time.perf_counter() - start:.1f}s",
                flush=True,
            )
    acc = accuracy(model, x_test, y_test)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    params = sum(p.numel() for p in model.parameters())
    return {
        "stem": tokens_type,
        "accuracy": acc,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "params": params,
        "test_images": len(y_test),
        "epochs": args.epochs,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--drop-path", type=float, default=0.0)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--token-dim", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stems", default="transformer,patch", help="comma-separated tokens_type values to train"
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")
    parser.add_argument(
        "--verbose", action="store_true", help="print loss and test accuracy per epoch"
    )
    args = parser.parse_args(argv)
    if args.json:
        try:
            # Before training: the results must not replace a file of the user's.
            check_output_file(args.json, force=args.force, option="--json")
        except (OSError, ValueError) as err:
            parser.error(str(err))
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    results = []
    for stem in args.stems.split(","):
        result = train(stem, args)
        results.append(result)
        print(
            f"RESULT stem={stem} accuracy={result['accuracy']:.4f} "
            f"seconds={result['seconds']:.1f} cpu_seconds={result['cpu_seconds']:.1f} "
            f"params={result['params']} "
            f"epochs={args.epochs} threads={args.threads}",
            flush=True,
        )
    if args.json:
        text = json.dumps(results, indent=2)
        write_file(args.json, text, force=args.force, option="--json")
    return results


if __name__ == "__main__":
    main()
