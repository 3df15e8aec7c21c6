"""The released T2T-ViT checkpoints: one registry of where they come from, how well they do,
how to preprocess for them, and where their converted copies live on the Hugging Face Hub."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..models.presets import PRESETS, canonical_name, closest, did_you_mean
from .pretrained_cfg import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "HUB_ORG",
    "HUB_ORG_ENV",
    "WEIGHTS",
    "PretrainedWeights",
    "find_weights_by_file_name",
    "get_weights",
    "hub_org",
    "list_pretrained",
    "render_zoo_table",
]

_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8})\.pth$")

HUB_ORG = "t2t-vit"
"""Default Hugging Face Hub organisation holding the converted weights."""
HUB_ORG_ENV = "T2T_VIT_HUB_ORG"
"""Environment variable that replaces `HUB_ORG` (e.g. for a mirror or a fork's own uploads)."""

#: Normalisation of the official CIFAR-10/100 transfer-learning code (`transfer_learning.py`).
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)

_OFFICIAL_URL = "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/"
_MMPRETRAIN_URL = "https://download.openmmlab.com/mmclassification/v0/t2t-vit/"
_OFFICIAL_ORIGIN = "yitu-opensource/T2T-ViT (official GitHub release)"
_MMPRETRAIN_ORIGIN = "OpenMMLab mmpretrain (trained from scratch by OpenMMLab)"
# Hub license identifiers of the two sources' licenses.
_CLEAR_BSD = "bsd-3-clause-clear"
_APACHE = "apache-2.0"


#: What the Hub accepts as an organisation or user name (huggingface_hub's repo id rules).
_ORG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")


def hub_org() -> str:
    """The Hub organisation of the converted weights: `$T2T_VIT_HUB_ORG`, else `HUB_ORG`.

    Raises `ValueError` naming the variable when it holds no valid organisation name.
    """
    org = os.environ.get(HUB_ORG_ENV, "").strip()
    if not org:
        return HUB_ORG
    if not _ORG.fullmatch(org) or "--" in org or ".." in org:
        raise ValueError(
            f"{HUB_ORG_ENV}={org!r} is not a Hub organisation name (letters, digits, '-', '_' "
            f"and '.', at most 96, no '--' or '..'); set it to one, or unset it for {HUB_ORG!r}"
        )
    return org


def expected_sha256_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix that OpenMMLab writes into its file names (`...-f7378dd5.pth`)."""
    match = _HASH_SUFFIX.search(file_name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class PretrainedWeights:
    """One released checkpoint: provenance, reported accuracy, measured size and cost,
    evaluation preprocessing and the Hub repository of its converted copy.

    Attributes:
        name: The weight name, `<preset>.<tag>` (`t2t-vit-t-14.mmpretrain`).
        preset: The architecture's preset name.
        source: Who released the file: `official` or `mmpretrain`.
        url: The original file's URL.
        top1: Top-1 accuracy the source reports, in percent.
        top5: Top-5 accuracy the source reports, `None` where it gives none.
        params: Parameters of the architecture, measured with `count_params`.
        macs: Multiply-accumulates of one image at `img_size`, measured with `count_macs`.
        reported_params: The source's own parameter figure as written, or `None`.
        reported_macs: The source's own cost figure as written (mmpretrain calls it FLOPs).
        license: The Hub license identifier of the source's license.
        num_classes: Classes of the classifier.
        img_size: Input side the weights were trained and evaluated at.
        labels: The label set: `imagenet-1k`, `cifar-10` or `cifar-100`.
        crop_pct: Evaluation crop fraction (resize to `img_size / crop_pct`, then crop).
        interpolation: Resize interpolation of the evaluation transform.
        mean: Per-channel normalisation mean.
        std: Per-channel normalisation standard deviation.
        notes: What else a user should know about the file.
        origin: The source in words (repository or project).
        may_be_default: Whether a bare preset name may resolve to these weights.
    """

    name: str
    preset: str
    source: Literal["official", "mmpretrain"]
    url: str
    top1: float
    top5: float | None
    params: int
    macs: int
    reported_params: str | None
    reported_macs: str | None
    license: str
    num_classes: int = 1000
    img_size: int = 224
    labels: str = "imagenet-1k"
    crop_pct: float = 0.9
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    notes: str = ""
    origin: str = field(default="", compare=False)
    may_be_default: bool = True

    @property
    def tag(self) -> str:
        """The part of the name after the preset: `official`, `mmpretrain`, `cifar10`, ..."""
        return self.name.split(".", 1)[1]

    @property
    def file_name(self) -> str:
        """The original checkpoint's file name."""
        return self.url.rsplit("/", 1)[1]

    @property
    def hub_repo_id(self) -> str:
        """`<org>/<name>` on the Hugging Face Hub, with the org from `hub_org()`."""
        return f"{hub_org()}/{self.name}"

    def model_args(self) -> dict[str, Any]:
        """`T2TViT` keyword arguments of the checkpoint's network."""
        return {**PRESETS[self.preset], "num_classes": self.num_classes, "img_size": self.img_size}

    def pretrained_cfg(self) -> dict[str, Any]:
        """The `pretrained_cfg` dict (see `t2t_vit.pretrained_cfg`) stored in `config.json`."""
        return {
            "input_size": [3, self.img_size, self.img_size],
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "labels": self.labels,
            "metrics": {"top1": self.top1, "top5": self.top5, "dataset": self.labels},
            "source": {
                "name": self.name,
                "origin": self.origin,
                "url": self.url,
                "file_name": self.file_name,
                "license": self.license,
            },
        }


def _official(
    name: str,
    file: str,
    top1: float,
    params: int,
    macs: int,
    reported_params: str | None,
    reported_macs: str | None,
    **extra: Any,
) -> PretrainedWeights:
    return PretrainedWeights(
        name=name,
        preset=extra.pop("preset", name.split(".", 1)[0]),
        source="official",
        url=_OFFICIAL_URL + file,
        top1=top1,
        top5=extra.pop("top5", None),
        params=params,
        macs=macs,
        reported_params=reported_params,
        reported_macs=reported_macs,
        license=_CLEAR_BSD,
        origin=_OFFICIAL_ORIGIN,
        **extra,
    )


def _mmpretrain(
    name: str,
    file: str,
    top1: float,
    top5: float,
    params: int,
    macs: int,
    reported_params: str,
    reported_flops: str,
) -> PretrainedWeights:
    return PretrainedWeights(
        name=name,
        preset=name.split(".", 1)[0],
        source="mmpretrain",
        url=_MMPRETRAIN_URL + file,
        top1=top1,
        top5=top5,
        params=params,
        macs=macs,
        reported_params=reported_params,
        reported_macs=reported_flops,
        license=_APACHE,
        origin=_MMPRETRAIN_ORIGIN,
        # mmpretrain evaluates with a 248 short-side bicubic resize and a 224 center crop,
        # which is what crop_pct 0.9 gives (floor(224 / 0.9) = 248).
        notes="mmpretrain test pipeline: short side 248 (bicubic), center crop 224",
    )


_CIFAR = dict(
    crop_pct=1.0,
    # transfer_learning.py resizes with torchvision's default (bilinear) and does not crop.
    interpolation="bilinear",
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
)

# Parameters and MACs: `count_params(create_model(preset, num_classes=n))` and
# `count_macs(model, img_size)` with this library (torch 2.13 CPU); the ImageNet 224
# figures equal the official implementation's counts in tests/fixtures/official_presets.json.
_ENTRIES: tuple[PretrainedWeights, ...] = (
    # name, original file, top-1, params, MACs, reported params, reported MACs
    _official("t2t-vit-7.official", "71.7_T2T_ViT_7.pth.tar", 71.7,
              4310222, 1146863616, "4.3M", "1.1G"),
    _official("t2t-vit-10.official", "75.2_T2T_ViT_10.pth.tar", 75.2,
              5889230, 1516328448, "5.9M", "1.5G"),
    _official("t2t-vit-12.official", "76.5_T2T_ViT_12.pth.tar", 76.5,
              6941902, 1762638336, "6.9M", "1.8G"),
    _official("t2t-vit-14.official", "81.5_T2T_ViT_14.pth.tar", 81.5,
              21545550, 4783468544, "21.5M", "4.8G",
              top5=95.666,
              notes="top-5 from the README's sample validation log (Acc@5 95.666)"),
    _official("t2t-vit-19.official", "81.9_T2T_ViT_19.pth.tar", 81.9,
              39177422, 8479682176, "39.2M", "8.5G"),
    _official("t2t-vit-24.official", "82.3_T2T_ViT_24.pth.tar", 82.3,
              64105934, 13661874688, "64.1M", "13.8G"),
    _official("t2t-vit-14-384.official", "83.3_T2T_ViT_14.pth.tar", 83.3,
              21691470, 16370148864, "21.7M", None,
              img_size=384,
              notes="trained at 384x384; the checkpoint carries an interpolated position table"),
    _official("t2t-vit-24.token-labeling", "84.2_T2T_ViT_24.pth.tar", 84.2,
              64105934, 13661874688, "65M", None,
              may_be_default=False,
              notes=("trained with Token Labeling (zihangJiang/TokenLabeling); input size not "
                     "stated (224 presumed); the reported 65M suggests extra training-only "
                     "keys, which `t2t-vit convert --ignore-keys` drops; its 84.2 may come "
                     "from an evaluation with the auxiliary token head, which this library "
                     "does not implement, so it is never a preset's default")),
    _official("t2t-vit-t-14.official", "81.7_T2T_ViTt_14.pth.tar", 81.7,
              21541070, 6088721920, "21.5M", "6.1G"),
    _official("t2t-vit-t-19.official", "82.4_T2T_ViTt_19.pth.tar", 82.4,
              39172942, 9784935552, "39.2M", "9.8G"),
    _official("t2t-vit-t-24.official", "82.6_T2T_ViTt_24.pth.tar", 82.6,
              64101454, 14967128064, "64.1M", "15.0G"),
    _official("t2t-vit-14.cifar10", "cifar10_t2t-vit_14_98.3.pth", 98.3,
              21164400, 4783088384, "21.5M", None,
              num_classes=10, labels="cifar-10", **_CIFAR),
    # The release spells this file "cirfar100".
    _official("t2t-vit-14.cifar100", "cirfar100_t2t-vit-14_88.4.pth", 88.4,
              21199050, 4783122944, "21.5M", None,
              num_classes=100, labels="cifar-100", **_CIFAR),
    _official("t2t-vit-19.cifar10", "cifar10_t2t-vit_19_98.4.pth", 98.4,
              38732912, 8479238656, "39.2M", None,
              num_classes=10, labels="cifar-10", **_CIFAR),
    _official("t2t-vit-19.cifar100", "cifar100_t2t-vit-19_89.0.pth", 89.0,
              38773322, 8479278976, "39.2M", None,
              num_classes=100, labels="cifar-100", **_CIFAR),
    # name, original file, top-1, top-5, params, MACs, reported params, reported FLOPs
    _mmpretrain("t2t-vit-t-14.mmpretrain", "t2t-vit-t-14_8xb64_in1k_20211220-f7378dd5.pth",
                81.83, 95.84, 21541070, 6088721920, "21.47M", "4.34G"),
    _mmpretrain("t2t-vit-t-19.mmpretrain", "t2t-vit-t-19_8xb64_in1k_20211214-7f5e3aaf.pth",
                82.63, 96.18, 39172942, 9784935552, "39.08M", "7.80G"),
    _mmpretrain("t2t-vit-t-24.mmpretrain", "t2t-vit-t-24_8xb64_in1k_20211214-b2a68ae3.pth",
                82.71, 96.09, 64101454, 14967128064, "64.00M", "12.69G"),
)  # fmt: skip

WEIGHTS: dict[str, PretrainedWeights] = {w.name: w for w in _ENTRIES}
"""Weight name (`<preset>.<tag>`) -> its registry entry, in the order of the model zoo table."""


def _default_for(preset: str) -> PretrainedWeights | None:
    # Only ImageNet-1k weights at the preset's own size compete: the CIFAR figures
    # are on another dataset and do not rank against them.
    # Token labeling's figure may rely on an auxiliary head this library does not build.
    candidates = [
        w for w in _ENTRIES if w.preset == preset and w.labels == "imagenet-1k" and w.may_be_default
    ]
    return max(candidates, key=lambda w: w.top1, default=None)


def list_pretrained(pattern: str | None = None) -> list[str]:
    """Names of the registered weights (`<preset>.<tag>`), optionally those containing
    `pattern`, in the registry's order."""
    names = list(WEIGHTS)
    return [n for n in names if pattern is None or pattern.lower() in n]


def _normalise(name: str) -> str:
    preset, dot, tag = name.strip().lower().partition(".")
    return re.sub(r"[_\s]+", "-", preset) + dot + tag


def get_weights(name: str) -> PretrainedWeights:
    """The registry entry for a weight name.

    A preset name (`t2t-vit-t-14`, official spellings such as `T2t_vit_t_14` too) picks
    its best-accuracy ImageNet-1k weights (never the token-labeling ones, see
    `PretrainedWeights.may_be_default`); `<preset>.<tag>` (`t2t-vit-t-14.official`)
    picks one entry. Raises `ValueError` listing the known names otherwise.
    """
    key = _normalise(name)
    if key in WEIGHTS:
        return WEIGHTS[key]
    if "." not in key and key in PRESETS:
        default = _default_for(key)
        if default is not None:
            return default
        with_weights = sorted({w.preset for w in _ENTRIES}, key=list(PRESETS).index)
        raise ValueError(
            f"no pretrained weights for preset {name!r}; presets with weights: "
            f"{', '.join(with_weights)} (build it untrained with t2t_vit.create_model)"
        )
    if "." not in key:
        try:
            return get_weights(canonical_name(key))
        except ValueError:
            pass
    known = sorted({w.preset for w in _ENTRIES}, key=list(PRESETS).index) + list(WEIGHTS)
    preset, _, tag = key.partition(".")
    tags = [w.name for w in _ENTRIES if w.preset == preset]
    if tag and tags:
        # A known preset with an unknown tag: compare tags alone (the shared preset part
        # would make every name look close), else list the preset's own weights.
        close = closest(tag, [t.partition(".")[2] for t in tags])
        if close:
            hint = f" (did you mean {f'{preset}.{close}'!r}?)"
        else:
            hint = f" ({preset} has {', '.join(tags)})"
    else:
        hint = did_you_mean(key, known)
    raise ValueError(f"unknown pretrained model {name!r}{hint}; known: {', '.join(known)}")


def find_weights_by_file_name(file_name: str) -> PretrainedWeights | None:
    """The entry whose original checkpoint has this file name (path allowed), if any."""
    base = os.path.basename(file_name)
    return next((w for w in _ENTRIES if w.file_name == base), None)


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _giga(n: int) -> str:
    return f"{n / 1e9:.2f}"


def render_zoo_table() -> str:
    """The model zoo as a Markdown table, one row per registered checkpoint.

    The Hub ids use the published organisation `HUB_ORG`, not `$T2T_VIT_HUB_ORG`, so the
    table is the same everywhere. `docs/weights.md` and `README.md` embed it verbatim (a
    test keeps them equal); regenerate with `python scripts/sync_zoo_table.py`.
    """
    rows = [
        "| name | T2T | dataset | input | top-1 | top-5 | params (M) | MACs (G) | source "
        "| license | Hub id |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    defaults = {w.name for w in (_default_for(p) for p in PRESETS) if w is not None}
    for w in _ENTRIES:
        name = f"`{w.name}`" + (f" (`{w.preset}`)" if w.name in defaults else "")
        kind = PRESETS[w.preset]["tokens_type"]
        top5 = "—" if w.top5 is None else str(w.top5)
        source = f"[{w.source}: `{w.file_name}`]({w.url})"
        rows.append(
            f"| {name} | {kind} | {w.labels} | {w.img_size} | {w.top1} | {top5} | "
            f"{_millions(w.params)} | {_giga(w.macs)} | {source} | {w.license} | "
            f"`{HUB_ORG}/{w.name}` |"
        )
    return "\n".join(rows) + "\n"
