"""Accuracy on an ImageFolder tree (`root/<class>/<image>`), as the official evaluation reads
ImageNet val."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .preprocess import EvalTransform, load_image

__all__ = ["IMG_EXTENSIONS", "EvalResult", "ImageFolder", "evaluate"]

#: File endings read as images (case-insensitive), those of torchvision's ImageFolder.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolder(Dataset[tuple[Tensor, int]]):
    """Images under `root/<class>/`, classes numbered in sorted folder-name order.

    Items are `(transform(image) (C, H, W), class index)`. `limit` keeps that many
    images spread evenly over the sorted list, so every class stays represented.
    Raises `FileNotFoundError` for a missing root and `ValueError` for a root
    without class folders or with a class folder holding no image.
    """

    def __init__(
        self, root: str | os.PathLike[str], transform: EvalTransform, limit: int | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"evaluation folder not found: {str(self.root)!r}")
        self.classes = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not self.classes:
            raise ValueError(
                f"no class folders in {str(self.root)!r}; expected an ImageFolder tree "
                f"{self.root}/<class>/<image> with one folder per class"
            )
        samples: list[tuple[Path, int]] = []
        empty = []
        for index, name in enumerate(self.classes):
            files = sorted(
                p
                for p in (self.root / name).rglob("*")
                if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
            )
            if not files:
                empty.append(name)
            samples += [(p, index) for p in files]
        if empty:
            raise ValueError(
                f"class folders without images ({', '.join(IMG_EXTENSIONS)}) in "
                f"{str(self.root)!r}: {', '.join(empty)}"
            )
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit must be at least 1, got {limit}")
            if limit < len(samples):
                samples = [samples[i * len(samples) // limit] for i in range(limit)]
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, target = self.samples[index]
        return self.transform(load_image(path)), target


@dataclass
class EvalResult:
    """Top-1 and top-5 accuracy (fractions), mean cross-entropy, throughput."""

    top1: float
    top5: float
    loss: float
    images: int
    seconds: float
    num_classes: int

    @property
    def images_per_second(self) -> float:
        """Images evaluated per second of wall time, loading included."""
        return self.images / self.seconds if self.seconds > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "loss": self.loss,
            "images": self.images,
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
        }


def evaluate(
    model: nn.Module,
    root: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    workers: int = 0,
    limit: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate `model` on an ImageFolder tree with its own preprocessing.

    The class folders, sorted, must be as many as the model's classes. Runs in
    eval mode under `torch.inference_mode()` (training flag restored); top-5 is
    top-min(5, classes). `progress` shows a tqdm bar when tqdm is installed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    dataset = ImageFolder(root, EvalTransform.from_model(model), limit=limit)
    num_classes = int(getattr(model, "num_classes", len(dataset.classes)))
    if len(dataset.classes) != num_classes:
        raise ValueError(
            f"{str(dataset.root)!r} has {len(dataset.classes)} class folders but the model "
            f"has {num_classes} classes"
        )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    batches: Any = loader
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            batches = tqdm(loader, desc="evaluate", unit="batch", total=len(loader))
    param = next(model.parameters())
    k = min(5, num_classes)
    correct1 = correct5 = 0
    loss_sum = 0.0
    seen = 0
    was_training = model.training
    start = time.perf_counter()
    try:
        model.eval()
        with torch.inference_mode():
            for images, targets in batches:
                logits = model(images.to(device=param.device, dtype=param.dtype)).float()
                targets = targets.to(logits.device)
                loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
                top = logits.topk(k, dim=-1).indices
                hits = top == targets[:, None]
                correct1 += int(hits[:, 0].sum())
                correct5 += int(hits.any(dim=-1).sum())
                seen += int(targets.numel())
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    return EvalResult(
        top1=correct1 / seen,
        top5=correct5 / seen,
        loss=loss_sum / seen,
        images=seen,
        seconds=seconds,
        num_classes=num_classes,
    )
