import pytest
import torch

from implicit_basis.unrolled.shrinkage import (
    selected_count,
    soft_threshold,
    soft_threshold_support_selection,
    support_fraction,
)


def soft_scalar(v: float, theta: float) -> float:
    if v > theta:
        return v - theta
    if v < -theta:
        return v + theta
    return 0.0


def support_selection_scalar(row: list[float], theta: float, count: int) -> list[float]:
    order = sorted(range(len(row)), key=lambda i: -abs(row[i]))
    top = set(order[:count])
    return [
        v if (i in top and abs(v) > theta) else soft_scalar(v, theta)
        for i, v in enumerate(row)
    ]


def test_soft_threshold_matches_scalar_loop():
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(7, 13, generator=generator, dtype=torch.float64)
    v[0, :3] = torch.tensor([0.3, -0.3, 0.0], dtype=torch.float64)
    expected = torch.tensor(
        [[soft_scalar(float(x), 0.3) for x in row] for row in v], dtype=torch.float64
    )
    torch.testing.assert_close(soft_threshold(v, 0.3), expected, rtol=0, atol=0)


def test_soft_threshold_entrywise_theta():
    v = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    theta = torch.tensor([0.5, 2.5, 0.1], dtype=torch.float64)
    expected = torch.tensor([[0.5, 0.0, 0.4]], dtype=torch.float64)
    torch.testing.assert_close(soft_threshold(v, theta), expected)


def test_soft_threshold_matches_softshrink():
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(100, generator=generator)
    expected = torch.nn.functional.softshrink(v, 0.4)
    torch.testing.assert_close(soft_threshold(v, 0.4), expected)


def test_soft_threshold_derivative_at_tie_is_zero():
    v = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    soft_threshold(v, theta).sum().backward()
    torch.testing.assert_close(v.grad, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(theta.grad, torch.tensor(0.0, dtype=torch.float64))


def test_soft_threshold_derivative_matches_softshrink_at_tie():
    v = torch.tensor([0.5, -0.5, 0.7], requires_grad=True)
    torch.nn.functional.softshrink(v, 0.5).sum().backward()
    reference = v.grad.clone()
    v.grad = None
    soft_threshold(v, 0.5).sum().backward()
    torch.testing.assert_close(v.grad, reference)


def test_soft_threshold_derivative_off_ties():
    v = torch.tensor([2.0, -2.0, 0.1], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    soft_threshold(v, theta).sum().backward()
    torch.testing.assert_close(v.grad, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))


def test_soft_threshold_theta_derivative():
    v = torch.tensor([2.0, 3.0, -2.0], dtype=torch.float64)
    theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    soft_threshold(v, theta).sum().backward()
    # -1 for each positive active entry, +1 for each negative one.
    torch.testing.assert_close(theta.grad, torch.tensor(-1.0, dtype=torch.float64))


def test_soft_threshold_gradcheck():
    generator = torch.Generator().manual_seed(2)
    v = torch.randn(20, generator=generator, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(soft_threshold, (v, theta))


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.2, 1.0])
def test_support_selection_matches_scalar_loop(fraction):
    generator = torch.Generator().manual_seed(3)
    v = torch.randn(6, 40, generator=generator, dtype=torch.float64)
    theta = 0.5
    count = selected_count(fraction, 40)
    expected = torch.tensor(
        [support_selection_scalar(row.tolist(), theta, count) for row in v],
        dtype=torch.float64,
    )
    result = soft_threshold_support_selection(v, theta, fraction)
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


def test_support_selection_never_keeps_below_threshold():
    v = torch.tensor([[0.2, 0.1, -0.05, 0.0]])
    result = soft_threshold_support_selection(v, 0.3, 1.0)
    torch.testing.assert_close(result, torch.zeros(1, 4))


def test_support_selection_gradient():
    v = torch.tensor([[3.0, -2.0, 1.0, 0.2]], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    # One entry (the 3.0) is kept; -2.0 and 1.0 are shrunk; 0.2 is zeroed.
    soft_threshold_support_selection(v, theta, 0.25).sum().backward()
    expected_v = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(v.grad, expected_v)
    # d/dtheta: +1 from -2.0 (v + theta), -1 from 1.0 (v - theta), 0 from the kept entry.
    torch.testing.assert_close(theta.grad, torch.tensor(0.0, dtype=torch.float64))


def test_support_selection_keeps_largest():
    v = torch.tensor([[3.0, -2.0, 1.0, 0.2]])
    result = soft_threshold_support_selection(v, 0.5, 0.5)
    torch.testing.assert_close(result, torch.tensor([[3.0, -2.0, 0.5, 0.0]]))


def test_support_fraction_schedule():
    fractions = [support_fraction(k, 0.012, 0.13) for k in range(1, 13)]
    expected = [min(0.012 * k, 0.13) for k in range(1, 13)]
    assert fractions == pytest.approx(expected)


def test_selected_count_exact_products():
    # 0.012 * 5 * 500 is 29.999... in floating point.
    assert selected_count(0.012 * 5, 500) == 30


def test_selected_count_floor():
    assert selected_count(0.012, 100) == 1


def test_selected_count_clipped():
    assert selected_count(1.0, 7) == 7


def test_selected_count_zero():
    assert selected_count(0.0, 100) == 0


def test_soft_threshold_float32_stays_float32():
    v = torch.randn(5)
    assert soft_threshold(v, 0.1).dtype == torch.float32


def test_support_selection_count_per_row():
    generator = torch.Generator().manual_seed(4)
    v = 10.0 + torch.rand(3, 50, generator=generator)
    result = soft_threshold_support_selection(v, 1.0, 0.1)
    kept = (result == v).sum(dim=-1)
    assert kept.tolist() == [5, 5, 5]


def test_soft_threshold_negative_theta_expands():
    # Thresholds are used as given: a negative one moves v away from zero.
    result = soft_threshold(torch.tensor([1.0, -1.0]), -0.5)
    torch.testing.assert_close(result, torch.tensor([1.5, -1.5]))
