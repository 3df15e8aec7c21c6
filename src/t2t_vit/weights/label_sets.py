"""The label sets shipped with the package (ImageNet-1k, CIFAR-10, CIFAR-100): their class
names in class-index order. Saved folders, predictions and evaluation all read them."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["LABEL_SETS", "imagenet_wnids", "load_labels"]

#: Label-set name -> data file in `t2t_vit/weights/data`.
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
