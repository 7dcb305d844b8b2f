"""Normalised mean squared error in dB, overall and per layer."""

from __future__ import annotations

import torch

__all__ = ["nmse_db", "nmse_per_layer"]


def nmse_db(z_hat: torch.Tensor, z_true: torch.Tensor) -> float:
    """Return ``10 log10(sum ||z_hat - z||^2 / sum ||z||^2)`` over the whole batch.

    The sums run over all samples and entries, as in Chen et al. (2018). An
    exact estimate gives ``-inf``.

    Shape:
        z_hat, z_true: the same shape, e.g. (B, n).

    Raises:
        ValueError: the shapes differ, or ``z_true`` is zero everywhere.
    """
    if z_hat.shape != z_true.shape:
        raise ValueError(
            f"z_hat and z_true must have the same shape, got {tuple(z_hat.shape)} "
            f"and {tuple(z_true.shape)}."
        )
    with torch.no_grad():
        error = (z_hat - z_true).pow(2).sum()
        reference = z_true.pow(2).sum()
        if float(reference) == 0.0:
            raise ValueError("z_true is zero everywhere, so the NMSE is undefined.")
        return float(10.0 * torch.log10(error / reference))


def nmse_per_layer(model, y: torch.Tensor, z: torch.Tensor) -> list[float]:
    """Return the NMSE in dB of every layer's estimate of ``z`` from ``y``.

    ``model(y, return_all=True)`` must return the list of per-layer estimates,
    as the networks of this package do. Runs without autograd.

    Shape:
        y: (B, m); z: (B, n); result: one float per layer, layer 1 first.
    """
    with torch.no_grad():
        estimates = model(y, return_all=True)
    return [nmse_db(z_hat, z) for z_hat in estimates]
