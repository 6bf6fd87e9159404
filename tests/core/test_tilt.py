"""The tilt primitive against float64 references written from TERM's definition."""
import math

import pytest
import torch

from fairseg_bench.core.tilt import TILT_EPS, log_ema_update, tilted_mean


def reference_tilted_mean(values, t):
    """(1/t) log((1/n) sum exp(t v)), or the plain mean at t = 0, in float64 Python."""
    if t == 0:
        return sum(values) / len(values)
    return math.log(sum(math.exp(t * v) for v in values) / len(values)) / t


@pytest.mark.parametrize("t", [-2.0, -0.3, 0.0, 0.1, 1.0, 5.0])
def test_tilted_mean_matches_definition(t):
    torch.manual_seed(0)
    values = torch.rand(4, 7, dtype=torch.float64) * 3
    got = tilted_mean(values, t, dim=1)
    for row, value in zip(values.tolist(), got.tolist()):
        assert value == pytest.approx(reference_tilted_mean(row, t), rel=1e-9, abs=1e-12)


def test_tilted_mean_with_mask_ignores_masked_entries():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, -50.0, 4.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    got = tilted_mean(values, 0.7, dim=1, mask=mask)
    assert got[0].item() == pytest.approx(reference_tilted_mean([1.0, 2.0], 0.7))
    assert got[1].item() == pytest.approx(reference_tilted_mean([3.0, 4.0], 0.7))


def test_empty_row_gives_nan():
    got = tilted_mean(torch.ones(2, 3), 1.0, dim=1, mask=torch.tensor([[False] * 3, [True] * 3]))
    assert math.isnan(got[0].item()) and got[1].item() == pytest.approx(1.0)


def test_limits_and_extremes():
    values = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
    # t -> 0 is continuous with the plain mean, either side of the fallback threshold
    assert tilted_mean(values, 10 * TILT_EPS).item() == pytest.approx(values.mean().item(), rel=1e-4)
    assert tilted_mean(values, 0.0).item() == values.mean().item()
    # large t tends to the max, large negative t to the min
    assert tilted_mean(values, 500.0).item() == pytest.approx(4.0, abs=0.01)
    assert tilted_mean(values, -500.0).item() == pytest.approx(0.5, abs=0.01)
    # t*v = 1e3 would overflow exp in float32; log space stays finite with a finite gradient
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    out = tilted_mean(v, 1000.0)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(v.grad).all()
    assert v.grad.tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_half_precision_is_computed_in_float32():
    assert tilted_mean(torch.ones(3, dtype=torch.float16), 1.0).dtype == torch.float32


def test_gradient_is_softmax_weighted():
    """TERM: d/dv_i of the tilted mean is softmax(t v)_i."""
    v = torch.tensor([0.2, 1.5, 0.7], dtype=torch.float64, requires_grad=True)
    tilted_mean(v, 2.0).backward()
    expected = torch.softmax(2.0 * v.detach(), 0)
    assert torch.allclose(v.grad, expected)


@pytest.mark.parametrize("gamma", [0.05, 0.2, 1.0])
def test_log_ema_update_matches_linear_update(gamma):
    state, value = 1.7, 0.4
    got = log_ema_update(torch.tensor(math.log(state), dtype=torch.float64),
                         torch.tensor(math.log(value), dtype=torch.float64), gamma)
    assert math.exp(got.item()) == pytest.approx((1 - gamma) * state + gamma * value, rel=1e-12)


def test_log_ema_update_survives_huge_exponents():
    got = log_ema_update(torch.tensor(900.0), torch.tensor(1000.0), 0.2)
    assert got.item() == pytest.approx(1000.0 + math.log(0.2), abs=1e-4)  # exp(-100) is negligible


@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5, float("nan")])
def test_log_ema_update_rejects_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        log_ema_update(torch.tensor(0.0), torch.tensor(0.0), gamma)
