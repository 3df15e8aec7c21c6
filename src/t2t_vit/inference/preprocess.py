"""Evaluation preprocessing from a model's pretrained config, without torchvision.

The steps and their rounding are those of timm's evaluation transform on PIL
images (torchvision's `Resize` on the shorter side, `CenterCrop`, `ToTensor`,
`Normalize`), so a model sees the same numbers as in the published evaluation.
"""

from __future__ import annotations

import errno
import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import Tensor, nn

from ..weights.pretrained_cfg import default_pretrained_cfg, resolve_pretrained_cfg

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

#: One image: a file path, a PIL image, a NumPy `(H, W[, C])` array or a `(C, H, W)` tensor.
ImageInput: TypeAlias = "str | os.PathLike[str] | PILImage.Image | np.ndarray[Any, Any] | Tensor"

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")

# Pillow modes that Pillow itself converts to 8-bit RGB and L correctly.
_PILLOW_8BIT = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "HSV"}
)
_PILLOW_16BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Formats whose mode "I" images are 16-bit samples: Pillow before 10 opens a 16-bit
# grayscale PNG as "I", and still opens a 16-bit PGM so.
_SIXTEEN_BIT_I_FORMATS = frozenset({"PNG", "PPM"})
_ACCEPTED_MODES = (
    "1, L, LA, La, P, PA, RGB, RGBA, RGBa, RGBX, CMYK, YCbCr, HSV, LAB, "
    "I;16 (any byte order), F (values in [0, 1])"
)


def install_line(extra: str) -> str:
    """How to install an extra, from a clone (what works today) and from PyPI (once
    released): `pip install ".[image]"` (in a clone of t2t-vit; ...)."""
    return (
        f'pip install ".[{extra}]" in a clone of t2t-vit (pip install "t2t-vit[{extra}]" '
        "once it is on PyPI)"
    )


def require_pillow() -> Any:
    """The `PIL.Image` module, or an `ImportError` saying which extra to install."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            "image preprocessing needs Pillow; install it with: " + install_line("image")
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
            "image preprocessing needs NumPy; install it with: " + install_line("image")
        ) from err
    return numpy


def _check_count(name: str, value: object, minimum: int = 1) -> None:
    """Raise unless `value` is an int (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _is_ndarray(obj: object) -> bool:
    # Without importing NumPy: an array can only exist if NumPy is already loaded.
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def missing_image(path: str | os.PathLike[str]) -> Exception:
    """The one-line error for an image path that is no file: a symbolic link loop, a link to
    nothing, or nothing at all. Every entry point that takes image paths (the API, the CLI)
    raises it."""
    name = os.fspath(path)
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return ValueError(
                    f"cannot read image {name!r}: a symbolic link loop (the link leads back "
                    "to itself); point it at an image file"
                )
        return FileNotFoundError(
            f"image file not found: {name!r} is a symbolic link to "
            f"{os.readlink(path)!r}, which does not exist"
        )
    return FileNotFoundError(f"image file not found: {name!r}")


def load_image(path: str | os.PathLike[str]) -> PILImage.Image:
    """Open an image file fully into memory, in the mode Pillow gives it.

    A 16-bit grayscale PNG or PGM that Pillow opens as mode `I` comes back as
    `I;16`, so its range is known. EXIF orientation is ignored, as timm and the
    published evaluations do: the pixels come as stored. For a camera photo shown
    rotated, pass `PIL.ImageOps.exif_transpose(PIL.Image.open(path))` instead of the path.
    Raises `FileNotFoundError` for a missing file
    and `ValueError` naming the file for a folder or a file Pillow cannot decode.
    """
    image_mod = require_pillow()
    name = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{name!r} is a folder, not an image file; pass the image files in it")
    if not os.path.isfile(path):
        raise missing_image(path)
    if os.path.getsize(path) == 0:
        raise ValueError(f"cannot read image {name!r}: empty file (0 bytes)")
    try:
        with image_mod.open(path) as img:
            img.load()
            loaded: PILImage.Image = img.copy()
            image_format = img.format
    except image_mod.UnidentifiedImageError as err:
        raise ValueError(
            f"cannot read image {name!r}: not an image file Pillow can decode"
        ) from err
    except PermissionError as err:
        raise ValueError(f"cannot read image {name!r}: permission denied") from err
    except image_mod.DecompressionBombError as err:
        raise ValueError(
            f"cannot read image {name!r}: {err}; raise PIL.Image.MAX_IMAGE_PIXELS if you "
            f"trust the file"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {name!r}: broken or truncated file ({err})") from err
    if loaded.mode == "I" and image_format in _SIXTEEN_BIT_I_FORMATS:
        loaded = _sixteen_bit_i(loaded)
    return loaded


def _sixteen_bit_i(img: PILImage.Image) -> PILImage.Image:
    """A mode `I` image known to hold 16-bit samples, as mode `I;16`."""
    np = require_numpy()
    levels = np.asarray(img)
    lo, hi = int(levels.min()), int(levels.max())
    if lo < 0 or hi > 65535:
        raise ValueError(f"a 16-bit mode 'I' image holds values in [{lo}, {hi}], outside 0..65535")
    pil: PILImage.Image = require_pillow().fromarray(levels.astype(np.uint16))
    return pil


def _from_16bit(levels: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Unsigned 16-bit samples to 8 bits, `round(v * 255 / 65535)`.

    `v / 257` never ends in .5 (257 is odd), so adding 128 and flooring rounds it.
    """
    numpy = require_numpy()
    out: np.ndarray[Any, Any] = ((levels.astype(numpy.uint32) + 128) // 257).astype(numpy.uint8)
    return out


def _from_unit_float(values: np.ndarray[Any, Any], what: str, advice: str) -> np.ndarray[Any, Any]:
    """Floats in [0, 1] to 8 bits, `round(v * 255)`, as if saved and read back."""
    numpy = require_numpy()
    # float32 holds v * 255 to 2e-5, plenty to round to 8 bits, in half float64's memory.
    work = values.astype(numpy.float64 if values.dtype.itemsize > 4 else numpy.float32, copy=False)
    if not numpy.isfinite(work).all():
        raise ValueError(f"{what} holds NaN or infinite values; an image needs finite values")
    lo, hi = float(work.min()), float(work.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{what} must hold values in [0, 1], got [{lo:.4g}, {hi:.4g}]; {advice}")
    out: np.ndarray[Any, Any] = numpy.round(work * 255.0).astype(numpy.uint8)
    return out


def _lab_to_rgb(img: PILImage.Image) -> PILImage.Image:
    """CIE L*a*b* (D50, Pillow's LAB) to sRGB, as LittleCMS converts it."""
    try:
        rgb: PILImage.Image = img.convert("RGB")
        return rgb
    except ValueError:
        pass  # older Pillow converts LAB only through ImageCms
    try:
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        converted = ImageCms.applyTransform(img, transform)
    except (ImportError, OSError, ValueError) as err:
        raise ValueError(
            "cannot convert a mode 'LAB' image to RGB: this Pillow has no LittleCMS; "
            "convert it to RGB yourself"
        ) from err
    if converted is None:  # only for in-place transforms
        raise ValueError("cannot convert a mode 'LAB' image to RGB")
    return converted


def _eight_bit(img: PILImage.Image) -> PILImage.Image:
    """The same picture in a mode that Pillow converts to 8-bit RGB and L exactly.

    High-bit-depth images are reduced to 8 bits here, so that the model sees what
    it would see for the 8-bit version of the picture: the weights were trained
    and evaluated on 8-bit images.
    """
    image_mod = require_pillow()
    mode = img.mode
    if mode == "P":
        # Same colours as a direct RGB conversion, without Pillow's warning about
        # palette transparency.
        return img.convert("RGBA")
    if mode == "La":
        return img.convert("LA")  # Pillow converts premultiplied La only to LA
    if mode in _PILLOW_8BIT:
        return img
    if mode == "LAB":
        return _lab_to_rgb(img)
    np = require_numpy()
    if mode in _PILLOW_16BIT or (mode == "I" and img.format in _SIXTEEN_BIT_I_FORMATS):
        if mode == "I":
            img = _sixteen_bit_i(img)
        eight: PILImage.Image = image_mod.fromarray(_from_16bit(np.asarray(img)))
        return eight
    if mode == "I":
        levels = np.asarray(img)
        raise ValueError(
            f"a mode 'I' image (32-bit integers, here {int(levels.min())}..{int(levels.max())}) "
            f"has no fixed range; pass img.convert('L') for 0..255 levels or "
            f"img.convert('I;16') for 0..65535"
        )
    if mode == "F":
        levels = _from_unit_float(
            np.asarray(img), "a mode 'F' image", "pass img.convert('L') for 0..255 levels"
        )
        gray: PILImage.Image = image_mod.fromarray(levels)
        return gray
    raise ValueError(f"cannot preprocess a mode {mode!r} image; accepted modes: {_ACCEPTED_MODES}")


def _convert(img: PILImage.Image, mode: str) -> PILImage.Image:
    """Any accepted PIL image as 8-bit `mode` (`'RGB'` or `'L'`); alpha is dropped."""
    source = img.mode
    img = _eight_bit(img)
    if img.mode == mode:
        return img
    try:
        converted: PILImage.Image = img.convert(mode)
    except ValueError as err:
        raise ValueError(
            f"this Pillow cannot convert a mode {source!r} image to {mode}; convert it yourself"
        ) from err
    return converted


def _to_pil(image: Any) -> PILImage.Image:
    """Any accepted single-image input as a PIL image (mode unchanged where possible)."""
    image_mod = require_pillow()
    img: PILImage.Image
    if isinstance(image, (str, os.PathLike)):
        img = load_image(image)
    elif isinstance(image, image_mod.Image):
        try:
            image.load()
        except ValueError as err:
            if "closed" not in str(err):
                raise
            raise ValueError(
                "the PIL image is closed (img.close() or the end of a `with Image.open(...)` "
                "block released its pixels); pass it before closing it, img.copy(), or the "
                "file path"
            ) from None
        img = image
    elif _is_ndarray(image):
        img = _array_to_pil(image, "NumPy array", str(image.dtype))
    elif isinstance(image, Tensor):
        img = _tensor_to_pil(image)
    else:
        raise TypeError(
            f"cannot preprocess a {type(image).__name__}; accepted: a file path, a PIL image, "
            f"a NumPy (H, W[, C]) array or a (C, H, W) tensor"
        )
    if img.width < 1 or img.height < 1:
        # Resizing it would divide by its zero side.
        raise ValueError(
            f"the image has no pixels ({img.width}x{img.height}); pass an image of at least 1x1"
        )
    return img


def _levels(array: np.ndarray[Any, Any], what: str, dtype: str) -> np.ndarray[Any, Any]:
    """Pixel values of any accepted dtype as uint8 levels of the same picture."""
    numpy = require_numpy()
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        out: np.ndarray[Any, Any] = array.astype(numpy.uint8) * numpy.uint8(255)
        return out
    if kind == "u" and size == 1:
        return array
    if kind == "u" and size == 2:
        return _from_16bit(array)
    if kind == "f":
        advice = "divide by 255 if it holds 0..255 levels"
        if what == "tensor":
            advice += "; an already normalised batch goes to the model directly"
        return _from_unit_float(array, f"a float {what} image", advice)
    if kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        raise ValueError(
            f"a {dtype} {what} image (values {lo}..{hi}) has no fixed range; pass uint8 "
            f"for 0..255 levels, uint16 for 0..65535, or floats in [0, 1]"
        )
    raise ValueError(f"a {what} image must be uint8, uint16, bool or floating point, got {dtype}")


def _array_to_pil(array: np.ndarray[Any, Any], what: str, dtype: str) -> PILImage.Image:
    image_mod = require_pillow()
    np = require_numpy()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = "; for channels first (C, H, W) pass array.transpose(1, 2, 0)"
        raise ValueError(
            f"a {what} image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
            f"(channels last), got shape {tuple(array.shape)}{hint}"
        )
    if array.size == 0:
        raise ValueError(f"a {what} image must not be empty, got shape {tuple(array.shape)}")
    # Pillow reads the mode from the shape: L, RGB or RGBA.
    pil: PILImage.Image = image_mod.fromarray(np.ascontiguousarray(_levels(array, what, dtype)))
    return pil


def _tensor_to_pil(tensor: Tensor) -> PILImage.Image:
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        hint = ""
        if tensor.ndim == 3 and tensor.shape[-1] in (1, 3, 4):
            hint = "; for channels last (H, W, C) pass x.permute(2, 0, 1)"
        raise ValueError(
            f"a tensor image must be (C, H, W) with C in 1, 3, 4, got shape "
            f"{tuple(tensor.shape)}{hint}"
        )
    require_numpy()
    t = tensor.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.float()  # bfloat16 and float8 have no NumPy dtype; float32 holds them exactly
    try:
        array = t.permute(1, 2, 0).numpy()
    except TypeError as err:
        raise ValueError(
            f"a tensor image must be uint8, uint16, bool or floating point, got {tensor.dtype}"
        ) from err
    return _array_to_pil(array, "tensor", str(tensor.dtype))


def _shorter_side_size(image_size: tuple[int, int], size: int) -> tuple[int, int]:
    """torchvision `Resize(int)`'s `(width, height)`: the shorter side to `size`, the
    longer scaled and truncated."""
    w, h = image_size
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


def _resize_shorter(img: PILImage.Image, size: int, resample: int) -> PILImage.Image:
    """torchvision `Resize(int)`: the shorter side to `size`, the longer truncated."""
    new_w, new_h = _shorter_side_size(img.size, size)
    if (new_w, new_h) == img.size:
        return img
    return img.resize((new_w, new_h), resample)


#: Above this many times the crop's area, the resize before the crop makes only the window
#: the crop keeps (ordinary photos are resized whole, as torchvision does).
_MAX_RESIZE_FACTOR = 16


def _resize_window(
    img: PILImage.Image, resized: tuple[int, int], crop: tuple[int, int], resample: int
) -> PILImage.Image:
    """The part of `img.resize(resized)` that `_center_crop(crop)` keeps (the whole of an
    axis the crop pads), made by resizing only that window of `img`: the same scale and
    sample positions, without the full-size intermediate."""
    w, h = img.size
    box: list[float] = [0.0, 0.0, float(w), float(h)]
    out = list(resized)
    for axis, (full, keep, src) in enumerate(zip(resized, crop, (w, h), strict=True)):
        if keep < full:
            start = round((full - keep) / 2.0)  # half to even, as _center_crop
            box[axis], box[axis + 2] = start * src / full, (start + keep) * src / full
            out[axis] = keep
    return img.resize((out[0], out[1]), resample, box=(box[0], box[1], box[2], box[3]))


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
    (the version the official code used) does. Every accepted image becomes
    8-bit RGB first (L for a one-channel model): 16-bit samples scale by
    65535, floats must lie in [0, 1], alpha is dropped; see `docs/inference.md`.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        """Read the preprocessing settings of a pretrained config.

        Args:
            cfg: A pretrained config (`model.pretrained_cfg`, `default_pretrained_cfg()`):
                `input_size` `[C, H, W]` with C 1 or 3, `mean` and `std` (C values each,
                std positive), and optionally `crop_pct` (default 0.9) and
                `interpolation` (default `'bicubic'`).
        """
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
            raise ValueError(
                f"input_size must have 1 or 3 channels, got {channels}: preprocessing makes "
                f"grey (1) or RGB (3) images only; for a {channels}-channel model build the "
                f"batch yourself, a (B, {channels}, H, W) float32 tensor scaled to [0, 1] and "
                "normalised with the model's pretrained_cfg mean and std"
            )
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need {channels} values for input_size {[channels, height, width]}, "
                f"got mean={mean}, std={std}"
            )
        if height < 1 or width < 1:
            raise ValueError(f"input_size needs a positive height and width, got {[height, width]}")
        if not all(math.isfinite(v) for v in mean) or not all(
            math.isfinite(v) and v > 0 for v in std
        ):
            raise ValueError(
                f"mean must be finite and std finite and positive, got mean={mean}, std={std}"
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
        try:
            img = _convert(_to_pil(image), "L" if self.channels == 1 else "RGB")
        except ValueError as err:
            if isinstance(image, (str, os.PathLike)) and os.fspath(image) not in str(err):
                raise ValueError(f"image {os.fspath(image)!r}: {err}") from err
            raise
        resample = getattr(image_mod.Resampling, self.interpolation.upper())
        size = self.resize_size
        if isinstance(size, int):
            new_w, new_h = _shorter_side_size(img.size, size)
        else:
            new_w, new_h = size[1], size[0]
        if new_w * new_h > _MAX_RESIZE_FACTOR * self.height * self.width:
            # A long strip (4x3000) would become 248x186000 before the crop, a 1xN strip
            # gigabytes: resize only the window the crop keeps (Pillow's `box`), same scale.
            img = _resize_window(img, (new_w, new_h), (self.width, self.height), resample)
        elif isinstance(size, int):
            img = _resize_shorter(img, size, resample)
        elif img.size != (new_w, new_h):
            img = img.resize((new_w, new_h), resample)
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


def _transform_batch(
    transform: EvalTransform, items: Sequence[Any], first: int = 0, several: bool = False
) -> Tensor:
    """`items` (images `first`, `first + 1`, ... of the input) as one batch.

    Among `several` images one that cannot be used is named by its index; a file is
    named by its path, which the message already carries.
    """
    tensors = []
    for i, item in enumerate(items, start=first):
        try:
            tensors.append(transform(item))
        except (ValueError, TypeError) as err:
            if not several or isinstance(item, (str, os.PathLike)):
                raise
            # The base class: a subclass's constructor may want more than a message.
            base = TypeError if isinstance(err, TypeError) else ValueError
            raise base(f"images[{i}]: {err}") from err
    return torch.stack(tensors)


def preprocess(
    images: ImageInput | Sequence[ImageInput],
    model_or_cfg: nn.Module | dict[str, Any] | None = None,
) -> Tensor:
    """Images to a normalised batch `(B, C, H, W)` float32 for a model.

    `images` is one image or a sequence of them (a `(B, C, H, W)` tensor or a
    `(B, H, W, C)` array counts as B images). The preprocessing comes from
    the model's pretrained config (or a config dict; the official 224 defaults
    when `None`).
    """
    if model_or_cfg is None:
        cfg = default_pretrained_cfg()
    elif isinstance(model_or_cfg, dict):
        cfg = model_or_cfg
    elif isinstance(model_or_cfg, nn.Module):
        cfg = resolve_pretrained_cfg(model_or_cfg)
    else:
        raise TypeError(
            f"model_or_cfg must be a model, a preprocessing config dict or None, got a "
            f"{type(model_or_cfg).__name__}; for a preset name load the model first"
        )
    items = _as_list(images)
    return _transform_batch(EvalTransform(cfg), items, several=len(items) > 1)
