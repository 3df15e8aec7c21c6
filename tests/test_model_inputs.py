"""A batch the model cannot take is refused in one line naming its dtype, device or type,
the model's, and what to do; inputs autocast handles still run."""

from __future__ import annotations

import re

import pytest
import torch
from inference_models import tiny_model
from PIL import Image

import t2t_vit

STEMS = ["transformer", "performer", "patch"]


def assert_refused(model: torch.nn.Module, x: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=f"^{re.escape(message)}$"):
        model(x)


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_float_batch_of_another_dtype_names_both_dtypes(stem: str, dtype: torch.dtype) -> None:
    assert_refused(
        tiny_model(stem),
        torch.rand(2, 3, 32, 32).to(dtype),
        f"input dtype {dtype} does not match the model's torch.float32; pass x.float(), "
        f"convert the model with model.to({dtype}), or run under torch.autocast",
    )


@pytest.mark.parametrize("stem", STEMS)
def test_a_uint8_image_batch_points_to_preprocess(stem: str) -> None:
    assert_refused(
        tiny_model(stem),
        torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8),
        "input is a torch.uint8 batch but the model takes normalised torch.float32 images; "
        "t2t_vit.preprocess(images, model) scales and normalises them",
    )


def test_other_non_float_batches_are_refused() -> None:
    for dtype in (torch.int64, torch.bool):
        assert_refused(
            tiny_model(),
            torch.zeros(1, 3, 32, 32, dtype=dtype),
            f"input dtype {dtype} is not floating point; the model takes normalised "
            "torch.float32 images: use t2t_vit.preprocess(images, model), or "
            "x.to(torch.float32) for values already normalised",
        )


def test_a_bfloat16_model_names_its_dtype_for_a_float32_batch() -> None:
    model = tiny_model().to(torch.bfloat16)
    assert_refused(
        model,
        torch.rand(1, 3, 32, 32),
        "input dtype torch.float32 does not match the model's torch.bfloat16; pass "
        "x.to(torch.bfloat16), convert the model with model.to(torch.float32), or run under "
        "torch.autocast",
    )
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model(x.to(torch.bfloat16)), model(x.to(torch.bfloat16)))


@pytest.mark.parametrize("stem", STEMS)
def test_half_inputs_under_autocast_run_as_their_float32_values(stem: str) -> None:
    model = tiny_model(stem)
    x = torch.rand(2, 3, 32, 32).to(torch.float16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        from_half = model(x)
        from_float = model(x.float())
    assert from_half.dtype == torch.bfloat16
    # To bfloat16's resolution (8 significant bits: 4e-3 at these magnitudes); the Performer
    # stem rounds once more on the half path.
    torch.testing.assert_close(from_half.float(), from_float.float(), atol=4e-3, rtol=0)


def test_float64_under_autocast_is_refused_as_autocast_does_not_cast_it() -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_refused(
            tiny_model(),
            torch.rand(1, 3, 32, 32, dtype=torch.float64),
            "autocast does not cast a torch.float64 input for the model; pass x.float()",
        )


def test_an_input_on_another_device_names_both_devices() -> None:
    model = tiny_model().to("meta")
    assert_refused(
        model,
        torch.rand(1, 3, 32, 32),
        "input is on cpu but the model is on meta; pass x.to('meta') or move the model "
        "with model.to('cpu')",
    )


def test_a_single_image_and_a_pil_image_say_what_to_pass() -> None:
    model = tiny_model()
    assert_refused(
        model,
        torch.rand(3, 32, 32),
        "expected an image batch of shape (B, 3, H, W), got a 3-D tensor of shape "
        "(3, 32, 32) (for one image pass x[None])",
    )
    assert_refused(
        model,
        Image.new("RGB", (32, 32)),
        "the model takes a (B, 3, H, W) tensor, got a Image; t2t_vit.preprocess(images, "
        "model) makes one from images",
    )
    # The way out gives the model's answer.
    x = t2t_vit.preprocess(Image.new("RGB", (32, 32)), model)
    assert model(x).shape == (1, 10)
