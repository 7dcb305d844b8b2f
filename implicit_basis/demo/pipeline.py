"""The demo from start to end: data, baselines, three trained models, table, JSON and figure."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import load_ecg, make_windows, observe, spline_reconstruction
from .model import FrameSpec, WindowCoder, build_frame
from .report import errors, format_table, plot, write_json
from .train import reconstruct_record, train

__all__ = ["DemoConfig", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """Settings of the demo; ``implicit-basis demo --help`` describes each one.

    The defaults run in about a minute on two CPU cores.

    ``threads`` is the number of torch CPU threads during the run (0 keeps
    torch's setting). The default is 1 because the demo's matrices are small
    (about 60 x 130 per window), so a second thread has little work to
    share. On a two-core machine busy with other jobs, two threads made one
    solve of the demo 35 times slower than one thread (56 s against 1.6 s).
    """

    out: Path = Path("out/demo")
    seed: int = 0
    observed: float = 0.3
    window: int = 128
    margin: int = 16
    steps: int = 25
    folds: int = 4
    lr: float = 5e-3
    lr_log: float = 0.1
    lam: float = 0.02
    fista_steps: int = 50
    layers: int = 20
    dtype: str = "float64"
    device: str = "cpu"
    threads: int = 1
    progress: bool = True
    frame: FrameSpec = field(default_factory=FrameSpec)


def _labels(config: DemoConfig) -> dict:
    """Return the method keys, in the table's order, with their labels."""
    return {
        "spline": "cubic spline (scipy)",
        "untrained": "frame, untrained (implicit)",
        "implicit": "implicit layer, trained",
        "unrolled": f"unrolled FISTA (T={config.fista_steps}), trained",
        "learned": f"learned ISTA (K={config.layers}), trained",
    }


def run_demo(config: DemoConfig | None = None) -> dict:
    """Run the demo and write its JSON record and figure to ``config.out``.

    Observes a seeded random ``config.observed`` fraction of the ECG record,
    fits each window's observed samples with a lasso over the frame of
    ``build_frame``, and reconstructs all samples with five methods:

    - ``spline``: scipy's cubic spline through the observed samples;
    - ``untrained``: the implicit layer with the initial frame and ``lam``;
    - ``implicit``, ``unrolled``, ``learned``: a ``WindowCoder`` of that
      method, each started from the same frame and ``lam`` and trained for
      ``config.steps`` steps on the K-fold held-out error (see ``train``).

    Returns:
        The record written to ``demo.json``: the settings, the data, the
        frame, one entry per method (errors, training time, losses, final
        ``lam``), the total time and the paths of the files.

    Raises:
        ValueError: invalid settings (a window that does not divide the
            record, an unknown dtype, too few observed samples).
    """
    config = DemoConfig() if config is None else config
    _check(config)
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config)
    finally:
        torch.set_num_threads(previous)


def _run(config: DemoConfig) -> dict:
    start = time.perf_counter()
    dtype = _dtype(config.dtype)
    device = torch.device(config.device)
    labels = _labels(config)

    x = load_ecg()
    observed = observe(x.shape[0], config.observed, config.seed)
    windows = make_windows(x, observed, config.window, config.margin, dtype=dtype, device=device)
    interior = slice(int(observed[0]), int(observed[-1]) + 1)

    def new_model(method: str) -> WindowCoder:
        frame = build_frame(config.window, config.margin, config.frame, dtype=dtype, device=device)
        depth = config.fista_steps if method == "unrolled" else config.layers
        return WindowCoder(frame, config.lam, method, depth)

    reconstructions, rows = {}, []

    tick = time.perf_counter()
    reconstructions["spline"] = spline_reconstruction(x, observed)
    rows.append(_row("spline", labels, x, reconstructions["spline"], interior, time.perf_counter() - tick))

    untrained = new_model("implicit")
    tick = time.perf_counter()
    reconstructions["untrained"], unconverged = reconstruct_record(untrained, windows)
    rows.append(_row(
        "untrained", labels, x, reconstructions["untrained"], interior, time.perf_counter() - tick,
        lam=float(untrained.lam.detach()), unconverged=unconverged,
    ))

    for method in ("implicit", "unrolled", "learned"):
        model = new_model(method)
        history = train(
            model, windows, steps=config.steps, lr=config.lr, lr_log=config.lr_log,
            folds=config.folds, seed=config.seed + 1, progress=config.progress,
            description=labels[method],
        )
        tick = time.perf_counter()
        reconstructions[method], unconverged = reconstruct_record(model, windows)
        rows.append(_row(
            method, labels, x, reconstructions[method], interior, time.perf_counter() - tick,
            train_seconds=history.seconds, steps=config.steps, lam=float(model.lam.detach()),
            losses=history.losses, unconverged=unconverged + history.unconverged,
        ))
        logger.info("%s: trained in %.1f s", labels[method], history.seconds)

    out = Path(config.out)
    settings = asdict(config)
    settings["out"] = str(out)
    settings["frame"] = config.frame.as_dict()
    result = {
        "config": settings,
        "record": {
            "source": "pywt.data.ecg()",
            "samples": int(x.shape[0]),
            "observed": int(observed.size),
            "observed_fraction": config.observed,
            "observed_indices": observed.tolist(),
            "interior": [interior.start, interior.stop - 1],
        },
        "windows": {
            "count": windows.count,
            "window": windows.window,
            "margin": windows.margin,
            "max_samples": int(windows.t.shape[1]),
        },
        "frame": {"atoms": untrained.frame.n_atoms, "groups": untrained.frame.groups},
        "methods": rows,
        "environment": {
            "torch": torch.__version__,
            "device": str(device),
            "dtype": config.dtype,
            "threads": torch.get_num_threads(),
        },
    }
    result["files"] = {"json": str(out / "demo.json"), "png": str(out / "demo.png")}
    plot(x, observed, reconstructions, labels, out / "demo.png")
    result["seconds"] = time.perf_counter() - start
    write_json(result, out / "demo.json")
    result["table"] = format_table(result)
    return result


def _row(key, labels, x, reconstruction, interior, eval_seconds, *, train_seconds=None, steps=0,
         lam=None, losses=(), unconverged=0) -> dict:
    """Return one method's entry of the record."""
    return {
        "key": key,
        "label": labels[key],
        **errors(reconstruction, x, interior),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "steps": steps,
        "lam": lam,
        "losses": [float(loss) for loss in losses],
        "unconverged": unconverged,
    }


def _check(config: DemoConfig) -> None:
    """Raise ValueError for a setting out of range, before any work."""
    limits = (
        ("steps", config.steps, 0, "0 evaluates the untrained models only"),
        ("folds", config.folds, 2, "each step holds out 1 / folds of the samples"),
        ("fista_steps", config.fista_steps, 1, "the unrolled backend runs at least one step"),
        ("layers", config.layers, 1, "the learned network has at least one layer"),
        ("margin", config.margin, 0, "it counts samples"),
        ("threads", config.threads, 0, "0 keeps torch's setting"),
    )
    for name, value, least, reason in limits:
        if value < least:
            raise ValueError(f"{name} must be >= {least} ({reason}); got {value}.")
    if not config.lam > 0:
        raise ValueError(f"lam must be positive, since it is trained as log(lam); got {config.lam}.")
    _dtype(config.dtype)


def _dtype(name: str) -> torch.dtype:
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {name!r}.")
    return getattr(torch, name)
