"""Class names shipped with the package: ImageNet-1k, CIFAR-10 and CIFAR-100."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from torch import nn

from ..weights.pretrained_cfg import check_labels, resolve_pretrained_cfg

__all__ = ["LABEL_SETS", "imagenet_wnids", "load_labels", "resolve_labels"]

#: Label-set name -> data file in `t2t_vit/data`.
LABEL_SETS: dict[str, str] = {
    "imagenet-1k": "imagenet-1k.tsv",
    "cifar-10": "cifar-10.txt",
    "cifar-100": "cifar-100.txt",
}


@cache
def _read(file: str) -> tuple[str, ...]:
    data = resources.files(__package__ or "").joinpath("data")
    text = data.joinpath(file).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def load_labels(name: str) -> list[str]:
    """The class names of a label set, in class-index order.

    `'imagenet-1k'`: the 1000 classes in the order of their sorted WordNet ids (the
    order of the ImageNet class folders), each named by its synset's first lemma;
    the two names WordNet repeats are told apart as `'crane (bird)'` (134),
    `'crane (machine)'` (517), `'maillot'` (638) and `'tank suit'` (639).
    `'cifar-10'`, `'cifar-100'`: the datasets' own names (fine labels for CIFAR-100).
    """
    key = name.strip().lower()
    if key not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    lines = _read(LABEL_SETS[key])
    return [line.split("\t")[-1] for line in lines]


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids (`'n01440764'`, ...) in class-index order."""
    return [line.split("\t")[0] for line in _read(LABEL_SETS["imagenet-1k"])]


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
        spec = resolve_pretrained_cfg(model_or_cfg)["labels"]
        num_classes = getattr(model_or_cfg, "num_classes", None)
        check_labels(spec, num_classes if isinstance(num_classes, int) else None)
    if isinstance(spec, str):
        return load_labels(spec)
    return [str(label) for label in spec]
