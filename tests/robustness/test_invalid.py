"""Invalid inputs raise the documented error before any solve, on every backend.

Each case runs with every solver disabled (``solvers_disabled``): a check
that let the input through would reach a solver, which then fails the test
with an ``AssertionError`` instead of the expected error. Every message is
pinned. Hypothesis places NaN, inf and negative penalties at random
positions and checks that the message names the tensor, the sample and the
entry.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import implicit_basis as ib
from implicit_basis import frames
from tests.robustness.cases import F64
from tests.robustness.guards import solvers_disabled

BACKENDS = ["implicit", "cvxpylayers", "unrolled"]


def data(B=3, m=6, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.standard_normal((B, m))), torch.tensor(rng.standard_normal((m, k)))


def set_in_place(tensor, index, value):
    with torch.no_grad():
        tensor[index] = value
    return tensor


def negative_parameter():
    lam = nn.Parameter(torch.tensor(0.5, dtype=F64))
    problem = ib.Lasso(lam)
    with torch.no_grad():
        lam.sub_(1.0)  # an optimizer step that left the domain
    return problem


def in_place_problem(make, name, index, value):
    """Build a problem from a valid tensor, then corrupt the tensor in place."""
    tensor = {
        "lam": torch.full((3,), 0.5, dtype=F64),
        "sigma": torch.full((3,), 0.5, dtype=F64),
        "l2": torch.tensor(0.1, dtype=F64),
        "l1_ratio": torch.tensor(0.5, dtype=F64),
        "weights": torch.ones(10, dtype=F64),
    }[name]
    problem = make(tensor)
    set_in_place(tensor, index, value)
    return problem


# (id, y, D, problem, options, error, message) builders; each returns the call's arguments.
def case_table():
    y, D = data()
    cases = {}

    def add(name, error, message, y=y, D=D, problem=None, **options):
        cases[name] = (y, D, problem if problem is not None else ib.Lasso(0.5), options, error, message)

    add("nan_y", ValueError, r"y contains non-finite values in sample 1: y\[1, 4\] = nan",
        y=set_in_place(y.clone(), (1, 4), math.nan))
    add("inf_D", ValueError, r"D contains non-finite values: D\[2, 5\] = inf",
        D=set_in_place(D.clone(), (2, 5), math.inf))
    add("minus_inf_batched_D", ValueError, r"D contains non-finite values in sample 2: D\[2, 0, 3\] = -inf",
        D=set_in_place(D.expand(3, -1, -1).clone(), (2, 0, 3), -math.inf))
    add("lam_negative_in_place", ValueError, r"lam must be a finite value in \[0, inf\); got lam\[1\] = -0\.1",
        problem=in_place_problem(ib.Lasso, "lam", 1, -0.1))
    add("lam_nan_in_place", ValueError, r"lam must be a finite value in \[0, inf\); got lam\[0\] = nan",
        problem=in_place_problem(ib.Lasso, "lam", 0, math.nan))
    add("lam_inf_in_place", ValueError, r"lam must be a finite value in \[0, inf\); got lam\[2\] = inf",
        problem=in_place_problem(ib.Lasso, "lam", 2, math.inf))
    add("lam_parameter_stepped_negative", ValueError, r"lam must be a finite value in \[0, inf\); got -0\.5",
        problem=negative_parameter())
    add("weights_negative_in_place", ValueError, r"weights must be >= 0 .*; got weights\[3\] = -1\.0",
        problem=in_place_problem(lambda w: ib.Lasso(0.5, weights=w), "weights", 3, -1.0))
    add("weights_nan_in_place", ValueError, r"weights must be >= 0 .*; got weights\[0\] = nan",
        problem=in_place_problem(lambda w: ib.Lasso(0.5, weights=w), "weights", 0, math.nan))
    add("l2_negative_in_place", ValueError, r"l2 must be a finite value in \[0, inf\); got -1\.0",
        problem=in_place_problem(lambda l2: ib.ElasticNet(0.5, l2), "l2", (), -1.0))
    add("l1_ratio_above_one_in_place", ValueError, r"l1_ratio must be a finite value in \[0, 1\]; got 1\.5",
        problem=in_place_problem(lambda a: ib.SparseGroupLasso(0.5, [5, 5], a), "l1_ratio", (), 1.5))
    add("rows_mismatch", ValueError, r"y has 5 samples per signal but D has 6 rows", y=y[:, :5])
    add("y_three_dims", ValueError, r"y must have shape \(m,\) or \(B, m\); got \(1, 3, 6\)", y=y.unsqueeze(0))
    add("D_one_dim", ValueError, r"D must have shape \(m, k\) or \(B, m, k\)", D=D[:, 0])
    add("empty_dictionary", ValueError, r"D must have at least one row and one atom; got shape \(6, 0\)", D=D[:, :0])
    add("dtype_mismatch", TypeError, r"y is torch\.float32 but D is torch\.float64", y=y.float())
    add("integer_y", TypeError, r"y must be a floating tensor \(float32 or float64\); got torch\.int64", y=y.long())
    add("complex_D", TypeError, r"D must be a real floating tensor; got torch\.complex128", D=D.to(torch.complex128))
    add("numpy_y", TypeError, r"y must be a torch\.Tensor; got ndarray", y=y.numpy())
    add("batch_y_lam", ValueError, r"batch sizes do not match \(y: 3, per-sample parameters: 4\)",
        problem=ib.Lasso(torch.full((4,), 0.5, dtype=F64)))
    add("batch_y_D", ValueError, r"batch sizes do not match \(y: 3, D: 2\)", D=D.expand(2, -1, -1))
    add("groups_uncovered", ValueError, r"groups do not cover every atom: atoms 8, 9 are in no group",
        problem=ib.GroupLasso(0.5, [[0, 1, 2, 3], [4, 5, 6, 7]]))
    add("group_out_of_range", ValueError, r"group 1 contains atom 12, out of range for a dictionary of 10 atoms",
        problem=ib.GroupLasso(0.5, [list(range(10)), [12]]))
    add("weights_wrong_length", ValueError, r"weights has length 9 but the problem has 10 atoms",
        problem=ib.Lasso(0.5, weights=torch.ones(9, dtype=F64)))
    add("D_on_meta", ValueError, r"y is on cpu but D is on meta; move both to one device", D=D.to("meta"))
    add("everything_on_meta", ValueError, r"y is on the meta device, which has shapes but no data to solve with",
        y=y.to("meta"), D=D.to("meta"))
    add("lam_on_meta", ValueError, r"lam is on meta but the signals are on cpu",
        problem=ib.Lasso(torch.tensor(0.5, dtype=F64, device="meta")))
    add("l2_on_meta", ValueError, r"l2 is on meta but the signals are on cpu",
        problem=ib.ElasticNet(0.5, torch.tensor(0.1, dtype=F64, device="meta")))
    add("group_weights_on_meta", ValueError, r"weights is on meta but the signals are on cpu",
        problem=ib.GroupLasso(0.5, [5, 5], weights=torch.ones(2, dtype=F64, device="meta")))
    add("init_wrong_batch", ValueError, r"init has batch size 2 but the signals have 3",
        init=torch.zeros(2, 10, dtype=F64))
    add("init_wrong_atoms", ValueError, r"init must have shape \(10,\) or \(B, 10\); got \(3, 9\)",
        init=torch.zeros(3, 9, dtype=F64))
    add("init_nan", ValueError, r"init contains non-finite values in sample 0: init\[0, 0\] = nan",
        init=torch.full((3, 10), math.nan, dtype=F64))
    add("init_on_meta", ValueError, r"y is on cpu but init is on meta",
        init=torch.zeros(3, 10, dtype=F64, device="meta"))
    add("init_list", TypeError, r"init must be a torch\.Tensor; got list", init=[0.0] * 10)
    add("tol_negative", ValueError, r"tol must be a positive finite float; got -1\.0", tol=-1.0)
    add("tol_nan", ValueError, r"tol must be a positive finite float; got nan", tol=math.nan)
    add("tol_string", TypeError, r"tol must be a float or None; got str '1e-3'", tol="1e-3")
    add("max_iter_zero", ValueError, r"max_iter must be a positive integer; got 0", max_iter=0)
    add("max_iter_fraction", ValueError, r"max_iter must be a positive integer; got 2\.5", max_iter=2.5)
    add("max_iter_bool", ValueError, r"max_iter must be a positive integer; got True", max_iter=True)
    add("max_iter_string", TypeError, r"max_iter must be an int or None; got str '10'", max_iter="10")
    add("unknown_option", TypeError, r"unknown options for the \w+ backend: foo", foo=1)
    add("problem_not_problem", TypeError, r"problem must be an implicit_basis problem", problem=object())
    return cases


CASES = case_table()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_rejected_before_solve(no_solver, name, backend):
    y, D, problem, options, error, message = CASES[name]
    with pytest.raises(error, match=message):
        ib.sparse_code(y, D, problem, backend=backend, **options)


@pytest.mark.parametrize("backend", BACKENDS)
def test_guard_catches_a_solve(no_solver, backend):
    """The guard itself: a valid input reaches the disabled solver and fails."""
    y, D = data()
    with pytest.raises(AssertionError, match="a solver was called"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend=backend)


@pytest.mark.parametrize("backend", ["implicit", "cvxpylayers"])
def test_sigma_negative_in_place(no_solver, backend):
    y, D = data()
    problem = in_place_problem(ib.BasisPursuitDenoising, "sigma", 2, -0.5)
    with pytest.raises(ValueError, match=r"sigma must be a finite value in \[0, inf\); got sigma\[2\] = -0\.5"):
        ib.sparse_code(y, D, problem, backend=backend)


def test_implicit_tol_at_one(no_solver):
    y, D = data()
    with pytest.raises(ValueError, match=r"tol must be a relative duality gap in \(0, 1\); got 1\.0"):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend="implicit", tol=1.0)


@pytest.mark.parametrize("dense_limit, printed", [(-1, "-1"), ("a", "'a'"), (True, "True")])
def test_implicit_dense_limit(no_solver, dense_limit, printed):
    y, D = data()
    with pytest.raises(ValueError, match=rf"dense_limit must be a non-negative int, .*; got {printed}\."):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend="implicit", dense_limit=dense_limit)


def test_unknown_backend(no_solver):
    y, D = data()
    message = r"unknown backend 'foo'; expected one of: auto, cvxpylayers, implicit, unrolled"
    with pytest.raises(ValueError, match=message):
        ib.sparse_code(y, D, ib.Lasso(0.5), backend="foo")


# ---------------------------------------------------------------------------
# The layer: its own checks run before the frame is evaluated or anything solved


def layer_and_inputs():
    frame = frames.RadialBasis([0.2, 0.5, 0.8], 0.1, dtype=F64)
    points = torch.linspace(0, 1, 6, dtype=F64)
    y, _ = data(B=2, m=6)
    return frame, points, y


LAYER_CASES = {
    "y_on_meta": (lambda y, p: (y.to("meta"), p, None), r"y is on meta but the layer is on cpu"),
    "t_on_meta": (lambda y, p: (y, p.to("meta"), None), r"t is on meta but the layer is on cpu"),
    "mask_on_meta": (
        lambda y, p: (y, p, torch.ones(6, dtype=torch.bool, device="meta")),
        r"mask is on meta but y is on cpu",
    ),
    "y_float32": (lambda y, p: (y.float(), p, None), r"y is torch\.float32 but the layer's frame is torch\.float64"),
    "length_mismatch": (lambda y, p: (y[:, :5], p, None), r"y has 5 samples per signal but t has 6 points"),
    "mask_not_bool": (lambda y, p: (y, p, torch.ones(6)), r"mask must be a bool torch\.Tensor"),
    "mask_batch": (
        lambda y, p: (y, p, torch.ones(3, 6, dtype=torch.bool)),
        r"mask has batch size 3 but y has batch size 2",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_layer_rejects_before_solve(no_solver, name, backend):
    frame, points, y = layer_and_inputs()
    layer = ib.SparseCoding(frame, ib.Lasso(0.1), backend=backend)
    build, message = LAYER_CASES[name]
    y_in, t_in, mask = build(y, points)
    error = TypeError if name in ("y_float32", "mask_not_bool") else ValueError
    with pytest.raises(error, match=message):
        layer(y_in, t_in, mask=mask)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_lam_on_other_device(no_solver, backend):
    frame, points, y = layer_and_inputs()
    layer = ib.SparseCoding(frame, ib.Lasso(torch.tensor(0.1, dtype=F64, device="meta")), backend=backend)
    with pytest.raises(ValueError, match=r"lam is on meta but the signals are on cpu"):
        layer(y, points)


def test_reconstruct_codes_on_other_device():
    frame, points, _ = layer_and_inputs()
    layer = ib.SparseCoding(frame, ib.Lasso(0.1))
    z = torch.zeros(3, dtype=F64, device="meta")
    with pytest.raises(ValueError, match=r"z is on meta but the layer is on cpu; move z with z\.to\('cpu'\)"):
        layer.reconstruct(z, points, points)


# ---------------------------------------------------------------------------
# Random positions


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    B=st.integers(1, 4),
    m=st.integers(1, 6),
    k=st.integers(1, 6),
    target=st.sampled_from(["y", "D"]),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    batched_D=st.booleans(),
    backend=st.sampled_from(BACKENDS),
    data_=st.data(),
)
def test_non_finite_entry_named(B, m, k, target, value, batched_D, backend, data_):
    y, D = data(B=B, m=m, k=k)
    if batched_D:
        D = D.expand(B, -1, -1).clone()
    tensor = y if target == "y" else D
    index = tuple(data_.draw(st.integers(0, size - 1), label=f"index {axis}") for axis, size in enumerate(tensor.shape))
    set_in_place(tensor, index, value)
    batched = tensor.dim() == (2 if target == "y" else 3)
    where = f" in sample {index[0]}" if batched else ""
    printed = {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
    entry = ", ".join(str(i) for i in index)
    message = rf"{target} contains non-finite values{where}: {target}\[{entry}\] = {printed}"
    with solvers_disabled():
        with pytest.raises(ValueError, match=message):
            ib.sparse_code(y, D, ib.Lasso(0.5), backend=backend)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    B=st.integers(1, 5),
    bad=st.data(),
    value=st.sampled_from([-1e-12, -3.0, math.nan, math.inf]),
    name=st.sampled_from(["lam", "sigma"]),
    backend=st.sampled_from(["implicit", "cvxpylayers"]),
)
def test_bad_per_sample_penalty_named(B, bad, value, name, backend):
    """One bad entry of a per-sample penalty, set after construction, is named by its index."""
    y, D = data(B=B)
    index = bad.draw(st.integers(0, B - 1), label="index")
    make = ib.Lasso if name == "lam" else ib.BasisPursuitDenoising
    tensor = torch.full((B,), 0.5, dtype=F64)
    problem = make(tensor)
    set_in_place(tensor, index, value)
    printed = {math.inf: "inf", -3.0: "-3.0", -1e-12: "-1e-12"}.get(value, "nan")
    message = rf"{name} must be a finite value in \[0, inf\); got {name}\[{index}\] = {printed}"
    with solvers_disabled():
        with pytest.raises(ValueError, match=message):
            ib.sparse_code(y, D, problem, backend=backend)
