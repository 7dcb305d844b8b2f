"""Shared base of the orthogonal polynomial frames: degree, domain and its affine map."""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from ._parameters import check_count, check_domain, resolve_dtype
from .base import Frame

__all__ = ["OrthogonalPolynomial"]


class OrthogonalPolynomial(Frame):
    """Polynomials ``p_0..p_degree`` of ``x``, where ``x`` maps ``domain`` onto [-1, 1].

    ``x = (2 t - (a + b)) / (b - a)`` for ``domain = (a, b)``. Subclasses give the
    three-term recurrence. The recurrence stays accurate to high degree (200
    and beyond) for ``t`` inside the domain, where every value is bounded by 1.
    Outside it the values grow like ``|x| ** degree`` and can overflow float32,
    which raises a ValueError rather than returning inf. The domain is fixed (a
    buffer), so these frames have no learned parameters.

    Args:
        degree: highest degree, at least 0; the frame has ``degree + 1`` atoms.
        domain: interval ``(a, b)``, ``a < b``, mapped onto [-1, 1].
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the domain buffer (default: torch's default dtype).
        device: device of the domain buffer.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, degree + 1) or (B, m, degree + 1).
    """

    def __init__(
        self,
        degree: int,
        domain: tuple[float, float] = (-1.0, 1.0),
        *,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        self.degree = check_count("degree", degree, minimum=0)
        self.register_buffer("domain", check_domain(domain, dtype=resolve_dtype(dtype), device=device))

    @property
    def n_atoms(self) -> int:
        return self.degree + 1

    @abc.abstractmethod
    def _next(self, n: int, x: Tensor, current: Tensor, previous: Tensor) -> Tensor:
        """Return p_{n+1}(x) from p_n (``current``) and p_{n-1} (``previous``), n >= 1."""

    def _atoms(self, t: Tensor) -> Tensor:
        a, b = self.domain[0], self.domain[1]
        x = (2 * t - (a + b)) / (b - a)
        columns = [torch.ones_like(x)]
        if self.degree >= 1:
            columns.append(x)
        for n in range(1, self.degree):
            columns.append(self._next(n, x, columns[n], columns[n - 1]))
        return torch.stack(columns, dim=-1)

    def extra_repr(self) -> str:
        a, b = self.domain.tolist()
        return f"degree={self.degree}, domain=({a:g}, {b:g}), normalize={self.normalize}"
