"""Top-k classification of images with a model's own preprocessing and labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..models.features import T2TFeatures
from .labels import resolve_labels
from .preprocess import EvalTransform, ImageInput, _as_list, _check_count, _transform_batch

__all__ = ["Prediction", "predict"]


class Prediction(NamedTuple):
    """One ranked class: `(class_index, label, probability)`."""

    class_index: int
    label: str
    probability: float


def check_classifier(signature: str, model: object, order: str) -> None:
    """Raise for anything but a classifier as the model of `signature` (`predict(model,
    images)`), saying what it takes; `order` says where the other argument goes."""
    caller = signature.split("(")[0]
    if not isinstance(model, nn.Module):
        shown = repr(model) if isinstance(model, (str, os.PathLike)) else ""
        raise TypeError(
            f"{signature} takes a model (nn.Module) first, got "
            f"{type(model).__name__} {shown}".rstrip()
            + f"; {order}"
        )
    if isinstance(model, T2TFeatures):
        raise TypeError(
            f"{caller} needs a classifier; got a T2TFeatures (features_only=True), which "
            "returns feature maps: load the model without features_only"
        )
    if getattr(model, "num_classes", None) == 0:
        raise ValueError(
            f"{caller} needs a classifier; the model has num_classes=0 (no head): give it a "
            "head with model.reset_classifier(n)"
        )


def predict(
    model: nn.Module,
    images: ImageInput | Sequence[ImageInput],
    top_k: int = 5,
    *,
    batch_size: int = 32,
) -> list[list[Prediction]]:
    """The `top_k` classes of each image, most probable first.

    Images are preprocessed with the model's pretrained config and named with its
    labels (`resolve_labels`). The model runs in eval mode under
    `torch.inference_mode()` on its own device and dtype; its training flag is
    restored afterwards. `top_k` is capped at the number of classes.
    """
    check_classifier(
        "predict(model, images)", model, "the images come second: predict(model, images)"
    )
    _check_count("top_k", top_k)
    _check_count("batch_size", batch_size)
    items = _as_list(images)
    transform = EvalTransform.from_model(model)
    labels = resolve_labels(model)
    param = next(model.parameters())
    k = min(top_k, len(labels))
    results: list[list[Prediction]] = []
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                batch = _transform_batch(transform, chunk, first=start, several=len(items) > 1)
                logits = model(batch.to(device=param.device, dtype=param.dtype))
                probs = logits.float().softmax(dim=-1)
                values, indices = probs.topk(k, dim=-1)
                for vals, idxs in zip(values.tolist(), indices.tolist(), strict=True):
                    results.append(
                        [Prediction(i, labels[i], p) for i, p in zip(idxs, vals, strict=True)]
                    )
    finally:
        model.train(was_training)
    return results
