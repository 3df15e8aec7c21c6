"""The class names of a model's head as its `pretrained_cfg` keeps them (`labels`: a label-set
name or a list), and what a new head does to them."""

from __future__ import annotations

from typing import Any

__all__ = ["LABEL_SET_SIZES", "for_new_head", "index_labels", "label_count"]

#: Number of classes of each named label set (`t2t_vit.weights.label_sets.LABEL_SETS`).
LABEL_SET_SIZES: dict[str, int] = {"imagenet-1k": 1000, "cifar-10": 10, "cifar-100": 100}


def label_count(labels: Any) -> int | None:
    """How many classes a `labels` entry names: a label-set name (any case, as `load_labels`
    reads it) or a list; `None`: unknown."""
    if isinstance(labels, str):
        return LABEL_SET_SIZES.get(labels.strip().lower())
    if isinstance(labels, (list, tuple)):
        return len(labels)
    return None


def index_labels(num_classes: int) -> list[str]:
    """The names of classes nobody has named: their indices, `'0'`, `'1'`, ..."""
    return [str(i) for i in range(num_classes)]


def for_new_head(cfg: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """`cfg` for a head of `num_classes` classes: labels that do not fit become the class
    indices, and the metrics measured with the old head go with them."""
    if label_count(cfg.get("labels")) == num_classes:
        return (
            cfg
            if cfg.get("num_classes", num_classes) == num_classes
            else {**cfg, "num_classes": num_classes}
        )
    old = ("metrics", "label_names", "label_descriptions")
    fresh = {k: v for k, v in cfg.items() if k not in old}
    fresh["labels"] = index_labels(num_classes)
    if "num_classes" in cfg:  # timm's key: the classes of the weights' head
        fresh["num_classes"] = num_classes
    return fresh
