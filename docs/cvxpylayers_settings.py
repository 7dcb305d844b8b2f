"""Measure solver settings of the cvxpylayers backend: gradient error and time.

Each candidate setting solves a few hard instances through
``ib.sparse_code(..., backend="cvxpylayers", solver_args=...)`` and compares:

- the code with the reference solution (``tests/reference.py``: Clarabel at
  tight tolerances, then a polish on the support to machine precision);
- directional derivatives of the loss with central finite differences of the
  reference solver in float64 (step 1e-5), along the scalar
  parameter and two random directions each in ``y`` and ``D``.

Run from the repository root:

    python docs/cvxpylayers_settings.py

It prints the markdown table recorded in ``docs/cvxpylayers-settings.md``.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import implicit_basis as ib  # noqa: E402
from tests.reference import reference_solve  # noqa: E402

torch.set_num_threads(1)
# The backend logs a warning for lam below 1e-8 lam_max (the C14 lam=1e-10
# column); the table reports that error instead.
logging.getLogger("implicit_basis").setLevel(logging.ERROR)

SCS_TIGHT = {"solve_method": "SCS", "max_iters": 200_000}
CLARABEL_TIGHT = {
    "solve_method": "Clarabel",
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 500,
}
CANDIDATES = {
    # cvxpylayers 1.2.0 passes no solver arguments: diffcp then runs SCS at
    # its default eps 1e-4, the LSQR derivative and one thread per CPU.
    "SCS eps 1e-4, lsqr (cvxpylayers default)": {
        "solve_method": "SCS", "eps": 1e-4, "max_iters": 100_000, "mode": "lsqr",
        "n_jobs_forward": -1, "n_jobs_backward": -1,
    },
    "SCS eps 1e-8, lsqr": {**SCS_TIGHT, "eps": 1e-8, "mode": "lsqr"},
    "SCS eps 1e-8, dense": {**SCS_TIGHT, "eps": 1e-8, "mode": "dense"},
    "SCS eps 1e-10, lsqr": {**SCS_TIGHT, "eps": 1e-10, "mode": "lsqr"},
    "SCS eps 1e-10, dense": {**SCS_TIGHT, "eps": 1e-10, "mode": "dense"},
    "Clarabel default tol, dense": {"solve_method": "Clarabel", "mode": "dense"},
    "Clarabel tol 1e-12, dense": {**CLARABEL_TIGHT, "mode": "dense"},
}


def sn(rng, *shape):
    return rng.standard_normal(shape if shape else None)


def gaussian_frame(m, k, width, lo=0.0, hi=1.0):
    t = np.linspace(0, 1, m)
    c = np.linspace(lo, hi, k)
    D = np.exp(-((t[:, None] - c[None, :]) ** 2) / (2 * width**2))
    return D / np.linalg.norm(D, axis=0)


def case_c01():
    """Coherent Gaussian frame (40 x 30), lam = 0.05 lam_max, L = sum(z)."""
    D = gaussian_frame(40, 30, 0.06)
    rng = np.random.default_rng(1)
    x0 = np.zeros(30)
    x0[[5, 14, 22]] = [1.0, -0.7, 0.8]
    y = D @ x0 + 0.01 * sn(rng, 40)
    lam = 0.05 * np.abs(D.T @ y).max()
    return dict(kind="lasso", y=y, D=D, scalars={"lam": lam}, loss=lambda z: z.sum())


def case_c03():
    """Hypergradient: sklearn-scaled lasso (40 x 60), validation loss."""
    rng = np.random.default_rng(3)
    Xtr, Xval = sn(rng, 40, 60), sn(rng, 20, 60)
    beta = np.zeros(60)
    beta[[3, 17, 29, 41, 55]] = [2.0, -1.5, 1.0, 0.8, -0.5]
    ytr = Xtr @ beta + 0.1 * sn(rng, 40)
    yval = Xval @ beta + 0.1 * sn(rng, 20)
    lam = 40 * np.abs(Xtr.T @ ytr).max() / 40 / 10

    def loss(z):
        if isinstance(z, torch.Tensor):
            r = torch.as_tensor(Xval) @ z - torch.as_tensor(yval)
        else:
            r = Xval @ z - yval
        return (r * r).sum() / 40

    return dict(kind="lasso", y=ytr, D=Xtr, scalars={"lam": lam}, loss=loss)


def case_c14(lam):
    """Tall least-squares limit (30 x 10), lam near 0, L = sum(z)."""
    rng = np.random.default_rng(14)
    D, y = sn(rng, 30, 10), sn(rng, 30)
    return dict(kind="lasso", y=y, D=D, scalars={"lam": lam}, loss=lambda z: z.sum())


def case_bpdn():
    """Basis pursuit denoising (12 x 24) at sigma = 1e-3 ||y||, L = sum(z)."""
    rng = np.random.default_rng(26)
    D = sn(rng, 12, 24)
    x0 = np.zeros(24)
    x0[[2, 9, 17]] = [1.0, -0.8, 0.6]
    y = D @ x0 + 1e-3 * sn(rng, 12)
    sigma = 1e-3 * np.linalg.norm(y)
    return dict(
        kind="basis_pursuit_denoising", y=y, D=D, scalars={"sigma": sigma},
        loss=lambda z: z.sum(),
    )


CASES = {
    "C01 coherent lasso": case_c01,
    "C03 hypergradient": case_c03,
    "C14 lam=1e-4": lambda: case_c14(1e-4),
    "C14 lam=1e-6": lambda: case_c14(1e-6),
    "C14 lam=1e-10": lambda: case_c14(1e-10),
    "BPDN sigma=1e-3||y||": case_bpdn,
}


def problem_of(kind, scalars):
    if kind == "lasso":
        return ib.Lasso(scalars["lam"])
    return ib.BasisPursuitDenoising(scalars["sigma"])


def reference_loss(case, y, D, scalars):
    z = reference_solve(case["kind"], y, D, **scalars).z
    return float(case["loss"](z)), z


def directions(case, rng):
    """Yield (name, dy, dD, dscalars) unit directions."""
    name = next(iter(case["scalars"]))
    yield name, np.zeros_like(case["y"]), np.zeros_like(case["D"]), {name: 1.0}
    for i in range(2):
        dy = sn(rng, *case["y"].shape)
        yield f"y{i}", dy / np.linalg.norm(dy), np.zeros_like(case["D"]), {name: 0.0}
    for i in range(2):
        dD = sn(rng, *case["D"].shape)
        yield f"D{i}", np.zeros_like(case["y"]), dD / np.linalg.norm(dD), {name: 0.0}


def finite_differences(case):
    """Return {direction: (dy, dD, dscalar, derivative)} from the reference solver."""
    rng = np.random.default_rng(0)
    out = {}
    for name, dy, dD, ds in directions(case, rng):
        # The reference is exact to a relative KKT residual of about 1e-13,
        # so a step of 1e-5 (relative for the scalar, at least 1e-8) keeps
        # both its error and the truncation error near 1e-8. Where the step
        # reaches the scalar's value the difference is one-sided, which is
        # exact for the lasso: its code is affine in lam on a fixed support.
        h, backward = 1e-5, 1.0
        if name in case["scalars"]:
            value = case["scalars"][name]
            h = max(1e-5 * value, 1e-8)
            backward = 1.0 if h < value else 0.0
        plus = {k: v + h * ds[k] for k, v in case["scalars"].items()}
        minus = {k: v - backward * h * ds[k] for k, v in case["scalars"].items()}
        f_plus, _ = reference_loss(case, case["y"] + h * dy, case["D"] + h * dD, plus)
        f_minus, _ = reference_loss(
            case, case["y"] - backward * h * dy, case["D"] - backward * h * dD, minus
        )
        out[name] = (dy, dD, ds, (f_plus - f_minus) / ((1 + backward) * h))
    return out


def measure(case, fd, solver_args, repeats=3):
    y = torch.tensor(case["y"], requires_grad=True)
    D = torch.tensor(case["D"], requires_grad=True)
    scalars = {k: torch.tensor(v, requires_grad=True) for k, v in case["scalars"].items()}
    problem = problem_of(case["kind"], scalars)
    _, z_ref = reference_loss(case, case["y"], case["D"], case["scalars"])

    def run():
        z = ib.sparse_code(y, D, problem, backend="cvxpylayers", solver_args=solver_args)
        grads = torch.autograd.grad(case["loss"](z), [y, D, *scalars.values()])
        return z.detach(), grads

    run()  # builds and caches the layer
    start = time.perf_counter()
    for _ in range(repeats):
        z, grads = run()
    seconds = (time.perf_counter() - start) / repeats
    g_y, g_D, *g_s = (g.numpy() for g in grads)
    errors = []
    for name, (dy, dD, ds, derivative) in fd.items():
        ours = (g_y * dy).sum() + (g_D * dD).sum()
        ours += sum(float(g) * ds[k] for g, k in zip(g_s, case["scalars"]))
        errors.append(abs(ours - derivative) / max(abs(derivative), 1e-12))
    z = z.numpy()
    off = (z_ref == 0) & (z != 0)
    return {
        "z_err": float(np.abs(z - z_ref).max()),
        "grad_err": max(errors),
        "off_support": int(off.sum()),
        "seconds": seconds,
    }


def batch_timing(solver_args, B=64, repeats=2):
    """Forward + backward time of a shared-D batch (20 x 50, 3-sparse codes)."""
    rng = np.random.default_rng(23)
    D = sn(rng, 20, 50) / np.sqrt(20)
    X = np.zeros((B, 50))
    for b in range(B):
        X[b, rng.choice(50, 3, replace=False)] = sn(rng, 3)
    Y = X @ D.T + 0.01 * sn(rng, B, 20)
    lam = 0.1 * np.abs(Y @ D).max(axis=1)
    Y_t = torch.tensor(Y, requires_grad=True)
    D_t = torch.tensor(D, requires_grad=True)
    problem = ib.Lasso(torch.tensor(lam))
    ib.sparse_code(Y_t, D_t, problem, backend="cvxpylayers", solver_args=solver_args).sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        z = ib.sparse_code(Y_t, D_t, problem, backend="cvxpylayers", solver_args=solver_args)
        z.sum().backward()
    return (time.perf_counter() - start) / repeats


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def zero_gradient_hazard():
    """Return |grad| of a loss scaled by 1e-9: from a bare CvxpyLayer, and from the backend."""
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    case = case_c01()
    m, k = case["D"].shape
    D_p, y_p, z = cp.Parameter((m, k)), cp.Parameter(m), cp.Variable(k)
    objective = 0.5 * cp.sum_squares(D_p @ z - y_p) + case["scalars"]["lam"] * cp.norm1(z)
    layer = CvxpyLayer(cp.Problem(cp.Minimize(objective)), [D_p, y_p], [z])
    y = torch.tensor(case["y"], requires_grad=True)
    (z_bare,) = layer(torch.tensor(case["D"]), y, solver_args={"eps": 1e-10, "mode": "dense"})
    (bare,) = torch.autograd.grad(1e-9 * z_bare.sum(), y)
    z_ours = ib.sparse_code(y, torch.tensor(case["D"]), ib.Lasso(case["scalars"]["lam"]),
                            backend="cvxpylayers")
    (ours,) = torch.autograd.grad(1e-9 * z_ours.sum(), y)
    return float(bare.norm()), float(ours.norm())


def small_lam_scan():
    """Return {lam / lam_max: relative error of dL/dlam} on C14 with the default settings."""
    errors = {}
    for lam in (1e-7, 1e-8, 1e-9):
        case = case_c14(lam)
        fd = finite_differences(case)["lam"][3]
        lam_t = torch.tensor(lam, requires_grad=True)
        z = ib.sparse_code(torch.tensor(case["y"]), torch.tensor(case["D"]), ib.Lasso(lam_t),
                           backend="cvxpylayers")
        (grad,) = torch.autograd.grad(z.sum(), lam_t)
        ratio = lam / np.abs(case["D"].T @ case["y"]).max()
        errors[ratio] = abs(float(grad) - fd) / abs(fd)
    return errors


def main():
    print(f"{cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch thread")
    bare, ours = zero_gradient_hazard()
    print(f"C01, loss scaled by 1e-9: |grad y| bare CvxpyLayer {bare:.3g}, backend {ours:.3g} "
          "(times 1e9: the unscaled gradient)")
    fds = {name: finite_differences(make()) for name, make in CASES.items()}
    print("\n| setting | " + " | ".join(CASES) + " | B=64 batch |")
    print("|---" * (len(CASES) + 2) + "|")
    for label, args in CANDIDATES.items():
        cells = []
        for name, make in CASES.items():
            try:
                r = measure(make(), fds[name], args)
                cells.append(
                    f"z {r['z_err']:.0e}, grad {r['grad_err']:.0e}, "
                    f"off {r['off_support']}, {1e3 * r['seconds']:.0f} ms"
                )
            except Exception as error:  # noqa: BLE001 - report any failure in the table
                cells.append(f"failed: {type(error).__name__}")
        try:
            batch = f"{batch_timing(args):.2f} s"
        except Exception as error:  # noqa: BLE001
            batch = f"failed: {type(error).__name__}"
        print(f"| {label} | " + " | ".join(cells) + f" | {batch} |")
    for ratio, error in small_lam_scan().items():
        print(f"C14 default settings, lam / lam_max = {ratio:.1e}: dL/dlam relative error {error:.1e}")
    for jobs in (1, -1):
        args = {**SCS_TIGHT, "eps": 1e-10, "mode": "dense",
                "n_jobs_forward": jobs, "n_jobs_backward": jobs}
        print(f"n_jobs {jobs}: B=64 forward+backward {batch_timing(args):.2f} s")


if __name__ == "__main__":
    main()
