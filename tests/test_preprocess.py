"""Evaluation preprocessing against a step-by-step Pillow + NumPy reference."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_models import photo_like, real_photos
from PIL import Image

import t2t_vit
from t2t_vit.inference.preprocess import EvalTransform

#: Tolerance of the issue: the same numbers as timm's transform, to 1e-6.
ATOL = 1e-6

MEAN = np.array(t2t_vit.IMAGENET_DEFAULT_MEAN, dtype=np.float32)
STD = np.array(t2t_vit.IMAGENET_DEFAULT_STD, dtype=np.float32)


def reference(img: Image.Image, size: int = 224, crop_pct: float = 0.9) -> np.ndarray:
    """timm's evaluation transform spelled out: shorter side to floor(size / crop_pct)
    (longer side truncated), Pillow bicubic, center crop with offsets rounded half to
    even, /255, normalise; returns (3, size, size) float32."""
    img = img.convert("RGB")
    scale = math.floor(size / crop_pct)
    w, h = img.size
    new_w, new_h = (scale, int(scale * h / w)) if w <= h else (int(scale * w / h), scale)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top = round((new_h - size) / 2)
    left = round((new_w - size) / 2)
    img = img.crop((left, top, left + size, top + size))
    a = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    a = (a - MEAN) / STD
    return a.transpose(2, 0, 1)


def test_real_photographs_match_reference_to_1e6() -> None:
    for name, path in real_photos().items():
        with Image.open(path) as img:
            expected = reference(img)
        got = t2t_vit.preprocess(path)
        assert got.shape == (1, 3, 224, 224), name
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got[0].numpy(), expected, atol=ATOL, rtol=0, err_msg=name)


@pytest.mark.parametrize(
    ("width", "height", "mode"),
    [
        (640, 480, "RGB"),  # landscape
        (333, 500, "RGB"),  # portrait
        (409, 400, "RGB"),  # long side resizes to 253: crop offset 14.5 rounds to 14
        (256, 256, "L"),
        (300, 249, "RGBA"),
        (248, 300, "P"),  # shorter side already 248: no resize
        (180, 150, "RGB"),  # upscaled
    ],
)
def test_generated_images_of_many_sizes_and_modes_match_reference(
    width: int, height: int, mode: str
) -> None:
    rgb = Image.fromarray(photo_like(width, height, seed=width * height))
    if mode == "L":
        img = rgb.convert("L")
    elif mode == "RGBA":
        alpha = Image.fromarray(photo_like(width, height, seed=7)[:, :, 0])
        img = rgb.copy()
        img.putalpha(alpha)
    elif mode == "P":
        img = rgb.quantize(colors=64)
    else:
        img = rgb
    assert img.mode == mode
    got = t2t_vit.preprocess(img)
    np.testing.assert_allclose(got[0].numpy(), reference(img), atol=ATOL, rtol=0)


def test_center_crop_rounds_half_to_even_like_torchvision() -> None:
    img = Image.fromarray(photo_like(409, 400, seed=3))
    crop = EvalTransform(t2t_vit.default_pretrained_cfg()).resize_crop(img)
    resized = img.resize((253, 248), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(crop), np.asarray(resized.crop((14, 12, 238, 236))))
    assert not np.array_equal(np.asarray(crop), np.asarray(resized.crop((15, 12, 239, 236))))


def test_resize_sizes_for_224_and_384() -> None:
    assert EvalTransform(t2t_vit.default_pretrained_cfg((224, 224))).resize_size == 248
    assert EvalTransform(t2t_vit.default_pretrained_cfg((384, 384))).resize_size == 426
    x = t2t_vit.preprocess(
        Image.fromarray(photo_like(500, 400, 1)), {**t2t_vit.default_pretrained_cfg((384, 384))}
    )
    assert x.shape == (1, 3, 384, 384)


def test_path_pil_array_and_tensors_give_the_same_batch(tmp_path: Path) -> None:
    array = photo_like(300, 260, seed=11)
    path = tmp_path / "img.png"
    Image.fromarray(array).save(path)
    chw = torch.from_numpy(array).permute(2, 0, 1)
    inputs = [str(path), path, Image.fromarray(array), array, chw, chw.float() / 255.0]
    batch = t2t_vit.preprocess(inputs)
    assert batch.shape == (6, 3, 224, 224)
    for i in range(1, 6):
        assert torch.equal(batch[i], batch[0]), i
    assert torch.equal(t2t_vit.preprocess(chw[None].repeat(2, 1, 1, 1)), batch[:2])
    assert torch.equal(t2t_vit.preprocess(np.stack([array, array])), batch[:2])


def test_grayscale_array_and_tensor_become_rgb() -> None:
    gray = photo_like(250, 260, seed=5)[:, :, 1]
    expected = reference(Image.fromarray(gray))
    for image in (gray, gray[:, :, None], torch.from_numpy(gray)[None]):
        got = t2t_vit.preprocess(image)
        np.testing.assert_allclose(got[0].numpy(), expected, atol=ATOL, rtol=0)
    # The three channels are the same gray level, normalised per channel.
    raw = got[0] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    assert torch.allclose(raw[0], raw[2], atol=1e-5)


def test_preprocessing_follows_the_model_config() -> None:
    model = t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8)
    model.pretrained_cfg = {
        "input_size": [3, 32, 32],
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "labels": "cifar-10",
    }
    img = Image.fromarray(photo_like(64, 48, seed=2))
    resized = np.asarray(img.resize((42, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    expected = ((resized[:, 5:37] / np.float32(255) - 0.5) / 0.25).transpose(2, 0, 1)
    np.testing.assert_allclose(t2t_vit.preprocess(img, model)[0].numpy(), expected, atol=ATOL)


def test_crop_larger_than_resized_image_pads_with_zeros() -> None:
    cfg = {**t2t_vit.default_pretrained_cfg((32, 32)), "crop_pct": 1.25}  # resize to 25
    img = Image.new("RGB", (25, 25), (255, 255, 255))
    x = t2t_vit.preprocess(img, cfg)[0]
    pad_value = torch.tensor(-MEAN / STD).view(3, 1)
    white = torch.tensor((1 - MEAN) / STD)
    # left/top padding (32 - 25) // 2 = 3, right/bottom 4
    assert torch.allclose(x[:, :3, :].reshape(3, -1), pad_value.expand(3, 96), atol=ATOL)
    assert torch.allclose(x[:, -4:, :].reshape(3, -1), pad_value.expand(3, 128), atol=ATOL)
    assert torch.allclose(x[:, 3:28, 3:28].reshape(3, -1).mean(1), white, atol=ATOL)


def test_missing_and_unreadable_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match=r"image file not found: '.*nope\.jpg'"):
        t2t_vit.preprocess(missing)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a JPEG")
    with pytest.raises(ValueError, match=r"cannot read image '.*broken\.jpg': not an image file"):
        t2t_vit.preprocess(bad)


def test_bad_inputs_say_what_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"a int64 NumPy array image .* has no fixed range"):
        t2t_vit.preprocess(np.zeros((8, 8, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"got shape \(8, 8, 2\)"):
        t2t_vit.preprocess(np.zeros((8, 8, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got \[-2, 1\]"):
        t2t_vit.preprocess(torch.linspace(-2, 1, 48).view(3, 4, 4))
    with pytest.raises(ValueError, match=r"\(C, H, W\) with C in 1, 3, 4, got shape \(2, 4, 4\)"):
        t2t_vit.preprocess(torch.zeros(2, 4, 4))
    with pytest.raises(TypeError, match="cannot preprocess a int; accepted: a file path"):
        t2t_vit.preprocess(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no images given"):
        t2t_vit.preprocess([])
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'; accepted: nearest"):
        EvalTransform({**t2t_vit.default_pretrained_cfg(), "interpolation": "cubic"})


def test_without_pillow_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "t2t-vit\[image\]"'):
        t2t_vit.preprocess(np.zeros((8, 8, 3), dtype=np.uint8))
