"""Evaluation preprocessing from a model's pretrained config, without torchvision.

The steps and their rounding are those of timm's evaluation transform on PIL
images (torchvision's `Resize` on the shorter side, `CenterCrop`, `ToTensor`,
`Normalize`), so a model sees the same numbers as in the published evaluation.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import Tensor, nn

from .pretrained_cfg import default_pretrained_cfg, resolve_pretrained_cfg

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

__all__ = [
    "EvalTransform",
    "ImageInput",
    "load_image",
    "preprocess",
    "require_numpy",
    "require_pillow",
]

#: One image: a file path, a PIL image, a NumPy `(H, W[, C])` uint8 array or a `(C, H, W)` tensor.
ImageInput: TypeAlias = "str | os.PathLike[str] | PILImage.Image | np.ndarray[Any, Any] | Tensor"

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def require_pillow() -> Any:
    """The `PIL.Image` module, or an `ImportError` saying which extra to install."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            'image preprocessing needs Pillow; install it with: pip install "t2t-vit[image]"'
        ) from err
    return Image


def require_numpy() -> Any:
    """The `numpy` module, or an `ImportError` saying which extra to install.

    NumPy is no dependency of the model itself; image handling uses it.
    """
    try:
        import numpy
    except ImportError as err:
        raise ImportError(
            'image preprocessing needs NumPy; install it with: pip install "t2t-vit[image]"'
        ) from err
    return numpy


def _is_ndarray(obj: object) -> bool:
    # Without importing NumPy: an array can only exist if NumPy is already loaded.
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def load_image(path: str | os.PathLike[str]) -> PILImage.Image:
    """Open an image file fully into memory (mode unchanged).

    Raises `FileNotFoundError` for a missing file and `ValueError` naming the
    file when Pillow cannot decode it.
    """
    image_mod = require_pillow()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {os.fspath(path)!r}")
    try:
        with image_mod.open(path) as img:
            img.load()
            loaded: PILImage.Image = img.copy()
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(
            f"cannot read image {os.fspath(path)!r}: not an image file Pillow can decode ({err})"
        ) from err
    return loaded


def _to_pil(image: Any) -> PILImage.Image:
    """Any accepted single-image input as a PIL image (mode unchanged where possible)."""
    image_mod = require_pillow()
    img: PILImage.Image
    if isinstance(image, (str, os.PathLike)):
        img = load_image(image)
    elif isinstance(image, image_mod.Image):
        img = image
    elif _is_ndarray(image):
        img = _array_to_pil(image, "array")
    elif isinstance(image, Tensor):
        img = _tensor_to_pil(image)
    else:
        raise TypeError(
            f"cannot preprocess a {type(image).__name__}; accepted: a file path, a PIL image, "
            f"a NumPy (H, W[, C]) uint8 array or a (C, H, W) tensor"
        )
    if img.mode == "P":
        # Same colours as a direct RGB conversion, without Pillow's warning about
        # palette transparency.
        img = img.convert("RGBA")
    return img


def _array_to_pil(array: np.ndarray[Any, Any], what: str) -> PILImage.Image:
    image_mod = require_pillow()
    np = require_numpy()
    if array.dtype != np.uint8:
        raise ValueError(f"a NumPy image must be uint8 (H, W[, C]), got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(
            f"a {what} image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
            f"(channels last), got shape {tuple(array.shape)}"
        )
    # Pillow reads the mode from the shape: L, RGB or RGBA.
    pil: PILImage.Image = image_mod.fromarray(np.ascontiguousarray(array))
    return pil


def _tensor_to_pil(tensor: Tensor) -> PILImage.Image:
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"a tensor image must be (C, H, W) with C in 1, 3, 4, got shape {tuple(tensor.shape)}"
        )
    require_numpy()
    t = tensor.detach().cpu()
    if t.dtype == torch.uint8:
        array = t.permute(1, 2, 0).numpy()
    elif t.is_floating_point():
        lo, hi = float(t.min()), float(t.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"a float tensor image must hold values in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
                f"an already normalised batch goes to the model directly"
            )
        # Through 8 bits, as the same picture read from a file would be.
        array = (t.float() * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    else:
        raise ValueError(f"a tensor image must be uint8 or floating point, got {t.dtype}")
    return _array_to_pil(array, "tensor")


def _resize_shorter(img: PILImage.Image, size: int, resample: int) -> PILImage.Image:
    """torchvision `Resize(int)`: the shorter side to `size`, the longer truncated."""
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), resample)


def _center_crop(img: PILImage.Image, crop_h: int, crop_w: int) -> PILImage.Image:
    """torchvision `CenterCrop`: zero-pad if smaller, offsets rounded half to even."""
    image_mod = require_pillow()
    w, h = img.size
    if crop_w > w or crop_h > h:
        left, top = max(crop_w - w, 0) // 2, max(crop_h - h, 0) // 2
        padded = image_mod.new(img.mode, (max(w, crop_w), max(h, crop_h)), 0)
        padded.paste(img, (left, top))
        img = padded
        w, h = img.size
    if (w, h) == (crop_w, crop_h):
        return img
    top = round((h - crop_h) / 2.0)  # half to even, as torchvision
    left = round((w - crop_w) / 2.0)
    return img.crop((left, top, left + crop_w, top + crop_h))


class EvalTransform:
    """The evaluation transform of a pretrained config: one image -> `(C, H, W)` float32.

    Resize the shorter side to `floor(img_size / crop_pct)` (Pillow, with the
    config's interpolation), center-crop `img_size`, scale to [0, 1], normalise
    with the config's mean and std. A non-square `input_size` resizes to
    `(floor(H / crop_pct), floor(W / crop_pct))` before the crop, as timm 0.3.4
    (the version the official code used) does. Grayscale, RGBA and palette
    images are converted to RGB (to L for a one-channel model).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        try:
            channels, height, width = (int(v) for v in cfg["input_size"])
            crop_pct = float(cfg.get("crop_pct", 0.9))
            interpolation = str(cfg.get("interpolation", "bicubic"))
            mean = [float(v) for v in cfg["mean"]]
            std = [float(v) for v in cfg["std"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"a preprocessing config needs input_size [C, H, W], mean and std "
                f"(and optionally crop_pct, interpolation); got {cfg!r}"
            ) from err
        if channels not in (1, 3):
            raise ValueError(f"input_size must have 1 or 3 channels, got {channels}")
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need {channels} values for input_size {[channels, height, width]}, "
                f"got mean={mean}, std={std}"
            )
        if not crop_pct > 0:
            raise ValueError(f"crop_pct must be positive, got {crop_pct}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {interpolation!r}; accepted: {', '.join(_INTERPOLATIONS)}"
            )
        self.channels, self.height, self.width = channels, height, width
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self._mean, self._std = mean, std
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    @classmethod
    def from_model(cls, model: nn.Module) -> EvalTransform:
        """The transform of a model's pretrained config (official defaults when it has none)."""
        return cls(resolve_pretrained_cfg(model))

    @property
    def resize_size(self) -> int | tuple[int, int]:
        """The shorter side after resizing (square input), or the `(H, W)` resized to."""
        if self.height == self.width:
            return math.floor(self.height / self.crop_pct)
        return math.floor(self.height / self.crop_pct), math.floor(self.width / self.crop_pct)

    def resize_crop(self, image: ImageInput) -> PILImage.Image:
        """The geometric steps only: the resized, center-cropped PIL image the model sees."""
        image_mod = require_pillow()
        img = _to_pil(image).convert("L" if self.channels == 1 else "RGB")
        resample = getattr(image_mod.Resampling, self.interpolation.upper())
        size = self.resize_size
        if isinstance(size, int):
            img = _resize_shorter(img, size, resample)
        elif img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), resample)
        return _center_crop(img, self.height, self.width)

    def to_tensor(self, img: PILImage.Image) -> Tensor:
        """A cropped PIL image to the normalised `(C, H, W)` float32 tensor."""
        width, height = img.size
        pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        x = pixels.view(height, width, -1).permute(2, 0, 1).float().div(255.0)
        return (x - self.mean) / self.std

    def __call__(self, image: ImageInput) -> Tensor:
        """One image to its normalised `(C, H, W)` float32 tensor."""
        return self.to_tensor(self.resize_crop(image))

    def __repr__(self) -> str:
        return (
            f"EvalTransform(input_size={[self.channels, self.height, self.width]}, "
            f"resize={self.resize_size}, crop_pct={self.crop_pct}, "
            f"interpolation={self.interpolation!r}, mean={self._mean}, std={self._std})"
        )


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, (str, os.PathLike)):
        return [images]
    if isinstance(images, Tensor) and images.ndim == 4:
        return list(images.unbind(0))
    if _is_ndarray(images) and images.ndim == 4:
        return list(images)
    if isinstance(images, Sequence) and not isinstance(images, (bytes, bytearray)):
        items = list(images)
        if not items:
            raise ValueError("no images given")
        return items
    return [images]


def preprocess(
    images: ImageInput | Sequence[ImageInput],
    model_or_cfg: nn.Module | dict[str, Any] | None = None,
) -> Tensor:
    """Images to a normalised batch `(B, C, H, W)` float32 for a model.

    `images` is one image or a sequence of them (a `(B, C, H, W)` tensor or a
    `(B, H, W, C)` uint8 array counts as B images). The preprocessing comes from
    the model's pretrained config (or a config dict; the official 224 defaults
    when `None`).
    """
    if model_or_cfg is None:
        cfg = default_pretrained_cfg()
    elif isinstance(model_or_cfg, dict):
        cfg = model_or_cfg
    else:
        cfg = resolve_pretrained_cfg(model_or_cfg)
    transform = EvalTransform(cfg)
    return torch.stack([transform(image) for image in _as_list(images)])
