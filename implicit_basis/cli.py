"""The ``implicit-basis`` command (also ``python -m implicit_basis``).

Subcommands:

- ``problems``: list the problem suite.
- ``compare PROBLEM...``: run the differentiation modes on suite problems and
  print a table; ``--json`` and ``--plot`` write the full record and a figure.
  ``--benchmark`` is the implicit backend's benchmark: the three Gaussian
  lasso sizes against cvxpylayers, MOREAU and scikit-learn, with time ratios.
- ``demo``: provided by ``implicit_basis.demo`` when that module defines
  ``configure_parser(parser)``, which adds its arguments, and
  ``run(args) -> int``. Until then the subcommand prints that it is not
  available and exits with status 1.

Logging is configured here (``--log-level``), never by the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def main(argv=None) -> int:
    """Run the command line ``argv`` (``sys.argv[1:]`` when None) and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``implicit-basis`` with all its subcommands."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="implicit-basis",
        description="Differentiable sparse coding: the problem suite and the comparison of "
        "differentiation modes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=LOG_LEVELS, type=str.upper,
        help="logging level of the implicit_basis loggers (default: WARNING)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_problems(commands)
    _add_compare(commands)
    _add_demo(commands)
    return parser


# -----------------------------------------------------------------------------
# problems


def _add_problems(commands) -> None:
    parser = commands.add_parser(
        "problems", help="list the problem suite",
        description="List the problems of the suite: name, kind, dictionary, samples, SNR.",
    )
    parser.add_argument(
        "--variants", action="store_true",
        help="list one line per SNR variant (NAME@snr=VALUE) instead of one per file",
    )
    parser.set_defaults(handler=_run_problems)


def _run_problems(args) -> int:
    from . import suite

    rows = [("name", "kind", "dictionary", "test", "train", "SNR dB", "dtype", "description")]
    try:
        specs = [suite.load(name) for name in suite.list_problems()]
    except suite.SuiteError as error:
        print(f"implicit-basis problems: {error}", file=sys.stderr)
        return 1
    if args.variants:
        specs = [variant for spec in specs for variant in spec.variants()]
    for spec in specs:
        summary = spec.summary()
        rows.append(tuple(str(summary[key]) for key in (
            "name", "kind", "dictionary", "test", "train", "snr_db", "dtype", "description")))
    if len(rows) == 1:
        folders = ", ".join(str(folder) for folder in suite.problem_dirs())
        print(f"no problem files found in {folders}", file=sys.stderr)
        return 1
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        print("  ".join([*cells, row[-1]]))
    return 0


# -----------------------------------------------------------------------------
# compare


def _add_compare(commands) -> None:
    from .compare import METHOD_GROUPS, METHOD_NAMES, REFERENCE_METHODS

    parser = commands.add_parser(
        "compare", help="compare differentiation modes on suite problems",
        description="Run each method on each problem; print forward and backward times, memory, "
        "solution and gradient errors against a reference, NMSE and support recovery.",
    )
    parser.add_argument(
        "problems", nargs="*", metavar="PROBLEM",
        help="suite names (see `implicit-basis problems`), NAME@snr=VALUE variants or TOML paths",
    )
    names = ", ".join([*METHOD_NAMES, *METHOD_GROUPS])
    parser.add_argument(
        "--backends", type=_names, default=None,
        help=f"comma-separated methods among: {names} (default: implicit, cvxpylayers, "
        "unrolled, learned, sklearn)",
    )
    parser.add_argument("--iterations", type=_integers, default=(10, 30, 100, 300),
                        help="ISTA/FISTA iteration counts, comma-separated (default: 10,30,100,300)")
    parser.add_argument("--layers", type=int, default=16, help="depth of the learned networks (default: 16)")
    parser.add_argument("--train-steps", type=int, default=200,
                        help="Adam steps per training stage of each learned network (default: 200)")
    parser.add_argument("--train-batch", type=int, default=64, help="training mini-batch size (default: 64)")
    parser.add_argument("--train-lr", type=float, default=5e-4, help="Adam learning rate (default: 5e-4)")
    parser.add_argument("--samples", type=_samples, default=None,
                        help="test samples per problem, or 'all' (default: 64; all with --benchmark)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default: 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default: 5)")
    parser.add_argument("--batch-cap", type=_pair(int), action="append", default=[], metavar="METHOD=N",
                        help="largest batch METHOD runs, e.g. cvxpylayers=16 (repeatable)")
    parser.add_argument("--time-budget", type=_pair(float), action="append", default=[],
                        metavar="METHOD=SECONDS",
                        help="seconds for all runs of METHOD: a one-sample probe shrinks its batch "
                        "to fit and repeats stop once spent (repeatable)")
    parser.add_argument("--reference", choices=REFERENCE_METHODS, default="clarabel",
                        help="reference solutions: 'clarabel' (cvxpy + Clarabel at 1e-12, polished) "
                        "or 'implicit' (the implicit backend at tol=1e-14) (default: clarabel)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="folder of cached reference solutions (default: ~/.cache/implicit_basis/reference)")
    parser.add_argument("--no-cache", action="store_true", help="compute the references without the cache")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                        help="override the problems' dtype")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the loss weights and training batches")
    parser.add_argument("--sklearn-tol", type=float, default=1e-8,
                        help="scikit-learn's tol when the implicit backend has no result to match "
                        "(default: 1e-8, the value sparse_encode uses)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every field as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH", help="draw a PNG figure")
    parser.add_argument("--benchmark", action="store_true",
                        help="the implicit backend's benchmark: the three Gaussian lasso sizes, "
                        "implicit, cvxpylayers, moreau and sklearn, with time ratios")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_run_compare)


def _names(text: str) -> tuple:
    from .compare import expand_names

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    try:
        expand_names(names)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return names


def _integers(text: str) -> tuple:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _samples(text: str):
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}")
    return value


def _pair(convert):
    def parse(text: str):
        name, separator, value = text.partition("=")
        if not separator or not name:
            raise argparse.ArgumentTypeError(f"expected METHOD=VALUE, got {text!r}")
        try:
            return name.strip(), convert(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"invalid value in {text!r}: {error}") from error

    return parse


def _run_compare(args) -> int:
    import torch

    from . import compare as harness
    from .suite import SuiteError

    problems = list(args.problems) or (list(harness.BENCHMARK_PROBLEMS) if args.benchmark else [])
    if not problems:
        print("implicit-basis compare: name at least one problem (see `implicit-basis problems`), "
              "or pass --benchmark", file=sys.stderr)
        return 2
    methods = args.backends or (harness.BENCHMARK_METHODS if args.benchmark else harness.DEFAULT_METHODS)
    samples = args.samples
    if samples is None:
        samples = "all" if args.benchmark else 64
    cache_dir = None if args.no_cache else (args.cache_dir or harness.default_cache_dir())
    config = harness.CompareConfig(
        methods=tuple(methods), iterations=args.iterations, layers=args.layers,
        train_steps=args.train_steps, train_batch=args.train_batch, train_lr=args.train_lr,
        samples=None if samples == "all" else samples, warmup=args.warmup, repeats=args.repeats,
        batch_caps=dict(args.batch_cap), time_budgets=dict(args.time_budget),
        reference=args.reference, cache_dir=cache_dir,
        dtype=None if args.dtype is None else getattr(torch, args.dtype), device=args.device,
        seed=args.seed, sklearn_tol=args.sklearn_tol,
        progress=False if args.no_progress else None,
    )
    try:
        result = harness.compare(problems, config)
    except (SuiteError, ValueError) as error:
        print(f"implicit-basis compare: {error}", file=sys.stderr)
        return 2

    print(harness.format_table(result, benchmark=args.benchmark))
    if args.json is not None:
        path = harness.write_json(result, args.json)
        print(f"wrote {path}")
    if args.plot is not None:
        try:
            path = harness.plot(result, args.plot)
        except ImportError as error:
            print(f"implicit-basis compare: {error}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
    return 0


# -----------------------------------------------------------------------------
# demo


def _add_demo(commands) -> None:
    import importlib

    try:
        demo = importlib.import_module(f"{__package__}.demo")
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.demo":
            raise
        demo = None
    ready = demo is not None and all(
        callable(getattr(demo, name, None)) for name in ("configure_parser", "run")
    )
    parser = commands.add_parser("demo", help="run the demonstration" if ready else "not available yet")
    if not ready:
        parser.set_defaults(handler=_demo_missing)
        return
    demo.configure_parser(parser)
    parser.set_defaults(handler=demo.run)


def _demo_missing(args) -> int:
    print("implicit-basis demo: not available yet in this version of implicit_basis.", file=sys.stderr)
    return 1
