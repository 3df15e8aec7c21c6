"""The model needs only the runtime dependencies; image handling names its extra."""

from __future__ import annotations

import subprocess
import sys

BLOCK_OPTIONAL = (
    "import sys\n"
    "for name in ('numpy', 'PIL', 'matplotlib', 'tqdm'):\n"
    "    sys.modules[name] = None  # makes `import name` raise ImportError\n"
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_OPTIONAL + code], capture_output=True, text=True, timeout=120
    )


def test_model_builds_and_runs_without_optional_packages() -> None:
    result = _run(
        "import torch, t2t_vit\n"
        "m = t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8,"
        " num_classes=3).eval()\n"
        "print(tuple(m(torch.rand(1, 3, 32, 32)).shape))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 3)"


def test_preprocessing_without_pillow_names_the_extra() -> None:
    result = _run(
        "import torch, t2t_vit\n"
        "try:\n"
        "    t2t_vit.preprocess(torch.rand(3, 40, 40))\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install ".[image]" in a clone of t2t-vit' in result.stdout


def test_the_core_never_imports_timm_and_its_module_names_the_extra() -> None:
    result = _run(
        "sys.modules['timm'] = None\n"
        "import torch, t2t_vit\n"
        "t2t_vit.create_model('t2t-vit-7', features_only=True)\n"
        "try:\n"
        "    import t2t_vit.timm\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        't2t_vit.timm needs timm: pip install ".[timm]" in a clone of t2t-vit '
        '(pip install "t2t-vit[timm]" once it is on PyPI)'
    )
