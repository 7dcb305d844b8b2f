"""Continuous wavelet frame: scaled and shifted Ricker or Morlet wavelets."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ._parameters import as_vector, as_vectors, check_count, check_domain, check_positive
from .base import Frame

__all__ = ["Wavelet"]

# Normalising constant of PyWavelets' 'mexh': 2 / (sqrt(3) pi^(1/4)), which
# gives the mother wavelet unit L2 norm.
_RICKER_CONSTANT = 2.0 / (math.sqrt(3.0) * math.pi**0.25)


def ricker(x: Tensor) -> Tensor:
    """Return the Ricker (Mexican hat) wavelet ``2 / (sqrt(3) pi^(1/4)) (1 - x^2) exp(-x^2 / 2)``."""
    squared = x * x
    return _RICKER_CONSTANT * (1 - squared) * torch.exp(-0.5 * squared)


def morlet(x: Tensor) -> Tensor:
    """Return the real Morlet wavelet ``exp(-x^2 / 2) cos(5 x)``."""
    return torch.exp(-0.5 * x * x) * torch.cos(5 * x)


_MOTHERS: dict[str, Callable[[Tensor], Tensor]] = {"ricker": ricker, "morlet": morlet}
# Accepted names, PyWavelets' 'mexh' and 'morl' included, mapped to the canonical ones.
_ALIASES = {"ricker": "ricker", "mexh": "ricker", "morlet": "morlet", "morl": "morlet"}


class Wavelet(Frame):
    r"""Continuous wavelets ``psi((t - b_j) / a_j) / sqrt(a_j)``, one atom per (scale, shift).

    Mother wavelets, with the definitions of PyWavelets (``pywt.ContinuousWavelet``):

    - ``"ricker"`` (alias ``"mexh"``): ``psi(x) = 2 / (sqrt(3) pi^(1/4)) (1 - x^2) exp(-x^2 / 2)``.
    - ``"morlet"`` (alias ``"morl"``): ``psi(x) = exp(-x^2 / 2) cos(5 x)``, the
      real Morlet wavelet. Its integral, sqrt(2 pi) exp(-12.5) ~ 9e-6, is
      not exactly zero, as in PyWavelets.

    The factor ``1 / sqrt(a)`` keeps the L2 norm of every atom equal to that of
    the mother wavelet.

    Args:
        kind: ``"ricker"`` or ``"morlet"`` (or their PyWavelets names).
        scales: scales ``a_j > 0`` in units of ``t``, shape (n,) or a scalar.
        shifts: shifts ``b_j`` in units of ``t``, shape (n,) or a scalar.
        learn: parameters to learn: ``"scales"``, ``"shifts"``, a collection of
            them, True (default) for both or False for none. Learned scales are
            stored as ``raw_scales`` with ``scales = softplus(raw_scales)``, so
            they stay positive.
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the parameters (default: torch's default dtype).
        device: device of the parameters.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, n) or (B, m, n).
    """

    learnable = ("scales", "shifts")

    def __init__(
        self,
        kind: str,
        scales: object,
        shifts: object,
        *,
        learn: bool | str | Iterable[str] = True,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        if not isinstance(kind, str) or kind not in _ALIASES:
            raise ValueError(
                f"kind must be one of {', '.join(repr(name) for name in _ALIASES)}; received "
                f"{kind!r}. Pass 'ricker' (Mexican hat) or 'morlet'."
            )
        self.kind = _ALIASES[kind]
        factory, learned = self._parse_options(learn, dtype, device)

        vectors = as_vectors({"scales": scales, "shifts": shifts}, **factory)
        check_positive("scales", vectors["scales"])
        self._register_tensors(vectors, learned, positive=("scales",))

    @classmethod
    def dyadic(
        cls,
        kind: str,
        domain: tuple[float, float],
        n_octaves: int,
        coarsest_scale: float | None = None,
        spacing: float = 1.0,
        **kwargs: object,
    ) -> Wavelet:
        """Build wavelets on a dyadic grid of scales covering ``domain``.

        Octave ``j = 0..n_octaves-1`` has scale ``a_j = coarsest_scale / 2^j``
        and ``n_j = floor((b - a) / (spacing a_j)) + 1`` shifts equally spaced
        on ``domain = (a, b)``, ends included, so neighbouring shifts are at
        most ``spacing * a_j`` apart. ``coarsest_scale`` defaults to a quarter
        of the domain length. The atoms are ordered by octave, then by shift.
        Other keyword arguments go to the constructor.
        """
        octaves = check_count("n_octaves", n_octaves, minimum=1)
        a, b = check_domain(domain, dtype=torch.float64, device="cpu").tolist()
        length = b - a
        if coarsest_scale is None:
            coarsest_scale = length / 4
        coarsest = as_vector("coarsest_scale", coarsest_scale, dtype=torch.float64, device="cpu")
        check_positive("coarsest_scale", coarsest)
        step = as_vector("spacing", spacing, dtype=torch.float64, device="cpu")
        check_positive("spacing", step)

        scales, shifts = [], []
        for octave in range(octaves):
            scale = coarsest.item() / 2**octave
            n_shifts = math.floor(length / (step.item() * scale)) + 1
            if n_shifts == 1:
                positions = torch.tensor([(a + b) / 2], dtype=torch.float64)
            else:
                positions = torch.linspace(a, b, n_shifts, dtype=torch.float64)
            shifts.append(positions)
            scales.append(torch.full((n_shifts,), scale, dtype=torch.float64))
        return cls(kind, torch.cat(scales), torch.cat(shifts), **kwargs)

    @property
    def n_atoms(self) -> int:
        return self._value("shifts").numel()

    def _atoms(self, t: Tensor) -> Tensor:
        scales = self._value("scales")
        x = (t.unsqueeze(-1) - self._value("shifts")) / scales
        return _MOTHERS[self.kind](x) / torch.sqrt(scales)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, " + super().extra_repr()
