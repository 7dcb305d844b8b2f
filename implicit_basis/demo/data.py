"""The demo's data: the ECG record of PyWavelets, sampled at random times and cut into windows.

The record is ``pywt.data.ecg()``: 1024 samples of an electrocardiogram that
ship with PyWavelets, so nothing is downloaded. It is standardised (zero
mean, unit standard deviation), and a seeded random subset of its sample
times is observed. The time axis is cut into consecutive windows, and each
window is coded separately. Its observed samples are gathered into a padded
(B, M) layout with a mask, so the batch holds only observed samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Windows", "load_ecg", "make_windows", "observe", "spline_reconstruction", "split_folds"]


def load_ecg() -> np.ndarray:
    """Return the ECG record of PyWavelets, standardised, as float64.

    Shape:
        result: (1024,).

    Raises:
        ImportError: PyWavelets is not installed.
    """
    try:
        import pywt.data
    except ImportError as error:
        raise ImportError(
            "the demo reads the ECG record shipped with PyWavelets, which is not installed; "
            "install it with `pip install PyWavelets` (or the examples extra, "
            "`pip install implicit-basis[examples]`)."
        ) from error
    record = np.asarray(pywt.data.ecg(), dtype=np.float64)
    return (record - record.mean()) / record.std()


def observe(n: int, fraction: float, seed: int) -> np.ndarray:
    """Return the sorted indices of ``round(fraction * n)`` sample times drawn without replacement.

    Raises:
        ValueError: ``fraction`` outside (0, 1] or fewer than 4 samples drawn,
            the least a cubic spline needs.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"observed must be a fraction in (0, 1]; got {fraction}. Pass e.g. 0.3.")
    count = round(fraction * n)
    if count < 4:
        raise ValueError(
            f"observed={fraction} keeps {count} of {n} samples, but the spline baseline needs at "
            f"least 4; raise observed."
        )
    generator = np.random.default_rng(seed)
    return np.sort(generator.choice(n, size=count, replace=False))


@dataclass
class Windows:
    """Observed samples of consecutive windows of a record, padded to a common length M.

    Window ``b`` covers the record's samples ``b * W`` to ``(b + 1) * W - 1``.
    Its observed samples are taken from that span widened by ``margin``
    samples on each side, so that a window's code also fits the samples
    just outside it and its reconstruction has no edge effect. Time is local to the window and in units of the window
    length: sample ``n`` of window ``b`` is at ``t = (n - b * W) / W``, so the
    window spans [0, 1).

    Attributes:
        t: local times of the observed samples, padded with zeros.
        y: observed values, padded with zeros.
        observed: True at real samples, False at padding.
        t_grid: local times of the window's own W samples, where it is
            reconstructed.
        window: W, samples per window.
        margin: context samples on each side.

    Shape:
        t, y, observed: (B, M); t_grid: (W,).
    """

    t: torch.Tensor
    y: torch.Tensor
    observed: torch.Tensor
    t_grid: torch.Tensor
    window: int
    margin: int

    @property
    def count(self) -> int:
        """Number of windows B."""
        return self.t.shape[0]

    def select(self, index: slice | torch.Tensor) -> Windows:
        """Return the windows at ``index`` (a slice or indices along the batch)."""
        return Windows(
            self.t[index], self.y[index], self.observed[index], self.t_grid, self.window, self.margin
        )

    def to(self, device: torch.device | str) -> Windows:
        """Return the windows on ``device``."""
        return Windows(
            self.t.to(device), self.y.to(device), self.observed.to(device),
            self.t_grid.to(device), self.window, self.margin,
        )


def make_windows(
    x: np.ndarray,
    observed: np.ndarray,
    window: int,
    margin: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Windows:
    """Cut the record ``x`` into windows of ``window`` samples with their observed samples.

    Args:
        x: the record; its length must be a multiple of ``window``.
        observed: sorted indices of the observed samples.
        window: samples per window, W.
        margin: observed samples up to this many samples outside a window
            also enter its code, >= 0.
        dtype, device: of the returned tensors.

    Raises:
        ValueError: ``window`` does not divide the record's length, ``margin``
            is negative, or a window has no observed sample.

    Shape:
        x: (N,); observed: (n_observed,); result: B = N / W windows.
    """
    n = x.shape[0]
    if window < 1 or n % window:
        raise ValueError(
            f"window must divide the record's length {n}; got {window}. Pass a divisor such as "
            f"128 (8 windows) or 256 (4 windows)."
        )
    if margin < 0:
        raise ValueError(f"margin must be >= 0 samples; got {margin}.")
    B = n // window
    members = []
    for b in range(B):
        start, stop = b * window - margin, (b + 1) * window + margin
        inside = observed[(observed >= start) & (observed < stop)]
        if inside.size == 0:
            raise ValueError(
                f"window {b} (samples {b * window} to {(b + 1) * window - 1}) has no observed "
                f"sample; raise observed, window or margin."
            )
        members.append(inside)
    M = max(inside.size for inside in members)
    t = np.zeros((B, M))
    y = np.zeros((B, M))
    mask = np.zeros((B, M), dtype=bool)
    for b, inside in enumerate(members):
        t[b, : inside.size] = (inside - b * window) / window
        y[b, : inside.size] = x[inside]
        mask[b, : inside.size] = True

    factory = {"dtype": dtype, "device": device}
    return Windows(
        t=torch.as_tensor(t, **factory),
        y=torch.as_tensor(y, **factory),
        observed=torch.as_tensor(mask, device=device),
        t_grid=torch.arange(window, **factory) / window,
        window=window,
        margin=margin,
    )


def split_folds(observed: torch.Tensor, folds: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign each observed sample to one of ``folds`` folds at random; return K-fold masks.

    For fold ``f`` of window ``b``, ``held_out[b, f]`` marks the observed samples
    of that fold and ``fit[b, f]`` the other observed samples, as in K-fold
    cross-validation: every observed sample is held out exactly once. The
    draw uses ``generator`` on the CPU, so it is the same on every device
    and in every process that seeds the generator alike.

    Raises:
        ValueError: ``folds`` < 2.

    Shape:
        observed: (B, M) bool; fit, held_out: (B, folds, M) bool.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, so that some samples are held out; got {folds}.")
    fold = torch.randint(0, folds, observed.shape, generator=generator).to(observed.device)
    index = torch.arange(folds, device=observed.device).view(1, folds, 1)
    held_out = observed.unsqueeze(1) & (fold.unsqueeze(1) == index)
    fit = observed.unsqueeze(1) & ~held_out
    return fit, held_out


def spline_reconstruction(x: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Interpolate the observed samples with scipy's cubic spline at every sample time.

    ``scipy.interpolate.CubicSpline`` with its default not-a-knot end
    conditions; before the first and after the last observed sample it
    extrapolates the end polynomials.

    Shape:
        x: (N,); observed: (n_observed,); result: (N,).
    """
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(observed, x[observed])
    return spline(np.arange(x.shape[0]))
