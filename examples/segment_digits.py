"""Per-pixel segmentation with a T2T-ViT backbone (`features_only`), beside the patch stem.

Each 48x80 canvas holds four of scikit-learn's 8x8 digits (bundled, no download),
scaled to 16x16 and placed at random positions without overlap; every pixel is
labelled background (0) or its digit's class (1 + digit) where the digit has ink.
Training canvases use 75% of the digit images, held-out canvases the other 25%.

Three segmenters train with the same optimizer, schedule, epochs, batches and seed:

* `t2t`: the paper's T2T stem (7/4/2, 3/2/1, 3/2/1). `features_only=True` returns
  its own pyramid: the two T2T layers' maps (strides 4 and 8) and the last block
  (stride 16), fed straight to the head.
* `t2t-neck`: the same backbone; ViTDet's `SimpleFeaturePyramid` makes strides 4,
  8 and 16 from the last block and the stem maps are added to them (1x1 projection).
* `patch`: the same backbone with `tokens_type='patch'` (one 16x16 convolution),
  which has only the stride-16 map; the neck alone makes strides 4, 8 and 16.

The head is a light FPN: each map projected to `--head-dim` channels (1x1), the
coarser map upsampled and added (top-down), a 3x3 convolution on the stride-4 sum,
a per-pixel classifier, logits upsampled to the canvas. One `RESULT` line per
segmenter gives the mIoU over the 11 classes on the held-out canvases, the pixel
accuracy, the mean training loss of the first and last steps and the wall time.

    python examples/segment_digits.py                    # the run of docs/dense_prediction.md
    python examples/segment_digits.py --epochs 2 --train-canvases 96 --test-canvases 24  # CI
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import t2t_vit
from t2t_vit.output import check_output_file, write_file

NUM_CLASSES = 11  # background + 10 digits
VARIANTS = ("t2t", "t2t-neck", "patch")


def load_digit_pools(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The digits as `(N, 8, 8)` intensities in [0, 1] and labels, split 75/25 stratified."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - the dev extra has it
        raise SystemExit(
            'this example needs scikit-learn: pip install ".[examples]" (or scikit-learn)'
        ) from err
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(
        list(range(len(labels))), test_size=0.25, random_state=seed, stratify=digits.target
    )
    return images[train], labels[train], images[test], labels[test]


def make_canvases(
    images: Tensor,
    labels: Tensor,
    count: int,
    size: tuple[int, int],
    per_canvas: int,
    seed: int,
) -> tuple[Tensor, Tensor]:
    """`count` canvases `(count, 1, H, W)` in [-1, 1] and their masks `(count, H, W)`.

    Digits are scaled x2 (16x16), placed without overlap, and their ink (intensity
    above 0.2) is labelled `1 + digit`; a little noise covers the whole canvas.
    """
    g = torch.Generator().manual_seed(seed)
    height, width = size
    scaled = F.interpolate(images[:, None], scale_factor=2, mode="bilinear", align_corners=False)
    scaled = scaled[:, 0].clamp(0, 1)
    side = scaled.shape[-1]
    canvases = torch.zeros(count, height, width)
    masks = torch.zeros(count, height, width, dtype=torch.long)
    for n in range(count):
        placed: list[tuple[int, int]] = []
        while len(placed) < per_canvas:
            top = int(torch.randint(0, height - side + 1, (1,), generator=g))
            left = int(torch.randint(0, width - side + 1, (1,), generator=g))
            if any(abs(top - t) < side and abs(left - lf) < side for t, lf in placed):
                continue
            placed.append((top, left))
            i = int(torch.randint(0, len(labels), (1,), generator=g))
            digit = scaled[i]
            window = (slice(top, top + side), slice(left, left + side))
            canvases[n][window] = digit
            masks[n][window] = torch.where(digit > 0.2, labels[i] + 1, 0)
    canvases += 0.05 * torch.randn(canvases.shape, generator=g)
    return (canvases * 2 - 1)[:, None], masks


class FPNHead(nn.Module):
    """A light FPN-style segmentation head over maps of increasing stride."""

    def __init__(self, in_channels: list[int], dim: int, num_classes: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.smooth = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(1, dim), nn.GELU()
        )
        self.classify = nn.Conv2d(dim, num_classes, 1)

    def forward(self, maps: list[Tensor], size: tuple[int, int]) -> Tensor:
        x = self.lateral[-1](maps[-1])
        for lateral, skip in zip(reversed(self.lateral[:-1]), reversed(maps[:-1]), strict=True):
            # Resize to the finer map's own grid: strides need not divide the input.
            up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = lateral(skip) + up
        logits = self.classify(self.smooth(x))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class StemFusedPyramid(nn.Module):
    """ViTDet's neck on the backbone's last map (strides 4, 8, 16); each stem map is
    projected (1x1) and added to the neck's map of its stride, on the stem's grid.
    With no stem level (the patch stem) it is the neck alone."""

    def __init__(self, info: t2t_vit.FeatureInfo, dim: int) -> None:
        super().__init__()
        # Without an index, feature_info answers for the returned maps (timm's meaning).
        channels, reductions = info.channels(), info.reduction()
        self.neck = t2t_vit.SimpleFeaturePyramid(channels[-1], dim, scale_factors=(4.0, 2.0, 1.0))
        strides = self.neck.feature_info.reduction()
        self.where = [strides.index(r) for r in reductions[:-1]]
        self.project = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in channels[:-1])

    def forward(self, maps: list[Tensor]) -> list[Tensor]:
        pyramid: list[Tensor] = self.neck(maps[-1])
        for stem_map, level, project in zip(maps[:-1], self.where, self.project, strict=True):
            up = F.interpolate(pyramid[level], size=stem_map.shape[-2:], mode="bilinear")
            pyramid[level] = up + project(stem_map)
        return pyramid


class Segmenter(nn.Module):
    """Backbone (`features_only`), an optional neck, and the FPN head."""

    def __init__(self, variant: str, args: argparse.Namespace) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        self.backbone = t2t_vit.create_model(
            "t2t-vit-7",
            features_only=True,
            tokens_type="patch" if variant == "patch" else args.tokens_type,
            in_chans=1,
            img_size=tuple(args.size),
            embed_dim=args.embed_dim,
            depth=args.depth,
            num_heads=args.num_heads,
            mlp_ratio=2.0,
            token_dim=args.token_dim,
        )
        info = self.backbone.feature_info
        self.neck: StemFusedPyramid | None = None
        channels = info.channels()
        if variant != "t2t":
            self.neck = StemFusedPyramid(info, args.head_dim)
            channels = self.neck.neck.feature_info.channels()
        self.head = FPNHead(channels, args.head_dim, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        maps = self.backbone(x)
        if self.neck is not None:
            maps = self.neck(maps)
        out: Tensor = self.head(maps, (x.shape[-2], x.shape[-1]))
        return out


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """mIoU over the 11 classes and pixel accuracy, from one confusion matrix."""
    model.eval()
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for i in range(0, len(x), 64):
        pred = model(x[i : i + 64]).argmax(1)
        index = y[i : i + 64].flatten() * NUM_CLASSES + pred.flatten()
        confusion += torch.bincount(index, minlength=NUM_CLASSES**2).view(NUM_CLASSES, -1)
    tp = confusion.diag().double()
    union = confusion.sum(0).double() + confusion.sum(1).double() - tp
    iou = tp / union.clamp(min=1)
    return float(iou[union > 0].mean()), float(tp.sum() / confusion.sum())


def train(variant: str, data: tuple[Tensor, ...], args: argparse.Namespace) -> dict[str, Any]:
    """Train one segmenter from the seed; return its held-out figures and wall time."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = Segmenter(variant, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    total = args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: t2t_vit.cosine_with_warmup(s, total, min(total // 4, steps_per_epoch)),
    )
    losses: list[float] = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        if args.verbose:
            miou, acc = evaluate(model, x_test, y_test)
            print(
                f"  {variant} epoch {epoch + 1}: loss {losses[-1]:.4f}, held-out mIoU "
                f"{miou:.4f}, pixel accuracy {acc:.4f}, {time.perf_counter() - start:.1f}s",
                flush=True,
            )
    miou, acc = evaluate(model, x_test, y_test)
    window = max(1, min(10, len(losses) // 4))
    return {
        "variant": variant,
        "stem": model.backbone.config["tokens_type"],
        "levels": model.backbone.feature_info.reduction(),
        "miou": miou,
        "pixel_accuracy": acc,
        "loss_first": sum(losses[:window]) / window,
        "loss_last": sum(losses[-window:]) / window,
        "steps": len(losses),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "params": sum(p.numel() for p in model.parameters()),
        "test_canvases": len(x_test),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-canvases", type=int, default=2048)
    parser.add_argument("--test-canvases", type=int, default=512)
    parser.add_argument("--size", type=int, nargs=2, default=[48, 80], metavar=("H", "W"))
    parser.add_argument("--digits-per-canvas", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=2)
    parser.add_argument("--token-dim", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument(
        "--tokens-type", default="transformer", choices=["transformer", "performer"]
    )
    # One thread: on a shared machine, two OpenMP threads spend most of their time
    # waiting for each other (measured: 6x the wall time of one thread under load).
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")
    parser.add_argument("--verbose", action="store_true", help="print held-out mIoU per epoch")
    args = parser.parse_args(argv)
    if args.json:
        try:
            # Before training: the results must not replace a file of the user's.
            check_output_file(args.json, force=args.force, option="--json")
        except (OSError, ValueError) as err:
            parser.error(str(err))
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    size = (args.size[0], args.size[1])
    train_images, train_labels, test_images, test_labels = load_digit_pools(args.seed)
    x_train, y_train = make_canvases(
        train_images, train_labels, args.train_canvases, size, args.digits_per_canvas, args.seed
    )
    x_test, y_test = make_canvases(
        test_images, test_labels, args.test_canvases, size, args.digits_per_canvas, args.seed + 1
    )
    data = (x_train, y_train, x_test, y_test)
    results = []
    for variant in args.variants.split(","):
        result = train(variant, data, args)
        results.append(result)
        print(
            f"RESULT variant={variant} stem={result['stem']} miou={result['miou']:.4f} "
            f"pixel_accuracy={result['pixel_accuracy']:.4f} "
            f"loss_first={result['loss_first']:.4f} loss_last={result['loss_last']:.4f} "
            f"seconds={result['seconds']:.1f} cpu_seconds={result['cpu_seconds']:.1f} "
            f"params={result['params']} steps={result['steps']} epochs={args.epochs} "
            f"threads={args.threads} seed={args.seed}",
            flush=True,
        )
    if args.json:
        text = json.dumps(results, indent=2)
        write_file(args.json, text, force=args.force, option="--json")
    return results


if __name__ == "__main__":
    main()
