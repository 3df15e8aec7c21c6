"""Accuracy on an ImageFolder tree (`root/<class>/<image>`), as the official evaluation reads
ImageNet val."""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ..models.wrappers import unwrap_model
from .predict import check_classifier
from .preprocess import EvalTransform, _check_count

__all__ = ["IMG_EXTENSIONS", "EvalResult", "ImageFolder", "evaluate"]

#: File endings read as images (case-insensitive), those of torchvision's ImageFolder.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _image_files(
    folder: str | os.PathLike[str], reserved: frozenset[str] = frozenset()
) -> list[Path]:
    """The image files under `folder` (recursively, endings in `IMG_EXTENSIONS`), sorted.

    Hidden files and folders (names starting with `.`, such as macOS `._*` files) are
    skipped: they are no images even where their ending says so. Symbolic links to folders
    are followed, as torchvision's ImageFolder does, each real folder once; a link up the
    tree (to `folder` or a folder above it) is not followed, nor one into a folder of
    `reserved` (real paths: the other classes of an evaluation tree).
    """
    top = os.path.realpath(folder)
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        above = real != top and os.path.commonpath([real, top]) == real
        if real in seen or real in reserved or above:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".")
            and os.path.splitext(name)[1].lower() in IMG_EXTENSIONS
            and os.path.isfile(os.path.join(dirpath, name))
        ]
    return sorted(found)


def evaluate_file_message(path: str | os.PathLike[str]) -> str:
    """What to say when a file is given where evaluation takes a folder."""
    return (
        f"{os.fspath(path)!r} is a file; evaluate takes a folder DATA_DIR/<class>/<image> (for "
        "single images use t2t-vit predict)"
    )


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
        """List the images; they are read when indexed.

        Args:
            root: The tree's root folder, holding one folder per class.
            transform: The preprocessing applied to each image.
            limit: Keep this many images, spread evenly over the sorted list; `None`
                keeps all.
        """
        self.root = Path(root)
        if self.root.is_file():
            raise ValueError(evaluate_file_message(root))
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
        # Each class reads its own folder only: a link into another class folder or up
        # the tree would count that class's images twice.
        real = {name: os.path.realpath(self.root / name) for name in self.classes}
        others = frozenset(real.values()) | {os.path.realpath(self.root)}
        for index, name in enumerate(self.classes):
            files = _image_files(self.root / name, reserved=others - {real[name]})
            if not files:
                empty.append(name)
            samples += [(p, index) for p in files]
        if empty:
            raise ValueError(
                f"class folders without images ({', '.join(IMG_EXTENSIONS)}) in "
                f"{str(self.root)!r}: {', '.join(empty)}"
            )
        if limit is not None:
            _check_count("limit", limit)
            if limit < len(samples):
                samples = [samples[i * len(samples) // limit] for i in range(limit)]
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, target = self.samples[index]
        # The path, not the opened image: an error then names the file.
        return self.transform(path), target


class _Failure(NamedTuple):
    """An error loading an item, returned in place of the item."""

    error: Exception


class _ReturnErrors(Dataset[Any]):
    """The items of `dataset`, with a loading error returned as a `_Failure`.

    A DataLoader worker re-raises an error as a report of the worker's traceback;
    returned instead, the same exception can be raised in the main process, so that
    any number of workers gives the one line that no workers give.
    """

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except (OSError, ValueError, TypeError, RuntimeError) as err:
            return _Failure(err)


def _collate(items: list[Any]) -> Any:
    for item in items:
        if isinstance(item, _Failure):
            return item
    return default_collate(items)


@dataclass
class EvalResult:
    """Top-1 and top-k accuracy (fractions), mean cross-entropy, throughput.

    Attributes:
        top1: Fraction of images whose most probable class is right.
        top_k: The k of `top_k_accuracy`: the k asked for, capped at the number of
            classes (2 for a 2-class model).
        top_k_accuracy: Fraction of images whose class is among the `top_k` most probable.
        loss: Mean cross-entropy of the logits.
        images: Images evaluated.
        seconds: Wall time, image loading included.
        num_classes: The model's classes (and the tree's class folders).
    """

    top1: float
    top_k: int
    top_k_accuracy: float
    loss: float
    images: int
    seconds: float
    num_classes: int

    @property
    def images_per_second(self) -> float:
        """Images evaluated per second of wall time, loading included."""
        return self.images / self.seconds if self.seconds > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (the `--json` output of `t2t-vit evaluate`)."""
        return {
            "top1": self.top1,
            "top_k": self.top_k,
            "top_k_accuracy": self.top_k_accuracy,
            "loss": self.loss,
            "images": self.images,
            "num_classes": self.num_classes,
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
        }


def class_indices(model: nn.Module, folders: list[str], root: str) -> dict[str, int]:
    """The model's class index of each class folder, matched by name (R4).

    Folders named after the model's labels (`resolve_labels`), or, for ImageNet-1k labels,
    after the WordNet ids (`n01440764`), take the index of their name: any subset of the
    classes, in any order. Otherwise, as many folders as classes are numbered in sorted
    order, with a warning when the model's labels are names the folders could have used.
    Raises `ValueError` for folders of which only some are labels, and for a count that
    fits neither way.
    """
    from .labels import imagenet_wnids, resolve_labels

    num_classes = int(getattr(unwrap_model(model, "evaluate"), "num_classes", len(folders)))
    labels = resolve_labels(model) if num_classes > 0 else []
    cfg_labels = (getattr(model, "pretrained_cfg", None) or {}).get("labels")
    names: dict[str, list[str]] = {"the model's labels": labels}
    if isinstance(cfg_labels, str) and cfg_labels.strip().lower() == "imagenet-1k":
        names["the ImageNet-1k WordNet ids"] = imagenet_wnids()
    for what, known in names.items():
        index = {name: i for i, name in enumerate(known)}
        matched = [f for f in folders if f in index]
        if len(matched) == len(folders):
            return {f: index[f] for f in folders}
        if matched:
            unknown = [f for f in folders if f not in index]
            shown = ", ".join(repr(f) for f in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ValueError(
                f"{root!r}: {len(matched)} of {len(folders)} class folders are named after "
                f"{what}, but {shown}{more} are not; name every class folder after the "
                "model's labels, or give as many folders as the model has classes"
            )
    if len(folders) != num_classes:
        raise ValueError(
            f"{root!r} has {len(folders)} class folders but the model has {num_classes} "
            "classes, and the folders are not named after its labels"
        )
    if labels != [str(i) for i in range(num_classes)]:
        pairs = ", ".join(f"{f!r} -> {labels[i]!r}" for i, f in enumerate(folders[:3]))
        warnings.warn(
            f"{root!r}: the class folders are not named after the model's labels; they are "
            f"numbered in sorted folder-name order ({pairs}, ...): name them after the "
            "labels to match them by name",
            UserWarning,
            stacklevel=3,
        )
    return {f: i for i, f in enumerate(folders)}


def evaluate(
    model: nn.Module,
    root: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    workers: int = 0,
    limit: int | None = None,
    progress: bool = False,
    top_k: int = 5,
) -> EvalResult:
    """Evaluate `model` on an ImageFolder tree with its own preprocessing.

    Class folders named after the model's labels (or, for ImageNet-1k, its WordNet ids)
    are matched by name, any subset of them; other names are numbered in sorted order, as
    many folders as classes, with a warning (see `class_indices`). Runs in
    eval mode under `torch.inference_mode()` (training flag restored); the top-k
    accuracy is top-min(`top_k`, classes). `progress` shows a tqdm bar when tqdm is
    installed. An image that cannot be read raises the same one-line error, naming
    the file, with any number of `workers`.
    """
    check_classifier(
        "evaluate(model, root)", model, "the folder comes second: evaluate(model, root)"
    )
    _check_count("top_k", top_k)
    _check_count("batch_size", batch_size)
    _check_count("workers", workers, minimum=0)
    dataset = ImageFolder(root, EvalTransform.from_model(model), limit=limit)
    num_classes = int(getattr(unwrap_model(model, "evaluate"), "num_classes", len(dataset.classes)))
    order = class_indices(model, dataset.classes, str(dataset.root))
    dataset.samples = [(path, order[dataset.classes[i]]) for path, i in dataset.samples]
    loader = DataLoader(
        _ReturnErrors(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )
    batches: Any = loader
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            batches = tqdm(loader, desc="evaluate", unit="batch", total=len(loader))
    param = next(model.parameters())
    k = min(top_k, num_classes)
    correct1 = correct_k = 0
    loss_sum = 0.0
    seen = 0
    was_training = model.training
    start = time.perf_counter()
    try:
        model.eval()
        with torch.inference_mode():
            for batch in batches:
                if isinstance(batch, _Failure):
                    raise batch.error
                images, targets = batch
                logits = model(images.to(device=param.device, dtype=param.dtype)).float()
                targets = targets.to(logits.device)
                loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
                top = logits.topk(k, dim=-1).indices
                hits = top == targets[:, None]
                correct1 += int(hits[:, 0].sum())
                correct_k += int(hits.any(dim=-1).sum())
                seen += int(targets.numel())
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    return EvalResult(
        top1=correct1 / seen,
        top_k=k,
        top_k_accuracy=correct_k / seen,
        loss=loss_sum / seen,
        images=seen,
        seconds=seconds,
        num_classes=num_classes,
    )
