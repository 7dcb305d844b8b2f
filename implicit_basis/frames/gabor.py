"""Gabor frame: Gaussian windows times cosine/sine pairs."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from ._parameters import as_vector, as_vectors, check_positive, uniform_centres
from .base import Frame
from .radial_basis import gaussian

__all__ = ["Gabor"]


class Gabor(Frame):
    r"""Gabor atoms: a Gaussian window times a cosine and a sine.

    For each triple ``(c_j, w_j, f_j)`` the frame has two adjacent atoms

        exp(-(t - c_j)^2 / (2 w_j^2)) cos(2 pi f_j (t - c_j)),
        exp(-(t - c_j)^2 / (2 w_j^2)) sin(2 pi f_j (t - c_j)).

    Frequencies ``f_j`` are in cycles per unit of ``t`` and the phase is
    measured from the centre. A frequency of 0 gives a sine atom that is zero
    everywhere. It is kept so that the layout stays regular, and it is returned
    as zeros when ``normalize=True``.

    Args:
        centres: window centres ``c_j``, shape (n,) or a scalar.
        widths: window standard deviations ``w_j > 0``, shape (n,) or a scalar.
        freqs: frequencies ``f_j``, shape (n,) or a scalar.
        learn: parameters to learn: ``"centres"``, ``"widths"``, ``"freqs"``,
            a collection of them, True (default) for all or False for none.
            Learned widths are stored as ``raw_widths`` with
            ``widths = softplus(raw_widths)``, so they stay positive.
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the parameters (default: torch's default dtype).
        device: device of the parameters.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, 2 n) or (B, m, 2 n).
    """

    learnable = ("centres", "widths", "freqs")

    def __init__(
        self,
        centres: object,
        widths: object,
        freqs: object,
        *,
        learn: bool | str | Iterable[str] = True,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        factory, learned = self._parse_options(learn, dtype, device)

        vectors = as_vectors({"centres": centres, "widths": widths, "freqs": freqs}, **factory)
        check_positive("widths", vectors["widths"], meaning="window standard deviations")
        self._register_tensors(vectors, learned, positive=("widths",))

    @classmethod
    def grid(
        cls,
        domain: tuple[float, float],
        n_centres: int,
        freqs: object,
        width: float | None = None,
        **kwargs: object,
    ) -> Gabor:
        """Build every pair (centre, frequency) with centres equally spaced on ``domain``.

        Centres include both ends of the domain, and ``width`` defaults to the
        spacing between centres. The atoms are ordered by centre, then by
        frequency, then cosine before sine. Other keyword arguments go to the
        constructor.
        """
        centres, widths = uniform_centres(domain, n_centres, width)
        freq_values = as_vector("freqs", freqs, dtype=torch.float64, device="cpu")
        n_freqs = freq_values.numel()
        return cls(
            centres.repeat_interleave(n_freqs),
            widths,
            freq_values.repeat(centres.numel()),
            **kwargs,
        )

    @property
    def n_atoms(self) -> int:
        return 2 * self._value("centres").numel()

    def _atoms(self, t: Tensor) -> Tensor:
        t = t.unsqueeze(-1)
        centres = self._value("centres")
        window = gaussian(t, centres, self._value("widths"))
        phase = (2 * math.pi) * self._value("freqs") * (t - centres)
        pairs = torch.stack((window * torch.cos(phase), window * torch.sin(phase)), dim=-1)
        return pairs.flatten(-2)
