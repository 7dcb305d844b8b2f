"""Legendre polynomial frame."""

from __future__ import annotations

from torch import Tensor

from .polynomial import OrthogonalPolynomial

__all__ = ["Legendre"]


class Legendre(OrthogonalPolynomial):
    r"""Legendre polynomials ``P_0..P_degree`` on ``domain``, computed by recurrence.

    ``P_0 = 1``, ``P_1 = x`` and ``(n + 1) P_{n+1} = (2n + 1) x P_n - n P_{n-1}``,
    with ``x = (2 t - (a + b)) / (b - a)``. The unnormalised atoms are the
    standard ``P_n`` (``P_n(1) = 1``, as ``scipy.special.eval_legendre``). They
    are orthogonal for the weight 1 on the domain, so on Gauss-Legendre nodes
    with their weights the atoms are exactly orthogonal up to degree
    ``2 * n_nodes - 1`` in the product.

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
        return ((2 * n + 1) * x * current - n * previous) / (n + 1)
