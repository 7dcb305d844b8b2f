"""Tune the lasso penalty by gradient descent on a validation loss, and compare with a grid search.

Run: python examples/hyperparameter_gradient.py [--seed 3] [--n-train 40] [--n-val 20]
     [--n-features 60] [--grid-size 30] [--max-solves 40]

A sparse linear model is fitted on a training set by the lasso

    beta(lam) = argmin_b 1/2 ||X_train b - y_train||^2 + lam ||b||_1

and scored on a validation set by h(lam) = ||X_val beta(lam) - y_val||^2 / (2 n_val).
scikit-learn's ``Lasso(alpha)`` is the same model with ``lam = n_train * alpha``,
and both are printed. The hypergradient dh/dlam flows through the implicit
layer: the backward pass differentiates the lasso's optimality conditions on
its support, so it costs one small linear solve and no unrolled iterations.

Two searches use the same data. The grid search solves the lasso at
``--grid-size`` values of lam, log-spaced from lam_max (where beta = 0) down to
lam_max / 1000, the range of scikit-learn's ``LassoCV``, and keeps the best.
Gradient descent works on log lam, starting at lam_max / 10, with a
backtracking step: a step that does not decrease h enough is halved and
retried, and an accepted one doubles the next step. Every trial costs one
solve, and the script counts them all.

h is not convex in lam: it has kinks where the support changes and can have
several local minima. Gradient descent finds one of them. With the default
seed it ends below the grid's best; with ``--seed 2`` it stops in a local
minimum at h = 0.00504 while the grid's best, at its lower end, is 0.00441.

With the default seed and sizes, at alpha = alpha_max / 10 = 0.2090931 the
validation loss is 0.1039173 and dh/dalpha = 0.98022536. The tests check the
hypergradient against a closed form on the lasso's support.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from tqdm import tqdm

import implicit_basis as ib

# Nonzero coefficients of the true model, placed at these indices of a
# 60-feature model and scaled to other sizes by index * n_features // 60.
SUPPORT = (3, 17, 29, 41, 55)
COEFFICIENTS = (2.0, -1.5, 1.0, 0.8, -0.5)
REFERENCE_FEATURES = 60

# The grid spans lam_max down to lam_max * GRID_RATIO, as scikit-learn's
# LassoCV does with its default eps = 1e-3.
GRID_RATIO = 1e-3
# Gradient descent starts here, relative to lam_max.
START_RATIO = 0.1
# Armijo constant of the backtracking step: a step s along -g is accepted when
# h decreases by at least ARMIJO * s * g^2.
ARMIJO = 1e-4


def make_data(n_train: int, n_val: int, n_features: int, noise: float, seed: int) -> dict:
    """Draw Gaussian designs, a sparse true model and noisy responses.

    The draws come from ``numpy.random.default_rng(seed)`` in the order
    X_train, X_val, the training noise, then the validation noise.

    Shape:
        X_train: (n_train, n_features); y_train: (n_train,);
        X_val: (n_val, n_features); y_val: (n_val,); beta: (n_features,).
    """
    rng = np.random.default_rng(seed)
    X_train = rng.standard_normal((n_train, n_features))
    X_val = rng.standard_normal((n_val, n_features))
    beta = np.zeros(n_features)
    for index, value in zip(SUPPORT, COEFFICIENTS):
        beta[index * n_features // REFERENCE_FEATURES] = value
    y_train = X_train @ beta + noise * rng.standard_normal(n_train)
    y_val = X_val @ beta + noise * rng.standard_normal(n_val)
    arrays = {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val, "beta": beta}
    return {name: torch.tensor(array, dtype=torch.float64) for name, array in arrays.items()}


def validation_loss(lam: torch.Tensor, data: dict, backend: str) -> torch.Tensor:
    """Fit the lasso on the training set and return the validation loss h(lam).

    The result is differentiable in ``lam`` through the sparse-coding backend.

    Shape:
        lam: () or (B,); result: () or (B,).
    """
    y_train = data["y_train"]
    if lam.dim() == 1:
        y_train = y_train.expand(lam.numel(), -1)
    beta = ib.sparse_code(y_train, data["X_train"], ib.Lasso(lam), backend=backend)
    residual = beta @ data["X_val"].T - data["y_val"]
    return (residual**2).sum(-1) / (2 * data["y_val"].numel())


def loss_and_gradient(log_lam: float, data: dict, backend: str) -> tuple[float, float]:
    """Return h and dh/dlog(lam) at ``log_lam``, from one solve and its backward pass."""
    point = torch.tensor(log_lam, dtype=torch.float64, requires_grad=True)
    loss = validation_loss(point.exp(), data, backend)
    (gradient,) = torch.autograd.grad(loss, point)
    return float(loss.detach()), float(gradient)


def grid_search(data: dict, lam_max: float, size: int, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the grid of lam values and the validation loss at each (one batched solve of ``size`` problems)."""
    lams = lam_max * torch.logspace(0.0, math.log10(GRID_RATIO), size, dtype=torch.float64)
    with torch.no_grad():
        losses = validation_loss(lams, data, backend)
    return lams, losses


def gradient_descent(data: dict, lam_start: float, max_solves: int, tol: float, backend: str) -> dict:
    """Minimise h over log lam by gradient descent with a backtracking step.

    The first step moves log lam by 0.5. Descent stops when a proposed move of
    log lam is shorter than ``tol`` (lam changes by less than a factor
    exp(tol)) or after ``max_solves`` solves.

    Returns:
        a dict with the final ``lam`` and ``loss``, the number of ``solves``
        and the ``history`` of (lam, loss, accepted) of every trial.
    """
    log_lam = math.log(lam_start)
    loss, gradient = loss_and_gradient(log_lam, data, backend)
    history = [(lam_start, loss, True)]
    step = 0.5 / max(abs(gradient), torch.finfo(torch.float64).tiny)
    progress = tqdm(total=max_solves, initial=1, desc="gradient descent", leave=False)
    while len(history) < max_solves and step * abs(gradient) >= tol:
        trial = log_lam - step * gradient
        trial_loss, trial_gradient = loss_and_gradient(trial, data, backend)
        accepted = trial_loss <= loss - ARMIJO * step * gradient**2
        history.append((math.exp(trial), trial_loss, accepted))
        if accepted:
            log_lam, loss, gradient = trial, trial_loss, trial_gradient
            step *= 2.0
        else:
            step *= 0.5
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4g}", lam=f"{math.exp(log_lam):.4g}")
    progress.close()
    return {"lam": math.exp(log_lam), "loss": loss, "solves": len(history), "history": history}


def main(argv=None) -> dict:
    """Run the example; return the hypergradient check and both searches' results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=40, help="training samples")
    parser.add_argument("--n-val", type=int, default=20, help="validation samples")
    parser.add_argument("--n-features", type=int, default=60, help="features (at least 5)")
    parser.add_argument("--noise", type=float, default=0.1, help="standard deviation of the response noise")
    parser.add_argument("--grid-size", type=int, default=30, help="lam values in the grid search")
    parser.add_argument("--max-solves", type=int, default=40, help="solve budget of gradient descent")
    parser.add_argument(
        "--tol", type=float, default=1e-3,
        help="gradient descent stops when a proposed move of log lam is shorter than this",
    )
    parser.add_argument("--backend", default="auto", help="auto, implicit or cvxpylayers")
    parser.add_argument("--seed", type=int, default=3, help="seed of the designs and the noise")
    args = parser.parse_args(argv)
    if args.n_features < len(SUPPORT):
        parser.error(f"--n-features must be at least {len(SUPPORT)}; got {args.n_features}")

    data = make_data(args.n_train, args.n_val, args.n_features, args.noise, args.seed)
    n_train = args.n_train
    lam_max = float(ib.lam_max(data["y_train"], data["X_train"]))
    print(
        f"lasso on {n_train} training and {args.n_val} validation samples, {args.n_features} "
        f"features, {len(SUPPORT)} nonzero; lam = n_train * alpha, lam_max = {lam_max:.6g} "
        f"(alpha_max = {lam_max / n_train:.6g}); backend {args.backend}"
    )

    # The hypergradient at the starting point is compared with a central
    # finite difference of two more solves. The support does not change
    # within lam_start +- delta here, so h is smooth there.
    lam_start = START_RATIO * lam_max
    lam = torch.tensor(lam_start, dtype=torch.float64, requires_grad=True)
    start_loss = validation_loss(lam, data, args.backend)
    (dh_dlam,) = torch.autograd.grad(start_loss, lam)
    start_loss = start_loss.detach()
    delta = 1e-5 * lam_start
    with torch.no_grad():
        upper = validation_loss(torch.tensor(lam_start + delta, dtype=torch.float64), data, args.backend)
        lower = validation_loss(torch.tensor(lam_start - delta, dtype=torch.float64), data, args.backend)
    finite_difference = float(upper - lower) / (2 * delta)
    print(
        f"at alpha = alpha_max / {1 / START_RATIO:g} = {lam_start / n_train:.7f}: h = "
        f"{float(start_loss):.7f}, dh/dalpha = {n_train * float(dh_dlam):.8f} (implicit), "
        f"{n_train * finite_difference:.8f} (central difference)"
    )

    lams, losses = grid_search(data, lam_max, args.grid_size, args.backend)
    best = int(torch.argmin(losses))
    grid = {"lam": float(lams[best]), "loss": float(losses[best]), "solves": args.grid_size}
    descent = gradient_descent(data, lam_start, args.max_solves, args.tol, args.backend)

    print(f"{'search':<18}{'lam':>12}{'alpha':>12}{'lam/lam_max':>13}{'val loss':>12}{'solves':>8}")
    for name, result in (("grid", grid), ("gradient descent", descent)):
        print(
            f"{name:<18}{result['lam']:>12.5g}{result['lam'] / n_train:>12.5g}"
            f"{result['lam'] / lam_max:>13.5g}{result['loss']:>12.6g}{result['solves']:>8d}"
        )
    accepted = sum(1 for _, _, ok in descent["history"] if ok) - 1
    print(f"gradient descent: {accepted} accepted steps, {descent['solves'] - 1 - accepted} halved")

    return {
        "lam_max": lam_max,
        "n_train": n_train,
        "start": {
            "lam": lam_start,
            "loss": float(start_loss),
            "dh_dlam": float(dh_dlam),
            "finite_difference": finite_difference,
        },
        "grid": grid,
        "gradient": {name: descent[name] for name in ("lam", "loss", "solves")},
        "data": data,
    }


if __name__ == "__main__":
    main()
