"""Radial basis frame: Gaussian bumps with learnable centres and widths."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from ._parameters import as_vectors, check_positive, uniform_centres
from .base import Frame

__all__ = ["RadialBasis"]


class RadialBasis(Frame):
    r"""Gaussian bumps ``exp(-(t - c_j)^2 / (2 w_j^2))``, one atom per centre.

    Args:
        centres: centres ``c_j``, shape (n,) or a scalar.
        widths: standard deviations ``w_j > 0``, shape (n,) or a scalar shared
            by all bumps, in units of ``t``.
        learn: parameters to learn: ``"centres"``, ``"widths"``, a collection of
            them, True (default) for both or False for none. Learned widths are
            stored as ``raw_widths`` with ``widths = softplus(raw_widths)``, so
            they stay positive.
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the parameters (default: torch's default dtype).
        device: device of the parameters.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, n) or (B, m, n).
    """

    learnable = ("centres", "widths")

    def __init__(
        self,
        centres: object,
        widths: object,
        *,
        learn: bool | str | Iterable[str] = True,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        factory, learned = self._parse_options(learn, dtype, device)

        vectors = as_vectors({"centres": centres, "widths": widths}, **factory)
        check_positive("widths", vectors["widths"], meaning="standard deviations")
        self._register_tensors(vectors, learned, positive=("widths",))

    @classmethod
    def grid(
        cls,
        domain: tuple[float, float],
        n_centres: int,
        width: float | None = None,
        **kwargs: object,
    ) -> RadialBasis:
        """Build ``n_centres`` bumps equally spaced on ``domain``, ends included.

        ``width`` defaults to the spacing between centres. Other keyword
        arguments go to the constructor.
        """
        centres, widths = uniform_centres(domain, n_centres, width)
        return cls(centres, widths, **kwargs)

    @property
    def n_atoms(self) -> int:
        return self._value("centres").numel()

    def _atoms(self, t: Tensor) -> Tensor:
        return gaussian(t.unsqueeze(-1), self._value("centres"), self._value("widths"))


def gaussian(t: Tensor, centres: Tensor, widths: Tensor) -> Tensor:
    """Return ``exp(-(t - centres)^2 / (2 widths^2))`` with broadcasting."""
    return torch.exp(-0.5 * ((t - centres) / widths) ** 2)
