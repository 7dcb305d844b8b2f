"""Learn the frequencies and decay rates of damped sinusoids through a sparse-coding layer.

Run: python examples/learn_frequencies.py [--steps 150] [--n-times 200] [--loss fit] [--seed 0]

A signal made of a few damped sinusoids with off-grid frequencies is observed
at a random 40% of the times of a uniform grid, with noise. A ``SparseCoding``
layer over a ``DampedSinusoids`` frame, started away from the true
frequencies and decay rates, codes the observed samples with a lasso, and the
frame's frequencies and decay rates are trained by gradient through the layer.

Two losses are available. ``fit`` (the default) is the mean squared residual
of the lasso fit on every observed sample, the variable-projection loss of
frequency estimation. ``held-out`` fits the codes on three quarters of the
observed samples and scores their reconstruction at the other quarter, so the
gradient also goes through the atoms at the held-out times. The script prints
the frequency and decay-rate errors and the reconstruction error at the
unobserved times, before and after training.
"""

from __future__ import annotations

import argparse
import math

import torch
from tqdm import tqdm

import implicit_basis as ib
from implicit_basis import frames

# The true components: frequency (Hz, cycles per unit of t), decay rate
# (1 / unit of t), amplitude and phase. The frequencies are not multiples of
# the grid's frequency resolution 1 / duration.
FREQS = (3.3, 7.45, 12.2)
DECAYS = (0.6, 1.4, 0.9)
AMPLITUDES = (1.0, 0.8, 0.6)
PHASES = (0.3, 2.1, -1.0)

# The starting point: each frequency is 0.2 to 0.3 Hz off, about half the
# resolution 1 / duration = 0.5 Hz, and every decay rate starts at 1. Runs of
# this script with all three offsets at +-0.8 Hz and 300 steps converged too.
FREQ_OFFSETS = (0.25, -0.3, 0.2)
DECAY_START = 1.0


def make_signal(n_times: int, duration: float, observed: float, noise: float, seed: int):
    """Return the grid t, the clean signal on it and the mask of observed times.

    Shape:
        t, clean: (n_times,); observed mask: (n_times,) bool.
    """
    generator = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, duration, n_times, dtype=torch.float64)
    clean = torch.zeros_like(t)
    for f, d, a, p in zip(FREQS, DECAYS, AMPLITUDES, PHASES):
        clean += a * torch.exp(-d * t) * torch.cos(2 * math.pi * f * t + p)
    n_observed = round(observed * n_times)
    order = torch.randperm(n_times, generator=generator)
    mask = torch.zeros(n_times, dtype=torch.bool)
    mask[order[:n_observed]] = True
    noisy = clean + noise * torch.randn(n_times, generator=generator, dtype=torch.float64)
    return t, clean, noisy, mask


def parameter_errors(frame: frames.DampedSinusoids) -> tuple[float, float]:
    """Return the largest absolute frequency error (Hz) and decay-rate error (1/s).

    The pairs are matched to the true components by sorting both by frequency.
    """
    freqs, order = torch.sort(frame.freqs.detach())
    decays = frame.decays.detach()[order]
    true_freqs = torch.tensor(sorted(FREQS), dtype=freqs.dtype)
    true_decays = torch.tensor([d for _, d in sorted(zip(FREQS, DECAYS))], dtype=decays.dtype)
    return float((freqs - true_freqs).abs().max()), float((decays - true_decays).abs().max())


def unobserved_error(layer, t, clean, noisy, mask) -> float:
    """Return the relative RMS error of the fit of all observed samples at the unobserved times."""
    with torch.no_grad():
        z = layer(noisy[mask], t[mask])
        fitted = layer.reconstruct(z, t[~mask], t=t[mask])
    return float((fitted - clean[~mask]).norm() / clean[~mask].norm())


def main(argv=None) -> dict:
    """Run the example; return the errors before and after training."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-times", type=int, default=200, help="points of the time grid")
    parser.add_argument("--duration", type=float, default=2.0, help="length of the grid, in seconds")
    parser.add_argument("--observed", type=float, default=0.4, help="fraction of observed times")
    parser.add_argument("--noise", type=float, default=0.02, help="standard deviation of the noise")
    parser.add_argument(
        "--loss", choices=("fit", "held-out"), default="fit",
        help="fit: residual on every observed sample; held-out: error on a held-out quarter",
    )
    parser.add_argument("--lam", type=float, default=1e-3, help="lasso weight, relative to lam_max of the signal")
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--lr", type=float, default=0.02, help="Adam learning rate for the frequencies, in Hz")
    parser.add_argument("--backend", default="auto", help="auto, implicit or cvxpylayers")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling and the noise")
    args = parser.parse_args(argv)

    t, clean, noisy, mask = make_signal(args.n_times, args.duration, args.observed, args.noise, args.seed)
    observed = torch.nonzero(mask).flatten()
    generator = torch.Generator().manual_seed(args.seed + 1)
    shuffled = observed[torch.randperm(observed.numel(), generator=generator)]
    n_held_out = round(0.25 * observed.numel()) if args.loss == "held-out" else 0
    fit = torch.sort(shuffled[n_held_out:]).values
    # With the fit loss the residual is scored on the fitted samples themselves.
    scored = torch.sort(shuffled[:n_held_out]).values if n_held_out else fit

    start_freqs = [f + offset for f, offset in zip(FREQS, FREQ_OFFSETS)]
    frame = frames.DampedSinusoids(start_freqs, DECAY_START, dtype=torch.float64)
    with torch.no_grad():
        lam = args.lam * float(ib.lam_max(noisy[mask], frame(t[mask])))
    layer = ib.SparseCoding(frame, ib.Lasso(lam), backend=args.backend)
    optimizer = torch.optim.Adam(
        [{"params": [frame.freqs], "lr": args.lr}, {"params": [frame.raw_decays], "lr": 5 * args.lr}]
    )

    before = parameter_errors(frame) + (unobserved_error(layer, t, clean, noisy, mask),)
    print(
        f"{int(mask.sum())} of {args.n_times} times observed, {fit.numel()} fitted, loss "
        f"{args.loss!r} on {scored.numel()}; {len(FREQS)} damped sinusoids, backend {args.backend}"
    )
    progress = tqdm(range(args.steps), desc="training", leave=False)
    for _ in progress:
        optimizer.zero_grad()
        z = layer(noisy[fit], t[fit])
        predicted = layer.reconstruct(z, t[scored], t=t[fit])
        loss = ((predicted - noisy[scored]) ** 2).mean()
        loss.backward()
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.2e}", freq_error=f"{parameter_errors(frame)[0]:.3f}")
    progress.close()
    after = parameter_errors(frame) + (unobserved_error(layer, t, clean, noisy, mask),)

    print(f"{'':<34}{'before':>10}{'after':>10}")
    names = ("max frequency error (Hz)", "max decay-rate error (1/s)", "relative error, unobserved")
    for name, old, new in zip(names, before, after):
        print(f"{name:<34}{old:>10.4f}{new:>10.4f}")
    # The same fit with the true frequencies and decay rates: the floor set by
    # the noise and the missing samples.
    true_frame = frames.DampedSinusoids(FREQS, DECAYS, learn=False, dtype=torch.float64)
    floor = unobserved_error(ib.SparseCoding(true_frame, ib.Lasso(lam), backend=args.backend), t, clean, noisy, mask)
    print(f"{'relative error, true parameters':<34}{floor:>20.4f}")
    print("true freqs   ", " ".join(f"{f:.4f}" for f in FREQS))
    print("learned freqs", " ".join(f"{f:.4f}" for f in frame.freqs.detach().tolist()))
    print("true decays  ", " ".join(f"{d:.4f}" for d in DECAYS))
    print("learned decays", " ".join(f"{d:.4f}" for d in frame.decays.detach().tolist()))
    keys = ("freq_error", "decay_error", "unobserved_error")
    return {"before": dict(zip(keys, before)), "after": dict(zip(keys, after)), "floor": floor}


if __name__ == "__main__":
    main()
