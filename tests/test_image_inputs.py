"""Every image a user can hand in reaches the model as the same picture as its 8-bit RGB
version, or is refused with one line that says what is ambiguous and what to pass.

References are built independently of the library: the 8-bit picture the input stands for,
run through `reference` (timm's evaluation transform spelled out in Pillow and NumPy).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_models import colour_model, photo_like
from PIL import Image, ImageCms
from test_preprocess import ATOL, MEAN, STD, reference

import t2t_vit

WIDTH, HEIGHT = 150, 130
BASE = photo_like(WIDTH, HEIGHT, seed=4)  # (H, W, 3) uint8, the picture itself
GRAY = np.asarray(Image.fromarray(BASE).convert("L"))  # (H, W) uint8
ALPHA = (128 + photo_like(WIDTH, HEIGHT, seed=9)[:, :, 0] // 2).astype(np.uint8)  # 128..255
RNG = np.random.default_rng(0)
# 16-bit samples that stand for GRAY: g * 257 is g exactly; +-128 still rounds to g.
GRAY16 = (GRAY.astype(np.int64) * 257 + RNG.integers(-128, 129, GRAY.shape)).clip(0, 65535)
GRAY16 = GRAY16.astype(np.uint16)


def got(image: object) -> np.ndarray:
    """The library's preprocessed (3, 224, 224) array for one image."""
    return t2t_vit.preprocess(image)[0].numpy()  # type: ignore[arg-type]


def expected(picture: np.ndarray) -> np.ndarray:
    """The reference (3, 224, 224) array of an 8-bit picture, (H, W) or (H, W, 3)."""
    return reference(Image.fromarray(picture))


def to_levels(x: np.ndarray) -> np.ndarray:
    """A preprocessed (3, H, W) array back to 0..255 levels, to state tolerances in levels."""
    return (x * STD[:, None, None] + MEAN[:, None, None]) * 255.0


def assert_refused(image: object, message: str, error: type[Exception] = ValueError) -> None:
    """`preprocess(image)` raises `error` with exactly `message`."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        t2t_vit.preprocess(image)  # type: ignore[arg-type]


def bits(img: Image.Image) -> np.ndarray:
    """A mode-1 image as 0/255 levels."""
    return np.asarray(img).astype(np.uint8) * 255


# -- Pillow modes ----------------------------------------------------------------------

_L = Image.fromarray(GRAY)
_RGB = Image.fromarray(BASE)
_LA = Image.merge("LA", (_L, Image.fromarray(ALPHA)))
_RGBA = Image.merge("RGBA", (*_RGB.split(), Image.fromarray(ALPHA)))
_P = _RGB.quantize(colors=64)
_PA = _P.convert("PA")
_PA.putalpha(Image.fromarray(ALPHA))
_ONE = _L.convert("1", dither=Image.Dither.NONE)


def _i16(mode: str) -> Image.Image:
    dtype = {"I;16B": ">u2", "I;16L": "<u2"}.get(mode, "=u2")
    return Image.frombytes(mode, (WIDTH, HEIGHT), GRAY16.astype(dtype).tobytes())


# mode -> (the image, the 8-bit picture it stands for)
EXACT_MODES: dict[str, Callable[[], tuple[Image.Image, np.ndarray]]] = {
    "1": lambda: (_ONE, bits(_ONE)),
    "L": lambda: (_L, GRAY),
    "LA": lambda: (_LA, GRAY),  # alpha dropped
    "P": lambda: (_P, np.asarray(_P.convert("RGB"))),
    "PA": lambda: (_PA, np.asarray(_P.convert("RGB"))),  # the palette colours, alpha dropped
    "I;16": lambda: (_i16("I;16"), GRAY),
    "I;16B": lambda: (_i16("I;16B"), GRAY),
    "I;16L": lambda: (_i16("I;16L"), GRAY),
    "I;16N": lambda: (_i16("I;16N"), GRAY),
    "F": lambda: (Image.fromarray(GRAY.astype(np.float32) / 255), GRAY),
    "RGB": lambda: (_RGB, BASE),
    "RGBA": lambda: (_RGBA, BASE),  # alpha dropped
    "RGBX": lambda: (_RGB.convert("RGBX"), BASE),
    "CMYK": lambda: (_RGB.convert("CMYK"), BASE),
}


@pytest.mark.parametrize("mode", list(EXACT_MODES))
def test_pillow_mode_reaches_the_model_as_its_8bit_picture_to_1e6(mode: str) -> None:
    img, picture = EXACT_MODES[mode]()
    assert img.mode == mode
    np.testing.assert_allclose(got(img), expected(picture), atol=ATOL, rtol=0)


# Modes whose 8 bits cannot hold every RGB colour: exact to their own conversion to RGB
# (Pillow's, or LittleCMS's for LAB), and within a stated number of levels of the picture
# they were made from (measured: YCbCr 4, HSV 6, premultiplied alpha 3; LAB clips saturated
# colours, max 29 levels, mean 1.1).
_LAB_TO_SRGB = ImageCms.buildTransform(
    ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
)
LOSSY_MODES: dict[str, tuple[Callable[[], Image.Image], Callable[[Image.Image], Image.Image]]] = {
    "YCbCr": (lambda: _RGB.convert("YCbCr"), lambda img: img.convert("RGB")),
    "HSV": (lambda: _RGB.convert("HSV"), lambda img: img.convert("RGB")),
    "LAB": (lambda: _RGB.convert("LAB"), lambda img: ImageCms.applyTransform(img, _LAB_TO_SRGB)),
    "RGBa": (lambda: _RGBA.convert("RGBa"), lambda img: img.convert("RGBA").convert("RGB")),
}
LOSSY_MAX_LEVELS = {"YCbCr": 5.0, "HSV": 7.0, "LAB": 40.0, "RGBa": 4.0}
LOSSY_MEAN_LEVELS = {"YCbCr": 1.5, "HSV": 1.0, "LAB": 1.5, "RGBa": 1.0}


@pytest.mark.parametrize("mode", list(LOSSY_MODES))
def test_lossy_colour_modes_reach_the_model_as_their_rgb_conversion(mode: str) -> None:
    make, to_rgb = LOSSY_MODES[mode]
    img = make()
    assert img.mode == mode
    x = got(img)
    np.testing.assert_allclose(x, expected(np.asarray(to_rgb(img))), atol=ATOL, rtol=0)
    diff = np.abs(to_levels(x) - to_levels(expected(BASE)))
    assert diff.max() <= LOSSY_MAX_LEVELS[mode]
    assert diff.mean() <= LOSSY_MEAN_LEVELS[mode]


def test_premultiplied_la_reaches_the_model_as_its_gray_picture_within_3_levels() -> None:
    img = _LA.convert("La")
    assert img.mode == "La"
    diff = np.abs(to_levels(got(img)) - to_levels(expected(GRAY)))
    assert diff.max() <= 3.0
    np.testing.assert_allclose(got(img), got(img.convert("LA")), atol=ATOL, rtol=0)


def test_32bit_integer_mode_i_is_refused_with_what_to_pass() -> None:
    img = Image.fromarray(GRAY.astype(np.int32))
    assert img.mode == "I"
    assert_refused(
        img,
        f"a mode 'I' image (32-bit integers, here {GRAY.min()}..{GRAY.max()}) has no fixed "
        "range; pass img.convert('L') for 0..255 levels or img.convert('I;16') for 0..65535",
    )
    # Both ways out work and give the 8-bit picture.
    np.testing.assert_allclose(got(img.convert("L")), expected(GRAY), atol=ATOL, rtol=0)


def test_float_mode_f_outside_0_1_is_refused_with_what_to_pass() -> None:
    img = Image.fromarray(GRAY.astype(np.float32))  # 0..255 levels as floats
    assert_refused(
        img,
        f"a mode 'F' image must hold values in [0, 1], got [{GRAY.min()}, {GRAY.max()}]; "
        "pass img.convert('L') for 0..255 levels",
    )
    np.testing.assert_allclose(got(img.convert("L")), expected(GRAY), atol=ATOL, rtol=0)


# -- files ---------------------------------------------------------------------------


def test_16bit_grayscale_png_reaches_the_model_as_its_8bit_picture(tmp_path: Path) -> None:
    # Before the fix Pillow's conversion clipped the samples: almost every pixel white.
    Image.fromarray(GRAY16).save(tmp_path / "gray16.png")
    Image.fromarray(GRAY).save(tmp_path / "gray8.png")
    with Image.open(tmp_path / "gray16.png") as img:
        assert img.mode in ("I;16", "I")  # Pillow 10+ / older
    x16, x8 = got(tmp_path / "gray16.png"), got(tmp_path / "gray8.png")
    np.testing.assert_allclose(x16, x8, atol=ATOL, rtol=0)
    np.testing.assert_allclose(x16, expected(GRAY), atol=ATOL, rtol=0)
    crop = t2t_vit.EvalTransform(t2t_vit.default_pretrained_cfg()).resize_crop(
        tmp_path / "gray16.png"
    )
    assert (np.asarray(crop) == 255).mean() < 0.01


def test_16bit_pgm_that_pillow_opens_as_mode_i_is_read_as_16bit(tmp_path: Path) -> None:
    Image.fromarray(GRAY16).save(tmp_path / "gray16.pgm")
    with Image.open(tmp_path / "gray16.pgm") as img:
        raw_mode = img.mode
    loaded = t2t_vit.load_image(tmp_path / "gray16.pgm")
    assert (raw_mode, loaded.mode) in (("I", "I;16"), ("I;16", "I;16"))
    assert np.array_equal(np.asarray(loaded), GRAY16)
    np.testing.assert_allclose(got(tmp_path / "gray16.pgm"), expected(GRAY), atol=ATOL, rtol=0)


def test_a_refused_file_is_named_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "ints.tif"
    Image.fromarray(GRAY.astype(np.int32)).save(path)
    with pytest.raises(ValueError, match=r"^image '.*ints\.tif': a mode 'I' image \(32-bit"):
        t2t_vit.preprocess(path)


def test_a_folder_is_called_a_folder(tmp_path: Path) -> None:
    assert_refused(
        tmp_path,
        f"{str(tmp_path)!r} is a folder, not an image file; pass the image files in it",
    )


# -- NumPy arrays and tensors -----------------------------------------------------------

# dtype -> values standing for BASE.
_UNIT = BASE.astype(np.float64) / 255
ACCEPTED_ARRAYS: dict[str, np.ndarray] = {
    "uint8": BASE,
    "uint16": (BASE.astype(np.int64) * 257 + RNG.integers(-128, 129, BASE.shape)).clip(0, 65535),
    "float16": _UNIT,
    "float32": _UNIT,
    "float64": _UNIT,
}


@pytest.mark.parametrize("dtype", list(ACCEPTED_ARRAYS))
def test_numpy_array_of_each_accepted_dtype_is_its_8bit_picture(dtype: str) -> None:
    array = ACCEPTED_ARRAYS[dtype].astype(dtype)
    np.testing.assert_allclose(got(array), expected(BASE), atol=ATOL, rtol=0)
    # One channel, (H, W) and (H, W, 1), is the gray picture.
    gray = np.asarray(Image.fromarray(BASE).convert("L"))
    gray_values = {"uint8": gray, "uint16": gray.astype(np.uint16) * 257}.get(
        dtype, gray.astype(np.float64) / 255
    )
    for layout in (gray_values, gray_values[:, :, None]):
        np.testing.assert_allclose(got(layout.astype(dtype)), expected(gray), atol=ATOL, rtol=0)


_TORCH_ACCEPTED = ["uint8", "uint16", "float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("dtype", _TORCH_ACCEPTED)
def test_tensor_of_each_accepted_dtype_is_its_8bit_picture(dtype: str) -> None:
    torch_dtype = getattr(torch, dtype)
    if dtype == "uint16":
        values = torch.from_numpy(ACCEPTED_ARRAYS["uint16"].astype(np.int32))
    elif dtype == "uint8":
        values = torch.from_numpy(BASE.copy())
    else:
        values = torch.from_numpy(_UNIT)
    chw = values.permute(2, 0, 1).to(torch_dtype)
    x = got(chw)
    # bfloat16 keeps 8 significant bits, so v / 255 can come back one level off.
    if dtype == "bfloat16":
        diff = np.abs(to_levels(x) - to_levels(expected(BASE)))
        assert diff.max() <= 1.5  # one level, blurred by the bicubic resize
        # ... and exactly the picture bfloat16 rounds to.
        rounded = (chw.float() * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(x, expected(rounded), atol=ATOL, rtol=0)
    else:
        np.testing.assert_allclose(x, expected(BASE), atol=ATOL, rtol=0)


def test_bool_array_and_tensor_are_black_and_white() -> None:
    mask = GRAY > 128
    picture = mask.astype(np.uint8) * 255
    np.testing.assert_allclose(got(mask), expected(picture), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got(torch.from_numpy(mask)[None]), expected(picture), atol=ATOL)


def test_alpha_is_dropped_for_arrays_and_tensors_as_for_pil_images() -> None:
    rgba = np.concatenate([BASE, ALPHA[:, :, None]], axis=2)
    want = expected(BASE)
    for image in (rgba, torch.from_numpy(rgba).permute(2, 0, 1), Image.fromarray(rgba)):
        np.testing.assert_allclose(got(image), want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint32", "uint64"])
def test_integer_arrays_without_a_fixed_range_are_refused(dtype: str) -> None:
    array = (GRAY // 2).astype(dtype)  # 0..127 fits every integer dtype
    lo, hi = int(array.min()), int(array.max())
    assert_refused(
        array,
        f"a {dtype} NumPy array image (values {lo}..{hi}) has no fixed range; pass uint8 "
        "for 0..255 levels, uint16 for 0..65535, or floats in [0, 1]",
    )


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint32", "uint64"])
def test_integer_tensors_without_a_fixed_range_are_refused(dtype: str) -> None:
    values = GRAY // 2  # 0..127 fits every integer dtype
    x = torch.from_numpy(values.astype(np.int64)).to(getattr(torch, dtype))[None]
    lo, hi = int(values.min()), int(values.max())
    assert_refused(
        x,
        f"a torch.{dtype} tensor image (values {lo}..{hi}) has no fixed range; pass uint8 "
        "for 0..255 levels, uint16 for 0..65535, or floats in [0, 1]",
    )


def test_float_values_outside_0_1_or_not_finite_are_refused() -> None:
    assert_refused(
        BASE.astype(np.float32),
        f"a float NumPy array image must hold values in [0, 1], got [{BASE.min()}, "
        f"{BASE.max()}]; divide by 255 if it holds 0..255 levels",
    )
    nan = _UNIT.copy()
    nan[3, 4, 1] = np.nan
    assert_refused(
        torch.from_numpy(nan).permute(2, 0, 1),
        "a float tensor image holds NaN or infinite values; an image needs finite values",
    )


def test_complex_values_are_refused() -> None:
    assert_refused(
        np.zeros((8, 8), dtype=np.complex64),
        "a NumPy array image must be uint8, uint16, bool or floating point, got complex64",
    )


def test_wrong_layouts_say_how_to_fix_them() -> None:
    assert_refused(
        np.zeros((3, 40, 50), dtype=np.uint8),
        "a NumPy array image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (channels "
        "last), got shape (3, 40, 50); for channels first (C, H, W) pass "
        "array.transpose(1, 2, 0)",
    )
    assert_refused(
        torch.zeros(40, 50, 3, dtype=torch.uint8),
        "a tensor image must be (C, H, W) with C in 1, 3, 4, got shape (40, 50, 3); "
        "for channels last (H, W, C) pass x.permute(2, 0, 1)",
    )
    assert_refused(
        np.zeros((0, 5, 3), dtype=np.uint8),
        "a NumPy array image must not be empty, got shape (0, 5, 3)",
    )


def test_the_bad_image_among_several_is_named_by_its_index() -> None:
    with pytest.raises(ValueError, match=r"^images\[2\]: a int64 NumPy array image"):
        t2t_vit.preprocess([BASE, BASE, GRAY.astype(np.int64)])


def test_a_preset_name_instead_of_a_model_is_refused() -> None:
    with pytest.raises(TypeError) as info:
        t2t_vit.preprocess(BASE, "t2t-vit-14")  # type: ignore[arg-type]
    assert str(info.value) == (
        "model_or_cfg must be a model, a preprocessing config dict or None, got a str; "
        "for a preset name load the model first"
    )


def test_configs_that_would_give_wrong_numbers_are_refused() -> None:
    cfg = t2t_vit.default_pretrained_cfg()
    with pytest.raises(
        ValueError, match=r"std finite and positive, got .*std=\[0\.0, 1\.0, 1\.0\]"
    ):
        t2t_vit.EvalTransform({**cfg, "std": [0.0, 1.0, 1.0]})
    with pytest.raises(ValueError, match=r"positive height and width, got \[0, 224\]"):
        t2t_vit.EvalTransform({**cfg, "input_size": [3, 0, 224]})


def test_predict_names_the_bad_image_by_its_index_across_batches() -> None:
    images = [BASE] * 5 + [GRAY.astype(np.int32)]
    with pytest.raises(ValueError, match=r"^images\[5\]: a int32 NumPy array image"):
        t2t_vit.predict(colour_model(), images, batch_size=2)


@pytest.mark.parametrize("size", [(0, 0), (0, 10), (10, 0)])
def test_an_image_without_pixels_is_refused_with_its_size(size: tuple[int, int]) -> None:
    w, h = size
    with pytest.raises(
        ValueError,
        match=f"^the image has no pixels \\({w}x{h}\\); pass an image of at least 1x1$",
    ):
        t2t_vit.preprocess(Image.new("RGB", size))


def test_a_closed_pil_image_is_called_closed(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(BASE).save(path)
    for img in (Image.open(path), Image.fromarray(GRAY)):
        img.close()
        with pytest.raises(
            ValueError,
            match=r"^the PIL image is closed \(img\.close\(\) or the end of a `with "
            r"Image\.open\(\.\.\.\)` block released its pixels\); pass it before closing it, "
            r"img\.copy\(\), or the file path$",
        ):
            t2t_vit.preprocess(img, colour_model() if img.mode == "RGB" else None)


def test_exif_orientation_is_ignored_as_timm_does_and_exif_transpose_honours_it(
    tmp_path: Path,
) -> None:
    from PIL import ImageOps

    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate 90 degrees
    Image.fromarray(BASE).save(path, exif=exif, quality=95)
    stored = np.asarray(Image.open(path).convert("RGB"))  # the pixels as stored
    assert torch.equal(t2t_vit.preprocess(path), t2t_vit.preprocess(Image.fromarray(stored)))
    upright = ImageOps.exif_transpose(Image.open(path))
    assert upright.size == (HEIGHT, WIDTH)
    assert torch.equal(
        t2t_vit.preprocess(upright), t2t_vit.preprocess(Image.fromarray(np.rot90(stored, -1)))
    )
    # The behaviour is documented where users look.
    assert "EXIF orientation is ignored" in (t2t_vit.load_image.__doc__ or "")
