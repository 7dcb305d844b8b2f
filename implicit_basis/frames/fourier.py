"""Fourier frame: a constant atom and cosine/sine pairs of harmonic frequencies."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from ._parameters import as_scalar, check_count, check_positive
from .base import Frame

__all__ = ["Fourier"]


class Fourier(Frame):
    r"""Fourier frame on a period ``P``.

    The atoms, in this order, are ``1``, then for ``j = 1..n_freqs`` the pair

        cos(2 pi f_j t / P),  sin(2 pi f_j t / P),

    with ``f_j = j`` at construction. Frequencies ``f_j`` are harmonic numbers
    (cycles per period), so the frequency in cycles per unit of ``t`` is
    ``f_j / P``. The cosine and sine of one frequency are adjacent, so
    ``[1] + [2] * n_freqs`` are the phase-invariant groups.

    On the uniform grid ``t_i = i P / N``, ``N > 2 n_freqs``, the atoms are
    orthogonal. A sine atom that vanishes on every sample (all t at 0, or a
    learned frequency at 0) is returned as zeros when ``normalize=True``.

    Args:
        n_freqs: number of cosine/sine pairs, at least 0.
        period: the period ``P`` > 0, in units of ``t``.
        learn: parameters to learn: ``"freqs"``, ``"period"``, a collection of
            them, True for both or False (default) for none. A learned period
            is stored as ``raw_period`` with ``period = softplus(raw_period)``,
            so it stays positive.
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the parameters (default: torch's default dtype).
        device: device of the parameters.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, k) or (B, m, k) with k = 1 + 2 * n_freqs.

    Example:
        >>> frame = Fourier(3, period=2.0)
        >>> frame(torch.linspace(0, 2, 50)).shape
        torch.Size([50, 7])
    """

    learnable = ("freqs", "period")

    def __init__(
        self,
        n_freqs: int,
        period: float = 1.0,
        *,
        learn: bool | str | Iterable[str] = False,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        self.n_freqs = check_count("n_freqs", n_freqs, minimum=0)
        factory, learned = self._parse_options(learn, dtype, device)

        period_tensor = as_scalar("period", period, "period", **factory)
        check_positive("period", period_tensor)
        vectors = {"freqs": torch.arange(1, self.n_freqs + 1, **factory), "period": period_tensor.reshape(())}
        self._register_tensors(vectors, learned, positive=("period",))

    @property
    def n_atoms(self) -> int:
        return 1 + 2 * self.n_freqs

    def _atoms(self, t: Tensor) -> Tensor:
        angular = (2 * math.pi / self._value("period")) * self._value("freqs")
        phase = t.unsqueeze(-1) * angular
        pairs = torch.stack((torch.cos(phase), torch.sin(phase)), dim=-1).flatten(-2)
        constant = torch.ones_like(t).unsqueeze(-1)
        return torch.cat((constant, pairs), dim=-1)

    def extra_repr(self) -> str:
        period = self._value("period").item()
        return f"n_freqs={self.n_freqs}, period={period:g}, " + super().extra_repr()
