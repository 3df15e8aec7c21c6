"""Class names shipped with the package: ImageNet-1k, CIFAR-10 and CIFAR-100."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.wrappers import unwrap_model
from ..weights.label_sets import LABEL_SETS, imagenet_wnids, load_labels
from ..weights.pretrained_cfg import check_labels, resolve_pretrained_cfg

__all__ = ["LABEL_SETS", "imagenet_wnids", "load_labels", "resolve_labels"]


def resolve_labels(model_or_cfg: nn.Module | dict[str, Any]) -> list[str]:
    """The class names for a model's outputs, from its pretrained config's `labels`.

    `labels` is a label-set name or an explicit list. A model without them names its
    classes by index, `'0'`, `'1'`, ... (as `default_pretrained_cfg` does). Labels that do
    not fit the model's `num_classes` (a list of another length, an unknown label-set name)
    raise `ValueError`: they are never replaced silently.
    """
    if isinstance(model_or_cfg, dict):
        spec = model_or_cfg.get("labels")
        if spec is None:
            raise ValueError("the config has no 'labels' and no model gives the class count")
        check_labels(spec, None)
    else:
        model_or_cfg = unwrap_model(model_or_cfg, "resolve_labels")
        spec = resolve_pretrained_cfg(model_or_cfg)["labels"]
        num_classes = getattr(model_or_cfg, "num_classes", None)
        check_labels(spec, num_classes if isinstance(num_classes, int) else None)
    if isinstance(spec, str):
        return load_labels(spec)
    return [str(label) for label in spec]
