"""What the CPU computes natively: bf16 support, its detection and the emulation warning."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "autocast_on_cpu",
    "cpu_flags",
    "cpu_has_amx",
    "cpu_has_native_bf16",
    "warn_if_bf16_emulated",
]

#: The `/proc/cpuinfo` flags that give a CPU bf16 dot products (x86: AVX512_BF16 and
#: AMX tiles; Arm: the BF16 extension).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from `/proc/cpuinfo` (`None` where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86 names them `flags`, Arm `Features`.
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


@functools.cache
def cpu_has_native_bf16() -> bool | None:
    """Whether the CPU has bf16 dot-product instructions (AVX512_BF16, AMX-BF16 or Arm BF16).

    `None` when it cannot be told (no `/proc/cpuinfo` and no answer from torch).
    """
    flags = cpu_flags()
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    answers = [getattr(torch.cpu, p)() for p in probes if hasattr(torch.cpu, p)]
    if not answers or torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return None
    return any(bool(a) for a in answers)


@functools.cache
def cpu_has_amx() -> bool:
    """Whether the CPU has AMX tiles with bf16 (Intel Sapphire Rapids and later)."""
    flags = cpu_flags()
    if flags is not None:
        return "amx_bf16" in flags
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


_warned: list[bool] = []


def autocast_on_cpu() -> bool:
    """Whether `torch.autocast` is active for the CPU (in any dtype)."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


def _autocast_bf16_on_cpu() -> bool:
    if not autocast_on_cpu():
        return False
    try:
        return torch.get_autocast_dtype("cpu") == torch.bfloat16
    except AttributeError:  # torch < 2.4
        return torch.get_autocast_cpu_dtype() == torch.bfloat16


def warn_if_bf16_emulated(x: Tensor) -> None:
    """Warn once per process when bf16 runs on a CPU that only emulates it.

    Such a CPU (AVX2, or AVX-512 without AVX512_BF16) converts every bf16 operand to
    fp32 and back, so a bf16 model or bf16 autocast is slower there than fp32; without
    the warning that slowdown would be silent.
    """
    if _warned or isinstance(x, torch.fx.Proxy) or torch.compiler.is_compiling():
        return  # FX tracing and compiling see no values, and warn at run time instead
    if x.device.type != "cpu":
        return
    if x.dtype != torch.bfloat16 and not _autocast_bf16_on_cpu():
        return
    if cpu_has_native_bf16() is not False:
        return
    _warned.append(True)
    warnings.warn(
        "bf16 is emulated on this CPU (no avx512_bf16 or amx_bf16) and runs slower than "
        "fp32 here; run the model in fp32 on this machine (model.float(), no autocast)",
        RuntimeWarning,
        stacklevel=3,
    )
