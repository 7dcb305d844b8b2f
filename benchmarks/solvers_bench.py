"""Benchmark the forward lasso solver against scikit-learn and plain FISTA.

Run from the repository root:

    python benchmarks/solvers_bench.py --threads 2 --repeats 5

Problems: Gaussian dictionaries with unit-norm atoms (m, k), codes with 10%
nonzero Gaussian entries, noise 0.01, each signal scaled so that its
``lam_max`` is 1, and ``lam = 0.1`` (so ``lam = 0.1 lam_max`` for every
sample and one ``alpha`` serves scikit-learn). Reported per size:

- ``implicit_basis.solvers.solve`` (float32 proximal gradient, then the exact
  float64 polish): wall time, largest relative duality gap, mean iterations;
- ``sklearn.decomposition.sparse_encode(Y, D.T, algorithm="lasso_cd",
  alpha=lam)`` (its coordinate descent stops at its own tol of 1e-8):
  wall time and largest gap by the same formula;
- plain FISTA with gradient restarts in float64 (this package's iteration,
  no polish): wall time to reach the scikit-learn gap and to reach 1e-10;
- at the largest size, the cost of one proximal-gradient iteration against
  the throughput of ``torch.matmul`` on this machine.

The last table is the small case (m, k) = (20, 50) with 3-sparse codes and
B in {1, 64, 256}. Times are the minimum over ``--repeats`` runs; torch and
the BLAS under scikit-learn both get ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from sklearn.decomposition import sparse_encode
from threadpoolctl import threadpool_limits

import implicit_basis as ib
from implicit_basis.solvers import solve
from implicit_basis.solvers.apg import run_apg, start_apg
from implicit_basis.solvers.gap import relative_gap
from implicit_basis.solvers.operator import DictionaryOperator
from implicit_basis.solvers.penalties import penalty_for

SIZES = [(64, 256, 64), (128, 512, 128), (256, 1024, 256)]


def make_problem(m, k, B, seed, density=0.1, noise=0.01):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, k))
    D /= np.linalg.norm(D, axis=0)
    X = np.zeros((B, k))
    nnz = max(1, int(round(density * k)))
    for b in range(B):
        X[b, rng.choice(k, nnz, replace=False)] = rng.standard_normal(nnz)
    Y = X @ D.T + noise * rng.standard_normal((B, m))
    Y /= np.abs(Y @ D).max(axis=1, keepdims=True)
    return Y, D


def best_time(function, repeats):
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def gap_of(problem, Z, Y, D):
    return float(problem.duality_gap(torch.as_tensor(Z), torch.as_tensor(Y), torch.as_tensor(D)).max())


def ours(problem, y, D):
    params = problem.resolve(y.shape[0], D.shape[1], y.dtype, y.device)
    return solve(problem, y, D, params)


def plain_fista(problem, y, D, target_gap, max_iter=20000):
    """Run restarted FISTA in float64 until every sample's gap is below ``target_gap``."""
    params = problem.resolve(y.shape[0], D.shape[1], y.dtype, y.device)
    penalty = penalty_for(problem.kind, params)
    op = DictionaryOperator(D, y.shape[0])
    step = (1.0 / op.squared_norm()).unsqueeze(-1)
    state = start_apg(torch.zeros(y.shape[0], D.shape[1], dtype=y.dtype), y, op, step)
    iterations = 0
    while iterations < max_iter:
        run_apg(state, y, op, penalty, 10, backtrack=False)
        iterations += 10
        gap = relative_gap(penalty, y, op, state.z, state.Dz, state.w, state.Dw, state.corr_w)
        if float(gap.max()) <= target_gap:
            break
    return state.z, iterations


def lasso_table(repeats, threads):
    print("## Lasso, lam = 0.1 lam_max, float64 in and out\n")
    print("| m, k, B | ours (s) | ours gap | ours iter | sklearn (s) | sklearn gap | ratio | "
          "FISTA to sklearn gap (s) | FISTA to 1e-10 (s) | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m, k, B in SIZES:
        Y, D = make_problem(m, k, B, seed=0)
        y, Dt = torch.as_tensor(Y), torch.as_tensor(D)
        problem = ib.Lasso(0.1)
        t_ours, (z, info) = best_time(lambda: ours(problem, y, Dt), repeats)
        with threadpool_limits(threads):
            t_sk, Z_sk = best_time(
                lambda: sparse_encode(Y, D.T, algorithm="lasso_cd", alpha=0.1, max_iter=100000), repeats
            )
        sk_gap = gap_of(problem, Z_sk, Y, D)
        t_f1, _ = best_time(lambda: plain_fista(problem, y, Dt, sk_gap), max(1, repeats // 2))
        t_f2, (_, fista_iterations) = best_time(lambda: plain_fista(problem, y, Dt, 1e-10), max(1, repeats // 2))
        print(
            f"| {m}, {k}, {B} | {t_ours:.3f} | {float(info.gap.max()):.1e} | {info.iterations.float().mean():.0f} "
            f"| {t_sk:.3f} | {sk_gap:.1e} | {t_ours / t_sk:.2f} | {t_f1:.3f} | {t_f2:.3f} ({fista_iterations} it) "
            f"| {np.abs(Z_sk - z.numpy()).max():.1e} |"
        )


def throughput_table(repeats):
    m, k, B = SIZES[-1]
    Y, D = make_problem(m, k, B, seed=0)
    print(f"\n## Cost of one proximal-gradient iteration at (m, k, B) = ({m}, {k}, {B})\n")
    print("| dtype | iteration (ms) | GFLOP/s of its 2 products | same products alone (GFLOP/s) | "
          "torch.matmul 2048^3 (GFLOP/s) |")
    print("|---|---|---|---|---|")
    flops = 4.0 * B * m * k
    for dtype in (torch.float64, torch.float32):
        y, Dt = torch.as_tensor(Y, dtype=dtype), torch.as_tensor(D, dtype=dtype)
        problem = ib.Lasso(0.1)
        params = problem.resolve(B, k, dtype, y.device)
        penalty = penalty_for("lasso", params)
        op = DictionaryOperator(Dt, B)
        step = (1.0 / op.squared_norm()).unsqueeze(-1)
        state = start_apg(torch.zeros(B, k, dtype=dtype), y, op, step)
        n = 20
        t_iter, _ = best_time(lambda: run_apg(state, y, op, penalty, n, backtrack=False), repeats)
        Z = torch.randn(B, k, dtype=dtype)
        R = torch.randn(B, m, dtype=dtype)
        t_products, _ = best_time(lambda: (Z @ Dt.T, R @ Dt), repeats)
        A = torch.randn(2048, 2048, dtype=dtype)
        t_peak, _ = best_time(lambda: A @ A, repeats)
        per_iteration = t_iter / n
        print(
            f"| {str(dtype).replace('torch.', '')} | {per_iteration * 1e3:.2f} | {flops / per_iteration / 1e9:.1f} "
            f"| {flops / t_products / 1e9:.1f} | {2 * 2048**3 / t_peak / 1e9:.1f} |"
        )


def small_table(repeats, threads):
    print("\n## Small shared dictionary (m, k) = (20, 50), 3-sparse codes, lam = 0.1 lam_max per sample\n")
    print("| B | ours (s) | sklearn, one sample at a time (s) | ratio |")
    print("|---|---|---|---|")
    for B in (1, 64, 256):
        rng = np.random.default_rng(23)
        D = rng.standard_normal((20, 50)) / np.sqrt(20)
        X = np.zeros((B, 50))
        noise = np.zeros((B, 20))
        for b in range(B):
            X[b, rng.choice(50, 3, replace=False)] = rng.standard_normal(3)
            noise[b] = 0.01 * rng.standard_normal(20)
        Y = X @ D.T + noise
        lam = 0.1 * np.abs(Y @ D).max(axis=1)
        problem = ib.Lasso(torch.as_tensor(lam))
        t_ours, _ = best_time(lambda: ours(problem, torch.as_tensor(Y), torch.as_tensor(D)), repeats)

        def sklearn_loop():
            return [sparse_encode(Y[b : b + 1], D.T, algorithm="lasso_cd", alpha=lam[b]) for b in range(B)]

        with threadpool_limits(threads):
            t_sk, _ = best_time(sklearn_loop, repeats)
        print(f"| {B} | {t_ours:.4f} | {t_sk:.4f} | {t_ours / t_sk:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per entry; the minimum is reported")
    parser.add_argument("--skip-small", action="store_true", help="skip the (20, 50) table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads, best of {args.repeats}, load average before the run {load}\n")
    lasso_table(args.repeats, args.threads)
    throughput_table(args.repeats)
    if not args.skip_small:
        small_table(args.repeats, args.threads)


if __name__ == "__main__":
    main()
