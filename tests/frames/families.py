"""Small instances of every frame family, shared by the frame tests."""

from __future__ import annotations

import torch

from implicit_basis import frames

# Learned frames exist only on a grid, so the shared sample points are grid points.
GRID = torch.linspace(0.0, 1.0, 13, dtype=torch.float64)

NAMES = [
    "fourier",
    "legendre",
    "chebyshev",
    "damped",
    "gabor",
    "radial",
    "ricker",
    "morlet",
    "learned",
    "union",
]

# Families whose atoms are smooth functions of t (all but the learned dictionary,
# which is defined only at the grid points).
SMOOTH_NAMES = [name for name in NAMES if name != "learned"]

# Families with at least one learnable parameter when built by make_frame.
LEARNABLE_NAMES = [name for name in NAMES if name not in ("legendre", "chebyshev")]


def make_frame(name: str, *, dtype: torch.dtype = torch.float64, normalize: bool = True) -> frames.Frame:
    """Build a small frame of the family ``name`` with every parameter learned."""
    factory = {"dtype": dtype, "normalize": normalize}
    if name == "fourier":
        return frames.Fourier(2, period=1.5, learn=True, **factory)
    if name == "legendre":
        return frames.Legendre(4, domain=(0.0, 1.0), **factory)
    if name == "chebyshev":
        return frames.Chebyshev(4, domain=(-0.1, 1.2), **factory)
    if name == "damped":
        return frames.DampedSinusoids([1.0, 2.5], [0.5, 2.0], onset=0.3, learn=True, **factory)
    if name == "gabor":
        return frames.Gabor([0.2, 0.7], [0.15, 0.3], [1.0, 3.0], **factory)
    if name == "radial":
        return frames.RadialBasis([0.1, 0.5, 0.8], [0.2, 0.3, 0.25], **factory)
    if name == "ricker":
        return frames.Wavelet("ricker", [0.1, 0.25], [0.4, 0.6], **factory)
    if name == "morlet":
        return frames.Wavelet("morlet", [0.2, 0.5], [0.3, 0.5], **factory)
    if name == "learned":
        generator = torch.Generator().manual_seed(0)
        return frames.Learned(GRID, 3, generator=generator, **factory)
    if name == "union":
        members = [
            frames.Fourier(1, learn="freqs", dtype=dtype),
            frames.RadialBasis([0.3, 0.6], 0.2, normalize=False, dtype=dtype),
            frames.Wavelet("ricker", 0.3, 0.5, dtype=dtype),
        ]
        return frames.Union(members, normalize=None if normalize else False)
    raise ValueError(f"unknown family {name!r}")


def sample_points(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Irregular sample points taken from GRID: shape (8,)."""
    return GRID[torch.tensor([0, 1, 3, 4, 6, 9, 10, 12])].to(dtype)


def batched_points(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Two rows of irregular sample points taken from GRID: shape (2, 6)."""
    rows = torch.tensor([[0, 2, 3, 7, 8, 11], [1, 4, 5, 6, 10, 12]])
    return GRID[rows].to(dtype)


def sample_mask() -> torch.Tensor:
    """Mask for sample_points with two unobserved samples: shape (8,)."""
    return torch.tensor([True, True, False, True, True, False, True, True])


def batched_mask() -> torch.Tensor:
    """Two masks for sample_points: shape (2, 8)."""
    return torch.tensor(
        [
            [True, True, False, True, True, False, True, True],
            [False, True, True, True, False, True, True, True],
        ]
    )
