"""Reproduce Fig. 5 of Chen et al. (2018) at a short CPU budget.

Chen, Liu, Wang and Yin (2018), "Theoretical linear convergence of unfolded
ISTA and its practical weights and thresholds", NeurIPS, Fig. 5: NMSE in dB
of 16-layer networks on their synthetic problem, noiseless and at SNR 40 dB.

Run from the repository root:

    python benchmarks/chen2018.py --budget 540 --json chen2018.json

The problem is the suite's ``chen2018`` (m = 250, n = 500, entries of D drawn
N(0, 1/m) and columns scaled to unit norm, codes Bernoulli(0.1) x N(0, 1),
noise with standard deviation std(D x) 10^(-SNR/20)), in float32, on its
1000 fixed test samples. Per SNR the script measures:

- ISTA and FISTA, 16 iterations from z = 0 on the lasso with lam = 0.1 (the
  value of the authors' baselines);
- LISTA-CP, ALISTA and LISTA-CPSS with K = 16 layers, trained end to end with
  Adam on fresh batches of 64 samples (three stages: lr, lr/5, lr/50), each
  for an equal share of ``--budget`` seconds;
- the implicit lasso layer at lam = 0.1 and lam = 0.05 (absolute values), on
  the same samples in float64: its NMSE is the bias of the lasso itself,
  whatever the solver;
- implicit basis pursuit (noiseless) and basis pursuit denoising with
  sigma = sqrt(m) * noise std (noisy).

NMSE is ``10 log10(sum ||z_hat - z||^2 / sum ||z||^2)`` over the test set.
The steps per stage come from timing ten steps before each training, so
on a loaded machine, or with budgets of a few seconds, training can take
several times its share.
Chen et al. train each network layer by layer for many epochs, and the
short budget here is what separates their numbers from these.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import time

import torch

import implicit_basis as ib
from implicit_basis.suite import instance, load
from implicit_basis.synthetic import chen2018_sampler
from implicit_basis.unrolled import ALISTA, LISTACP, LISTACPSS, fista, ista, nmse_db, nmse_per_layer, train

LAYERS = 16
BATCH = 64

# NMSE in dB at 16 layers or iterations, read off Fig. 5 of Chen et al. (2018).
PUBLISHED = {
    ("ista", math.inf): -3.0,
    ("lista_cp", math.inf): -39.5,
    ("lista_cpss", math.inf): -65.0,
}

NETWORKS = {
    "lista_cp": LISTACP,
    "alista": ALISTA,
    "lista_cpss": LISTACPSS,
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--budget", type=float, default=540.0,
        help="seconds of training in total, shared equally by every network and SNR (default: 540)",
    )
    parser.add_argument(
        "--snr", type=float, nargs="+", default=[math.inf, 40.0],
        help="SNRs in dB, inf for noiseless (default: inf 40)",
    )
    parser.add_argument("--lr", type=float, default=5e-4, help="initial Adam learning rate (default: 5e-4)")
    parser.add_argument("--test", type=int, default=1000, help="test samples, at most 1000 (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training batches (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="write every number, per-layer NMSE included, to this file")
    return parser.parse_args(argv)


def seconds_per_step(model, sampler, lr: float) -> float:
    """Time a few Adam steps on a copy of ``model``, so that the model itself is untouched."""
    probe = copy.deepcopy(model)
    train(probe, sampler, steps=3, lr=lr, lr_decays=(), progress=False, log_every=0)
    start = time.perf_counter()
    train(probe, sampler, steps=10, lr=lr, lr_decays=(), progress=False, log_every=0)
    return (time.perf_counter() - start) / 10


def train_network(name: str, D, snr: float, seconds: float, args) -> dict:
    """Train one network for about ``seconds``; return it with its steps per stage and training time."""
    torch.manual_seed(args.seed)
    model = NETWORKS[name](D, LAYERS)
    sampler = chen2018_sampler(D, BATCH, 0.1, snr, generator=args.seed)
    per_step = seconds_per_step(model, sampler, args.lr)
    lr_decays = (0.2, 0.02)
    steps = max(1, int(seconds / per_step / (1 + len(lr_decays))))

    start = time.perf_counter()
    train(model, sampler, steps=steps, lr=args.lr, lr_decays=lr_decays, progress=None, log_every=0)
    elapsed = time.perf_counter() - start
    return {"steps_per_stage": steps, "train_seconds": elapsed, "model": model}


def implicit_rows(data, snr: float) -> dict:
    """Return the NMSE of the implicit lasso at two penalties, and of BP or BPDN."""
    rows = {}
    for lam in (0.1, 0.05):
        z = ib.sparse_code(data.y, data.D, ib.Lasso(lam))
        rows[f"implicit lasso lam={lam:g}"] = nmse_db(z, data.z_true)
    if math.isinf(snr):
        z = ib.sparse_code(data.y, data.D, ib.BasisPursuit())
        rows["implicit basis pursuit"] = nmse_db(z, data.z_true)
    else:
        sigma = data.noise_std * math.sqrt(data.m)
        z = ib.sparse_code(data.y, data.D, ib.BasisPursuitDenoising(sigma))
        rows["implicit BPDN sigma=sqrt(m) std"] = nmse_db(z, data.z_true)
    return rows


def run_snr(snr: float, seconds_per_network: float, args) -> dict:
    data = instance(load(f"chen2018@snr={snr:g}"), samples=args.test)
    D = data.D
    result = {"snr_db": snr, "nmse_db": {}, "per_layer": {}, "training": {}}

    for name, solver in (("ista", ista), ("fista", fista)):
        z = solver(data.y, D, 0.1, LAYERS)
        result["nmse_db"][name] = nmse_db(z, data.z_true)

    for name in NETWORKS:
        trained = train_network(name, D, snr, seconds_per_network, args)
        per_layer = nmse_per_layer(trained.pop("model"), data.y, data.z_true)
        result["nmse_db"][name] = per_layer[-1]
        result["per_layer"][name] = per_layer
        result["training"][name] = trained
        print(
            f"SNR {snr:g}: {name} trained {trained['steps_per_stage']} steps x 3 stages "
            f"in {trained['train_seconds']:.0f} s, NMSE {per_layer[-1]:.1f} dB",
            flush=True,
        )

    # The implicit layers solve the same samples drawn in float64, where y = D x
    # is exact; basis pursuit on float32 data meets it only to the rounding.
    exact = instance(load(f"chen2018@snr={snr:g}"), samples=args.test, dtype=torch.float64)
    result["nmse_db"].update(implicit_rows(exact, snr))
    return result


def print_table(results: list[dict]) -> None:
    methods = list(results[0]["nmse_db"])
    for result in results[1:]:
        methods += [name for name in result["nmse_db"] if name not in methods]
    header = "| method |" + "".join(f" SNR {r['snr_db']:g}: measured | published |" for r in results)
    print(header)
    print("|---|" + "---:|---:|" * len(results))
    for name in methods:
        cells = []
        for result in results:
            value = result["nmse_db"].get(name)
            published = PUBLISHED.get((name, result["snr_db"]))
            cells.append("n/a" if value is None else f"{value:.1f}")
            cells.append("" if published is None else f"about {published:g}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seconds_per_network = args.budget / (len(NETWORKS) * len(args.snr))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}; {seconds_per_network:.0f} s of training per network",
        flush=True,
    )

    start = time.perf_counter()
    results = [run_snr(snr, seconds_per_network, args) for snr in args.snr]
    print(f"total {time.perf_counter() - start:.0f} s\n")
    print_table(results)

    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
