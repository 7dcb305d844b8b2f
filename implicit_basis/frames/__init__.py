"""Parametric frames: families of atoms evaluated at arbitrary sample points.

``frame(t, mask)`` returns the dictionary ``D[i, j] = phi_j(t_i)`` of shape
(m, k) or (B, m, k), atoms as columns, masked rows set to zero and each atom
scaled to unit norm over the unmasked samples by default. Frequencies are in
cycles per unit of ``t`` (harmonic numbers per period for ``Fourier``).
"""

from .base import Frame
from .chebyshev import Chebyshev
from .damped_sinusoids import DampedSinusoids
from .fourier import Fourier
from .gabor import Gabor
from .learned import Learned
from .legendre import Legendre
from .polynomial import OrthogonalPolynomial
from .radial_basis import RadialBasis
from .union import Union
from .wavelet import Wavelet

__all__ = [
    "Chebyshev",
    "DampedSinusoids",
    "Fourier",
    "Frame",
    "Gabor",
    "Learned",
    "Legendre",
    "OrthogonalPolynomial",
    "RadialBasis",
    "Union",
    "Wavelet",
]
