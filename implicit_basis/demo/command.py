"""The ``implicit-basis demo`` command: its arguments and its entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["configure_parser", "main", "run"]

DESCRIPTION = (
    "Fit the ECG record of PyWavelets from a random 30% of its samples with a sparse-coding "
    "layer over learned Gabor and damped-sinusoid atoms, train the atoms and the penalty through "
    "the implicit layer, unrolled FISTA and a learned unrolled network, and compare with cubic "
    "spline interpolation. Prints a table and writes demo.json and demo.png."
)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` and return it."""
    from .pipeline import DemoConfig

    defaults = DemoConfig()
    parser.description = DESCRIPTION
    add = parser.add_argument
    add("--out", type=Path, default=defaults.out,
        help=f"output folder of demo.json and demo.png (default: {defaults.out})")
    add("--seed", type=int, default=defaults.seed,
        help=f"seed of the observed samples and of the folds (default: {defaults.seed})")
    add("--observed", type=float, default=defaults.observed,
        help=f"fraction of the 1024 samples that is observed (default: {defaults.observed})")
    add("--window", type=int, default=defaults.window,
        help=f"samples per window, a divisor of 1024; one code per window (default: {defaults.window})")
    add("--margin", type=int, default=defaults.margin,
        help="observed samples up to this many samples outside a window also enter its code "
        f"(default: {defaults.margin})")
    add("--steps", type=int, default=defaults.steps,
        help=f"training steps of each trained model (default: {defaults.steps})")
    add("--folds", type=int, default=defaults.folds,
        help=f"cross-validation folds of the held-out loss, >= 2 (default: {defaults.folds})")
    add("--lr", type=float, default=defaults.lr,
        help=f"Adam step for centres and frequencies, in window lengths and cycles per window (default: {defaults.lr})")
    add("--lr-log", type=float, default=defaults.lr_log,
        help="Adam step for log-scale parameters: widths, decay rates, lam, and the learned "
        f"network's steps and thresholds (default: {defaults.lr_log})")
    add("--lam", type=float, default=defaults.lam,
        help=f"initial lasso weight, on the standardised record (default: {defaults.lam})")
    add("--fista-steps", type=int, default=defaults.fista_steps,
        help=f"FISTA steps T of the unrolled backend (default: {defaults.fista_steps})")
    add("--layers", type=int, default=defaults.layers,
        help=f"layers K of the learned unrolled network (default: {defaults.layers})")
    add("--dtype", choices=("float32", "float64"), default=defaults.dtype,
        help=f"floating dtype of the models (default: {defaults.dtype})")
    add("--device", default=defaults.device, help=f"torch device, e.g. cuda (default: {defaults.device})")
    add("--threads", type=int, default=defaults.threads,
        help=f"torch CPU threads during the run; 0 keeps torch's setting (default: {defaults.threads})")
    add("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed ``args``, print its table, and return the exit status."""
    import torch

    from .pipeline import DemoConfig, run_demo

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"implicit-basis demo: --device {args.device} was requested but CUDA is not "
              f"available; run with --device cpu.", file=sys.stderr)
        return 2
    config = DemoConfig(
        out=args.out, seed=args.seed, observed=args.observed, window=args.window, margin=args.margin,
        steps=args.steps, folds=args.folds, lr=args.lr, lr_log=args.lr_log, lam=args.lam,
        fista_steps=args.fista_steps, layers=args.layers, dtype=args.dtype, device=args.device,
        threads=args.threads, progress=not args.no_progress,
    )
    try:
        result = run_demo(config)
    except (ValueError, ImportError) as error:
        print(f"implicit-basis demo: {error}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"wrote {result['files']['json']} and {result['files']['png']} in {result['seconds']:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None), run the demo and return the exit status."""
    parser = configure_parser(argparse.ArgumentParser(prog="implicit-basis demo"))
    return run(parser.parse_args(argv))
