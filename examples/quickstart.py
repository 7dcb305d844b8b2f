"""Solve and differentiate a batch of every coding problem kind.

Run: python examples/quickstart.py [--batch 16] [--m 32] [--k 64] [--backend auto]

For each kind it prints the mean number of nonzeros, the largest relative
duality gap reached, and the norms of the gradients of a loss with respect to
the signals, the dictionary and the penalty parameter.
"""

from __future__ import annotations

import argparse
import time

import torch

import implicit_basis as ib


def make_data(batch: int, m: int, k: int, seed: int):
    """Return unit-norm Gaussian atoms D (m, k), sparse codes and noisy signals (B, m)."""
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(m, k, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    codes = torch.randn(batch, k, generator=generator, dtype=torch.float64)
    codes = codes * (torch.rand(batch, k, generator=generator, dtype=torch.float64) < 0.1)
    y = codes @ D.T + 0.01 * torch.randn(batch, m, generator=generator, dtype=torch.float64)
    return D, y


def problems(y: torch.Tensor, D: torch.Tensor, k: int) -> dict:
    """Return one problem per kind, with a penalty that requires grad where it has one."""
    lam = (0.1 * ib.lam_max(y, D)).detach().requires_grad_()
    groups = [4] * (k // 4) + ([k % 4] if k % 4 else [])
    sigma = (0.05 * y.norm(dim=-1)).detach().requires_grad_()
    return {
        "lasso": (ib.Lasso(lam), lam),
        "non-negative lasso": (ib.Lasso(lam, nonneg=True), lam),
        "elastic net": (ib.ElasticNet(lam, 0.1), lam),
        "group lasso": (ib.GroupLasso(lam, groups), lam),
        "sparse group lasso": (ib.SparseGroupLasso(lam, groups, l1_ratio=0.5), lam),
        "basis pursuit": (ib.BasisPursuit(), None),
        "basis pursuit denoising": (ib.BasisPursuitDenoising(sigma), sigma),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="number of signals")
    parser.add_argument("--m", type=int, default=32, help="samples per signal")
    parser.add_argument("--k", type=int, default=64, help="number of atoms")
    parser.add_argument("--backend", default="auto", help="auto, implicit or cvxpylayers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    D, y = make_data(args.batch, args.m, args.k, args.seed)
    print(f"{args.batch} signals, m = {args.m} samples, k = {args.k} atoms, backend {args.backend}")
    header = f"{'problem':<26}{'nnz':>7}{'max gap':>11}{'|dL/dy|':>11}{'|dL/dD|':>11}{'|dL/dp|':>11}{'time s':>9}"
    print(header)
    for name, (problem, parameter) in problems(y, D, args.k).items():
        y_leaf = y.clone().requires_grad_()
        D_leaf = D.clone().requires_grad_()
        start = time.perf_counter()
        z, info = ib.sparse_code(y_leaf, D_leaf, problem, backend=args.backend, return_info=True)
        loss = (z**2).sum()
        loss.backward()
        elapsed = time.perf_counter() - start
        parameter_grad = float("nan") if parameter is None else float(parameter.grad.norm())
        print(
            f"{name:<26}{float((z != 0).sum(-1).double().mean()):>7.1f}"
            f"{float(info.gap.max()):>11.1e}{float(y_leaf.grad.norm()):>11.3g}"
            f"{float(D_leaf.grad.norm()):>11.3g}{parameter_grad:>11.3g}{elapsed:>9.2f}"
        )


if __name__ == "__main__":
    main()
