"""The tilt primitive shared by every TCE variant and the Stochastic TCE sampler.

TERM's tilted mean of values ``v_1..v_n`` is ``(1/t) log((1/n) sum_i exp(t v_i))``. It is
computed in log space, ``(logsumexp(t v) - log n) / t``, so that ``t v`` of 1e3 neither
overflows nor loses the gradient, and it is valid for either sign of ``t``. As ``t -> 0`` it
tends to the plain mean, which is returned exactly for ``|t| < TILT_EPS`` (the closed form
divides by ``t`` and loses all precision there).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

TILT_EPS = 1e-6


def tilted_mean(values: Tensor, t: float, dim: int = -1, mask: Tensor | None = None) -> Tensor:
    """Tilted mean of ``values`` along ``dim`` over the entries where ``mask`` is true.

    Args:
        values: any float tensor; computed in float32 or float64 (half precision is promoted).
        t: the tilt; ``t > 0`` leans toward the largest values, ``t < 0`` toward the smallest.
        dim: the dimension to reduce.
        mask: boolean tensor of ``values``' shape; entries where it is false count nowhere.
            Rows with no true entry give NaN (callers drop them).

    Shape:
        values ``(..., n, ...)`` -> result with ``dim`` removed.
    """
    if values.dtype in (torch.float16, torch.bfloat16):
        values = values.float()
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    count = mask.sum(dim).to(values.dtype)
    if abs(t) < TILT_EPS:
        return torch.where(mask, values, torch.zeros_like(values)).sum(dim) / count
    scaled = torch.where(mask, values * t, torch.full_like(values, -math.inf))
    return (torch.logsumexp(scaled, dim) - torch.log(count)) / t


def log_ema_update(log_state: Tensor, log_value: Tensor, gamma: float) -> Tensor:
    """``log((1 - gamma) * exp(log_state) + gamma * exp(log_value))`` without leaving log space.

    This is line 7 of Algorithm 1 (``L~_c <- (1-γ) L~_c + γ e^{t L_B}``) kept as ``log L~_c``,
    so that ``t L_B`` in the hundreds never overflows.
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    if gamma == 1.0:
        return torch.as_tensor(log_value, dtype=log_state.dtype)
    return torch.logaddexp(log_state + math.log1p(-gamma), log_value + math.log(gamma))
