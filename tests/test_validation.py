"""Input checks of ``sparse_code`` and the problem constructors.

Every invalid input must raise before any solve, with a message that names
the argument, the received value and the fix. Each message is pinned here.
Valid but unusual inputs (broadcasting, empty batches, half precision) are
checked for the shapes and dtypes they produce.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis.inputs import prepare_codes, prepare_inputs

BACKEND = "cvxpylayers"


def data(m=6, k=10, B=None, seed=0, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    D = torch.tensor(rng.standard_normal((m, k)), dtype=dtype)
    shape = (m,) if B is None else (B, m)
    y = torch.tensor(rng.standard_normal(shape), dtype=dtype)
    return y, D


@pytest.fixture
def no_solve(monkeypatch):
    """Make any solve fail loudly, to show that a check raised before it."""

    def solve(*args, **kwargs):
        raise AssertionError("the backend was called")

    backend = ib.diff.get_backend(BACKEND, ib.Lasso(1.0))
    monkeypatch.setattr(type(backend), "solve", solve)


# ---------------------------------------------------------------------------
# Shapes and broadcasting


def test_shared_D_batched_y():
    y, D = data(B=3)
    batch = prepare_inputs(y, D, ib.Lasso(0.5))
    assert batch.B == 3
    assert batch.shared_D
    assert batch.batched


def test_batched_D_unbatched_y():
    _, D = data()
    y = torch.randn(6, dtype=torch.float64)
    D3 = torch.stack([D, 2 * D, 3 * D])
    z = ib.sparse_code(y, D3, ib.Lasso(0.5), backend=BACKEND)
    assert z.shape == (3, 10)
    assert_close(z[1], ib.sparse_code(y, 2 * D, ib.Lasso(0.5), backend=BACKEND))


def test_per_sample_lam_makes_batch():
    y, D = data()
    lam = torch.tensor([0.5, 1.0], dtype=torch.float64)
    z = ib.sparse_code(y, D, ib.Lasso(lam), backend=BACKEND)
    assert z.shape == (2, 10)
    assert_close(z[1], ib.sparse_code(y, D, ib.Lasso(1.0), backend=BACKEND))


def test_unbatched_result_shape():
    y, D = data()
    batch = prepare_inputs(y, D, ib.Lasso(0.5))
    assert batch.B == 1
    assert not batch.batched


def test_y_three_dims(no_solve):
    y, D = data(B=2)
    with pytest.raises(ValueError, match=r"y must have shape \(m,\) or \(B, m\); got \(2, 1, 6\)"):
        ib.sparse_code(y[:, None], D, ib.Lasso(0.5), backend=BACKEND)


def test_D_one_dim(no_solve):
    y, D = data()
    with pytest.raises(ValueError, match=r"D must have shape \(m, k\) or \(B, m, k\).*got \(10,\)"):
        ib.sparse_code(y, D[0], ib.Lasso(0.5), backend=BACKEND)


def test_rows_mismatch(no_solve):
    y, D = data()
    with pytest.raises(ValueError, match=r"y has 6 samples per signal but D has 10 rows.*transpose D"):
        ib.sparse_code(y, D.T, ib.Lasso(0.5), backend=BACKEND)


def test_empty_dictionary(no_solve):
    y, _ = data()
    with pytest.raises(ValueError, match=r"D must have at least one row and one atom; got shape \(6, 0\)"):
        ib.sparse_code(y, torch.zeros(6, 0, dtype=torch.float64), ib.Lasso(0.5), backend=BACKEND)


def test_batch_sizes_y_D(no_solve):
    y, D = data(B=2)
    with pytest.raises(ValueError, match=r"batch sizes do not match \(y: 2, D: 3\)"):
        ib.sparse_code(y, D.expand(3, -1, -1), ib.Lasso(0.5), backend=BACKEND)


def test_batch_sizes_y_lam(no_solve):
    y, D = data(B=5)
    lam = torch.ones(3, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"batch sizes do not match \(y: 5, per-sample parameters: 3\)"
    ):
        ib.sparse_code(y, D, ib.Lasso(lam), backend=BACKEND)


def test_lam_two_dims():
    with pytest.raises(ValueError, match=r"lam must have shape \(\) or \(B,\); got \(5, 1\).*reshape"):
        ib.Lasso(torch.ones(5, 1))


def test_parameters_disagree(no_solve):
    y, D = data()
    problem = ib.ElasticNet(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match=r"disagree on the batch size \(l2: 3, lam: 2\)"):
        ib.sparse_code(y, D, problem, backend=BACKEND)


def test_empty_batch():
    y, D = data(B=0)
    z, info = ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND, return_info=True)
    assert z.shape == (0, 10)
    assert info.support.shape == (0, 10)


def test_empty_batch_keeps_graph():
    y, D = data(B=0)
    y.requires_grad_(True)
    z = ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND)
    z.sum().backward()
    assert y.grad.shape == (0, 6)


def test_codes_shape():
    y, D = data(B=2)
    batch = prepare_inputs(y, D, ib.Lasso(0.5))
    with pytest.raises(ValueError, match=r"z must have shape \(10,\) or \(B, 10\); got \(9,\)"):
        prepare_codes(torch.zeros(9, dtype=torch.float64), batch)


def test_codes_batch():
    y, D = data(B=2)
    batch = prepare_inputs(y, D, ib.Lasso(0.5))
    with pytest.raises(ValueError, match=r"z has batch size 3 but the signals have 2"):
        prepare_codes(torch.zeros(3, 10, dtype=torch.float64), batch)


# ---------------------------------------------------------------------------
# Non-finite values


def test_nan_in_y(no_solve):
    y, D = data()
    y[3] = math.nan
    with pytest.raises(ValueError, match=r"y contains non-finite values: y\[3\] = nan"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND)


def test_inf_in_D(no_solve):
    y, D = data()
    D[2, 5] = math.inf
    with pytest.raises(ValueError, match=r"D contains non-finite values: D\[2, 5\] = inf"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND)


def test_nan_names_sample(no_solve):
    y, D = data(B=4)
    y[2, 1] = math.nan
    y[3, 0] = math.nan
    with pytest.raises(ValueError, match=r"y contains non-finite values in sample 2: y\[2, 1\]"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND)


def test_inf_in_batched_D_names_sample(no_solve):
    y, D = data()
    D3 = D.expand(3, -1, -1).clone()
    D3[1, 0, 4] = -math.inf
    with pytest.raises(ValueError, match=r"D contains non-finite values in sample 1: D\[1, 0, 4\] = -inf"):
        ib.sparse_code(y, D3, ib.Lasso(0.5), backend=BACKEND)


def test_nan_init(no_solve):
    y, D = data()
    init = torch.zeros(10, dtype=torch.float64)
    init[0] = math.nan
    with pytest.raises(ValueError, match=r"init contains non-finite values"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND, init=init)


# ---------------------------------------------------------------------------
# Types and dtypes


def test_integer_y(no_solve):
    _, D = data()
    with pytest.raises(TypeError, match=r"y must be a floating tensor.*got torch.int64.*y.to"):
        ib.sparse_code(torch.ones(6, dtype=torch.int64), D, ib.Lasso(0.5), backend=BACKEND)


def test_integer_D(no_solve):
    y, _ = data()
    with pytest.raises(TypeError, match=r"D must be a floating tensor.*got torch.int32"):
        ib.sparse_code(y, torch.ones(6, 10, dtype=torch.int32), ib.Lasso(0.5), backend=BACKEND)


def test_complex_y(no_solve):
    y, D = data()
    with pytest.raises(TypeError, match=r"y must be a real floating tensor; got torch.complex128"):
        ib.sparse_code(y.to(torch.complex128), D, ib.Lasso(0.5), backend=BACKEND)


def test_numpy_y(no_solve):
    y, D = data()
    with pytest.raises(TypeError, match=r"y must be a torch.Tensor; got ndarray.*torch.as_tensor"):
        ib.sparse_code(y.numpy(), D, ib.Lasso(0.5), backend=BACKEND)


def test_dtype_mismatch(no_solve):
    y, D = data()
    with pytest.raises(TypeError, match=r"y is torch.float32 but D is torch.float64.*D.to\(y.dtype\)"):
        ib.sparse_code(y.float(), D, ib.Lasso(0.5), backend=BACKEND)


def test_problem_type(no_solve):
    y, D = data()
    with pytest.raises(TypeError, match=r"problem must be an implicit_basis problem.*got dict"):
        ib.sparse_code(y, D, {"lam": 0.5}, backend=BACKEND)


def test_unknown_backend():
    y, D = data()
    with pytest.raises(ValueError, match=r"unknown backend 'scs'; expected one of: auto, cvxpylayers"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend="scs")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_computed_in_float32(dtype):
    y, D = data(dtype=dtype)
    batch = prepare_inputs(y, D, ib.Lasso(0.5))
    assert batch.y.dtype == torch.float32
    assert batch.out_dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_returns_input_dtype(dtype):
    y, D = data(dtype=dtype)
    y.requires_grad_(True)
    z = ib.sparse_code(y, D, ib.Lasso(0.5), backend=BACKEND)
    z.sum().backward()
    expected = ib.sparse_code(y.detach().float(), D.float(), ib.Lasso(0.5), backend=BACKEND)
    assert z.dtype == dtype
    assert y.grad.dtype == dtype
    assert_close(z.float(), expected, rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------------------
# Devices. CUDA is not available on every machine. The meta device has no
# data, so it shows that the device check runs before anything reads values.


def test_mixed_devices(no_solve):
    y, D = data()
    with pytest.raises(ValueError, match=r"y is on cpu but D is on meta; move both to one device"):
        ib.sparse_code(y, D.to("meta"), ib.Lasso(0.5), backend=BACKEND)


def test_lam_on_other_device(no_solve):
    y, D = data()
    lam = torch.tensor(0.5, device="meta")
    with pytest.raises(ValueError, match=r"lam is on meta but the signals are on cpu"):
        ib.sparse_code(y, D, ib.Lasso(lam), backend=BACKEND)


def test_weights_on_other_device(no_solve):
    y, D = data()
    problem = ib.Lasso(0.5, weights=torch.ones(10, device="meta"))
    with pytest.raises(ValueError, match=r"weights is on meta but the signals are on cpu"):
        ib.sparse_code(y, D, problem, backend=BACKEND)


# ---------------------------------------------------------------------------
# Penalties


@pytest.mark.parametrize("value, shown", [(-0.1, r"-0\.1"), (math.nan, "nan"), (math.inf, "inf")])
def test_lam_out_of_domain(value, shown):
    with pytest.raises(ValueError, match=rf"lam must be a finite value in \[0, inf\); got {shown}"):
        ib.Lasso(value)


def test_lam_tensor_negative():
    with pytest.raises(ValueError, match=r"lam must be a finite value in \[0, inf\); got -1.0"):
        ib.Lasso(torch.tensor(-1.0))


def test_batched_lam_one_bad_entry():
    lam = torch.tensor([0.1, 0.2, math.nan, 0.3])
    with pytest.raises(ValueError, match=r"lam must be a finite value.*got lam\[2\] = nan"):
        ib.Lasso(lam)


def test_lam_changed_after_construction(no_solve):
    y, D = data()
    lam = torch.tensor([0.5, 0.5], dtype=torch.float64)
    problem = ib.Lasso(lam)
    lam[1] = -2.0
    with pytest.raises(ValueError, match=r"got lam\[1\] = -2.0"):
        ib.sparse_code(y, D, problem, backend=BACKEND)


@pytest.mark.parametrize("make, name", [
    (lambda v: ib.ElasticNet(0.5, v), "l2"),
    (lambda v: ib.BasisPursuitDenoising(v), "sigma"),
    (lambda v: ib.GroupLasso(v, [5, 5]), "lam"),
    (lambda v: ib.SparseGroupLasso(v, [5, 5], 0.5), "lam"),
])
def test_negative_parameter(make, name):
    with pytest.raises(ValueError, match=rf"{name} must be a finite value in \[0, inf\); got -1.0"):
        make(-1.0)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, math.nan])
def test_l1_ratio_outside_unit(ratio):
    with pytest.raises(ValueError, match=r"l1_ratio must be a finite value in \[0, 1\]"):
        ib.SparseGroupLasso(1.0, [5, 5], ratio)


def test_lam_bool():
    with pytest.raises(TypeError, match=r"lam must be a float or a torch.Tensor.*got bool"):
        ib.Lasso(True)


def test_lam_string():
    with pytest.raises(TypeError, match=r"lam must be a float or a torch.Tensor.*got str"):
        ib.Lasso("0.5")


def test_lam_integer_tensor():
    with pytest.raises(TypeError, match=r"lam must be a floating tensor; got torch.int64"):
        ib.Lasso(torch.tensor(1))


def test_nonneg_not_bool():
    with pytest.raises(TypeError, match=r"nonneg must be a bool; got int"):
        ib.Lasso(0.5, nonneg=1)


# ---------------------------------------------------------------------------
# Weights


def test_weights_wrong_length(no_solve):
    y, D = data()
    with pytest.raises(ValueError, match=r"weights has length 9 but the problem has 10 atoms"):
        ib.sparse_code(y, D, ib.Lasso(0.5, weights=torch.ones(9)), backend=BACKEND)


def test_group_weights_wrong_length():
    with pytest.raises(ValueError, match=r"weights has length 3 but there are 2 groups"):
        ib.GroupLasso(1.0, [5, 5], weights=[1.0, 1.0, 1.0])


def test_weights_negative():
    with pytest.raises(ValueError, match=r"weights must be >= 0.*got weights\[1\] = -1.0"):
        ib.Lasso(0.5, weights=[1.0, -1.0, 1.0])


def test_weights_nan():
    with pytest.raises(ValueError, match=r"weights must be >= 0.*got weights\[0, 2\] = nan"):
        ib.GroupLasso(1.0, [2, 2, 2], weights=torch.tensor([[1.0, 1.0, math.nan]]))


def test_weights_scalar():
    with pytest.raises(ValueError, match=r"weights must have shape \(atoms,\) or \(B, atoms\); got a scalar"):
        ib.Lasso(0.5, weights=torch.tensor(1.0))


def test_weights_not_numbers():
    with pytest.raises(TypeError, match=r"weights must be a tensor or a sequence of floats"):
        ib.Lasso(0.5, weights=["a", "b"])


def test_weights_batch_mismatch(no_solve):
    y, D = data(B=2)
    with pytest.raises(ValueError, match=r"batch sizes do not match \(y: 2, per-sample parameters: 3\)"):
        ib.sparse_code(y, D, ib.Lasso(0.5, weights=torch.ones(3, 10)), backend=BACKEND)


# ---------------------------------------------------------------------------
# Groups


def test_group_empty():
    with pytest.raises(ValueError, match=r"group 1 is empty; groups must partition the atoms"):
        ib.GroupLasso(1.0, [[0, 1], [], [2, 3, 4], [5, 6]])


def test_group_size_zero():
    with pytest.raises(ValueError, match=r"group sizes must be positive; group 1 has size 0"):
        ib.GroupLasso(1.0, [3, 0, 4])


def test_groups_overlap():
    with pytest.raises(ValueError, match=r"groups overlap: atom 2 is in group 0 and in group 1"):
        ib.GroupLasso(1.0, [[0, 1, 2], [2, 3], [4, 5, 6]])


def test_group_negative_index():
    with pytest.raises(ValueError, match=r"group 1 contains the negative atom index -1"):
        ib.GroupLasso(1.0, [[0, 1], [-1, 2]])


def test_group_non_integer():
    with pytest.raises(ValueError, match=r"group 0 contains 0.5; atom indices must be integers"):
        ib.GroupLasso(1.0, [[0.5, 1], [2]])


def test_groups_mixed_forms():
    with pytest.raises(ValueError, match=r"groups must be all sizes or all index lists; group 0 is 3"):
        ib.GroupLasso(1.0, [3, [3, 4]])


def test_groups_empty_list():
    with pytest.raises(ValueError, match=r"groups must be a non-empty list"):
        ib.GroupLasso(1.0, [])


def test_group_out_of_range(no_solve):
    y, D = data(k=7)
    problem = ib.GroupLasso(1.0, [[0, 1], [2, 3, 4], [5, 6, 7]])
    with pytest.raises(ValueError, match=r"group 2 contains atom 7, out of range.*7 atoms"):
        ib.sparse_code(y, D, problem, backend=BACKEND)


def test_groups_uncovered(no_solve):
    y, D = data(k=7)
    problem = ib.GroupLasso(1.0, [[0, 1], [2, 3, 4]])
    with pytest.raises(ValueError, match=r"atoms 5, 6 are in no group"):
        ib.sparse_code(y, D, problem, backend=BACKEND)


def test_group_sizes_do_not_sum(no_solve):
    y, D = data(k=7)
    with pytest.raises(ValueError, match=r"atoms 6 are in no group"):
        ib.sparse_code(y, D, ib.SparseGroupLasso(1.0, [3, 3], 0.5), backend=BACKEND)
