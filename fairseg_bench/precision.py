"""Which precision a run trains and evaluates in: chosen by the hardware under ``train.amp: auto``.

bfloat16 autocast halves a CPU step only where oneDNN runs it natively (x86 with AVX512-BF16 or
AMX, or an Arm CPU with the BF16 extension); everywhere else oneDNN emulates it, ~10× slower
than float32 (``benchmarks/bench_step.py``). So ``auto`` (the presets' default) takes:

- CPU: bfloat16 where it is native, float32 (channels_last) elsewhere;
- CUDA: bfloat16 where the GPU supports it natively (Ampere and later), else float16 with the
  GradScaler;
- MPS and other devices: float32.

The other values are explicit: ``bf16`` (bfloat16 on every device: on a CPU that emulates it, it
trains, with one warning saying what it costs), ``true`` (float16 + GradScaler on CUDA, float32
elsewhere) and ``false`` (float32). What ran is recorded in every ``metrics.json``
(:meth:`Precision.record`). The hardware is asked through torch (cpuinfo and oneDNN), never by
parsing ``/proc/cpuinfo``; ``ONEDNN_MAX_CPU_ISA`` below AVX512-BF16 counts as emulated, as oneDNN
then runs it.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

__all__ = ["Precision", "resolve_precision", "cpu_bf16_native", "cpu_isa", "cuda_bf16_native",
           "emulation_warning"]

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include native bfloat16 instructions
_BF16_ISAS = ("ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2")
_warned: set[str] = set()


def _onednn_cap_allows_bf16() -> bool:
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    return not cap or cap in _BF16_ISAS


def cpu_isa() -> dict:
    """The CPU's vector extensions as torch sees them: ``{"avx2", "avx512", "avx512_bf16", "amx"}``
    booleans and ``capability`` (the kernels ATen dispatches to: ``AVX512``, ``AVX2``, ``DEFAULT``...)."""
    probe = torch.cpu
    return {"capability": torch.backends.cpu.get_cpu_capability(),
            "avx2": bool(probe._is_avx2_supported()), "avx512": bool(probe._is_avx512_supported()),
            "avx512_bf16": bool(probe._is_avx512_bf16_supported()), "amx": bool(probe._is_amx_tile_supported())}


def cpu_bf16_native() -> bool:
    """True where oneDNN runs bfloat16 convolutions natively on this CPU (see the module docstring)."""
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False  # oneDNN's own check: false on AVX2-only x86, or when ONEDNN_MAX_CPU_ISA caps it
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        isa = cpu_isa()  # oneDNN also says yes on plain AVX512, where it emulates bfloat16
        return (isa["avx512_bf16"] or isa["amx"]) and _onednn_cap_allows_bf16()
    return True  # Arm: oneDNN's check is the BF16 extension itself


def cuda_bf16_native(device: torch.device) -> bool:
    """True on GPUs with native bfloat16 (compute capability 8.0 and later)."""
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))


@dataclass(frozen=True)
class Precision:
    """The autocast dtype of a run on one device, and whether the device runs it natively."""

    amp: bool | str  # what the config asked for
    device: str  # the device type: cpu, cuda, mps
    dtype: torch.dtype | None  # autocast dtype; None is float32
    native: bool  # whether the device runs ``dtype`` natively (float32 always does)

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[self.dtype]

    @property
    def grad_scaler(self) -> bool:
        """float16 needs the GradScaler against gradient underflow; bfloat16 has float32's range."""
        return self.dtype == torch.float16

    def record(self) -> dict:
        """What ``metrics.json`` keeps: ``{"amp", "autocast", "native", "grad_scaler", "device"}``."""
        return {"amp": self.amp, "autocast": self.name, "native": self.native, "grad_scaler": self.grad_scaler,
                "device": self.device}

    def describe(self) -> str:
        """One line, e.g. ``bfloat16 (native)`` or ``bfloat16 (emulated: ~10x slower than float32)``."""
        if self.dtype is None:
            return "float32"
        return f"{self.name} ({'native' if self.native else 'emulated: ~10x slower than float32'})"


def _native(dtype: torch.dtype | None, device: torch.device) -> bool:
    if dtype is None:
        return True
    if device.type == "cuda":
        return dtype == torch.float16 or cuda_bf16_native(device)
    if device.type == "cpu":
        return dtype == torch.bfloat16 and cpu_bf16_native()
    return False


def _auto_dtype(device: torch.device) -> torch.dtype | None:
    if device.type == "cuda":
        return torch.bfloat16 if cuda_bf16_native(device) else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_native() else None
    return None


def resolve_precision(amp: bool | str, device: torch.device) -> Precision:
    """The precision ``train.amp`` gives on ``device`` (``auto``, ``bf16``, ``true`` or ``false``)."""
    if amp == "auto":
        dtype = _auto_dtype(device)
    elif amp == "bf16":
        dtype = torch.bfloat16
    elif amp is True:
        dtype = torch.float16 if device.type == "cuda" else None
    else:
        dtype = None
    return Precision(amp, device.type, dtype, _native(dtype, device))


def emulation_warning(precision: Precision) -> str | None:
    """One line for a precision the device emulates, the first time this process meets it; else None."""
    key = f"{precision.device}:{precision.name}"
    if precision.native or key in _warned:
        return None
    _warned.add(key)
    return (f"train.amp: {precision.amp} runs {precision.describe()} on this {precision.device}; "
            f"train.amp: auto would train in {resolve_precision('auto', torch.device(precision.device)).name} here")
