"""Input checks of the unrolled networks and the classic iterations.

Each check raises ``TypeError`` for a wrong type or dtype and ``ValueError``
for a wrong shape, value or device. The message names the argument, the
expected and the received value, and the fix.
"""

from __future__ import annotations

import math
import numbers

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_dictionary(D, name: str = "D", batched: bool = False) -> torch.Tensor:
    """Return ``D`` after checking that it is a finite float32/float64 dictionary.

    ``D`` must be (m, n); with ``batched=True`` a per-sample (B, m, n) stack is
    also accepted.
    """
    if not isinstance(D, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (m, n) with atoms as columns, "
            f"got {type(D).__name__}; convert it with torch.as_tensor({name})."
        )
    if D.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {D.dtype}; "
            f"cast it with {name}.to(torch.float32) or {name}.to(torch.float64)."
        )
    allowed = (2, 3) if batched else (2,)
    if D.dim() not in allowed:
        expected = "(m, n) or (B, m, n)" if batched else "(m, n)"
        raise ValueError(
            f"{name} must have shape {expected} with atoms as columns, "
            f"got shape {tuple(D.shape)}."
        )
    if D.shape[-2] == 0 or D.shape[-1] == 0:
        raise ValueError(
            f"{name} must have at least one row and one column, got shape {tuple(D.shape)}."
        )
    if not bool(torch.isfinite(D).all()):
        raise ValueError(f"{name} contains NaN or inf; replace them with finite values.")
    return D


def check_depth(K, name: str = "K") -> int:
    """Return ``K`` as an int after checking that it is an integer >= 1."""
    if isinstance(K, bool) or not isinstance(K, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {K!r} of type {type(K).__name__}.")
    if K < 1:
        raise ValueError(f"{name} must be an int >= 1, got {K}; use at least one layer.")
    return int(K)


def check_signal(y, D: torch.Tensor, name: str = "y") -> tuple[torch.Tensor, bool]:
    """Return ``y`` as a (B, m) batch and whether the input was a single (m,) signal.

    ``y`` must match the dtype and device of ``D`` and have ``m = D.shape[-2]``
    entries per sample. A per-sample ``D`` of shape (B, m, n) also fixes B.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, m), got {type(y).__name__}; "
            f"convert it with torch.as_tensor({name}, dtype=D.dtype)."
        )
    if y.dtype != D.dtype:
        raise TypeError(
            f"{name} has dtype {y.dtype} but the dictionary D has dtype {D.dtype}; "
            f"cast {name} with {name}.to({D.dtype}), or cast the dictionary "
            f"(model.to({y.dtype}) for a network)."
        )
    if y.device != D.device:
        raise ValueError(
            f"{name} is on {y.device} but the dictionary D is on {D.device}; "
            f"move {name} with {name}.to(D.device), or the dictionary to {y.device}."
        )

    m = D.shape[-2]
    single = y.dim() == 1
    if y.dim() not in (1, 2) or y.shape[-1] != m:
        raise ValueError(
            f"{name} must have shape (B, {m}) or ({m},) to match D of shape "
            f"{tuple(D.shape)}, got shape {tuple(y.shape)}."
        )
    if single:
        y = y.unsqueeze(0)
    if D.dim() == 3 and y.shape[0] != D.shape[0]:
        raise ValueError(
            f"{name} has batch size {y.shape[0]} but the per-sample dictionary D has "
            f"batch size {D.shape[0]}; pass one signal per dictionary."
        )
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} contains NaN or inf; replace them with finite values.")
    return y, single


def check_penalty(lam, y: torch.Tensor, name: str = "lam") -> torch.Tensor | float:
    """Return ``lam`` ready to broadcast against (B, n) codes.

    ``lam`` is a real number or a tensor of shape () or (B,) on the device of
    ``y``. A tensor is cast to the dtype of ``y`` and keeps its autograd graph.
    Every entry must be finite and >= 0. A (B,) tensor is returned as (B, 1).
    """
    if isinstance(lam, torch.Tensor):
        if lam.dim() > 1 or (lam.dim() == 1 and lam.shape[0] != y.shape[0]):
            raise ValueError(
                f"{name} must be a scalar or a tensor of shape ({y.shape[0]},), "
                f"one value per sample, got shape {tuple(lam.shape)}."
            )
        if lam.device != y.device:
            raise ValueError(
                f"{name} is on {lam.device} but y is on {y.device}; "
                f"move it with {name}.to(y.device)."
            )
        lam = lam.to(y.dtype)
        bad = ~torch.isfinite(lam) | (lam < 0)
        if bool(bad.any()):
            raise ValueError(
                f"{name} must be finite and >= 0, got {lam.detach().cpu().tolist()}."
            )
        return lam.unsqueeze(-1) if lam.dim() == 1 else lam

    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(
            f"{name} must be a real number or a tensor, got {type(lam).__name__}."
        )
    if not (lam >= 0 and lam < float("inf")):
        raise ValueError(f"{name} must be finite and >= 0, got {lam}.")
    return float(lam)


def check_real(value, name: str, minimum: float = 0.0, maximum: float = float("inf")) -> float:
    """Return ``value`` as a float after checking that it is finite and in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    value = float(value)
    if not (math.isfinite(value) and minimum <= value <= maximum):
        if math.isinf(maximum):
            expected = f"a finite number >= {minimum:g}"
        else:
            expected = f"in [{minimum:g}, {maximum:g}]"
        raise ValueError(f"{name} must be {expected}, got {value}.")
    return value
