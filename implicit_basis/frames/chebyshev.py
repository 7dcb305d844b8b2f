"""Chebyshev polynomial frame (first kind)."""

from __future__ import annotations

from torch import Tensor

from .polynomial import OrthogonalPolynomial

__all__ = ["Chebyshev"]


class Chebyshev(OrthogonalPolynomial):
    r"""Chebyshev polynomials of the first kind ``T_0..T_degree`` on ``domain``.

    ``T_0 = 1``, ``T_1 = x`` and ``T_{n+1} = 2 x T_n - T_{n-1}``, with
    ``x = (2 t - (a + b)) / (b - a)``, as in ``scipy.special.eval_chebyt``. On the
    ``N`` Chebyshev nodes ``x_i = cos(pi (i + 1/2) / N)`` the atoms of degree
    below ``N`` are exactly orthogonal.

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

    def _next(self, n: int, x: Tensor, current: Tensor, previous: Tensor) -> Tensor:
        return 2 * x * current - previous
