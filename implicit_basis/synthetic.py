"""Synthetic sparse-coding data: Gaussian dictionaries and Bernoulli-Gaussian codes.

The generator of Chen, Liu, Wang and Yin (2018) draws a column-normalised
Gaussian dictionary, codes whose entries are nonzero with probability ``p``
and standard normal when nonzero, and measurements ``y = D x + noise`` at a
given signal-to-noise ratio. Their experiments use m = 250, n = 500, p = 0.1
and SNR in {inf, 40, 30, 20} dB.

Every function takes ``generator``: a ``torch.Generator``, an int seed, or
None for torch's global generator. Random numbers are drawn on the
generator's device (the CPU for a seed or None) and then moved to ``device``,
so a seed gives the same numbers on every device.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch

__all__ = [
    "bernoulli_gaussian_codes",
    "chen2018_sampler",
    "chen2018_samples",
    "gaussian_dictionary",
]

Generator = torch.Generator | int | None


def _as_generator(generator: Generator) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, numbers.Integral):
        raise TypeError(
            "generator must be a torch.Generator, an int seed or None, "
            f"got {type(generator).__name__}."
        )
    return torch.Generator().manual_seed(int(generator))


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}.")
    return int(value)


def _check_dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}.")
    return dtype


def _check_probability(p) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number in [0, 1], got {type(p).__name__}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}.")
    return float(p)


def gaussian_dictionary(
    m: int,
    n: int,
    *,
    generator: Generator = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw a Gaussian dictionary with unit-norm columns.

    Entries are drawn i.i.d. from N(0, 1/m), then every column is divided by
    its Euclidean norm (as ``col_normalized`` does in the code of Chen et al.,
    2018).

    Args:
        m: number of measurements (rows), >= 1.
        n: number of atoms (columns), >= 1.
        generator: a ``torch.Generator``, an int seed, or None.
        dtype: float32 or float64; torch's default dtype when None.
        device: device of the result; the CPU when None.

    Shape:
        result: (m, n).
    """
    m = _check_size(m, "m")
    n = _check_size(n, "n")
    dtype = _check_dtype(dtype)
    generator = _as_generator(generator)

    A = torch.randn(m, n, generator=generator, dtype=dtype, device=_draw_device(generator))
    A = A / math.sqrt(m)
    A = A / torch.linalg.vector_norm(A, dim=0, keepdim=True)
    return A.to(device)


def bernoulli_gaussian_codes(
    B: int,
    n: int,
    p: float,
    *,
    generator: Generator = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw Bernoulli-Gaussian codes: each entry is nonzero with probability ``p``.

    Entry ``x_ij = s_ij g_ij`` with ``s_ij ~ Bernoulli(p)`` (``u <= p`` for a
    uniform ``u``, as in the code of Chen et al., 2018) and ``g_ij ~ N(0, 1)``.

    Args:
        B: number of codes, >= 1.
        n: number of atoms, >= 1.
        p: probability that an entry is nonzero, in [0, 1].
        generator: a ``torch.Generator``, an int seed, or None.
        dtype: float32 or float64; torch's default dtype when None.
        device: device of the result; the CPU when None.

    Shape:
        result: (B, n).
    """
    B = _check_size(B, "B")
    n = _check_size(n, "n")
    p = _check_probability(p)
    dtype = _check_dtype(dtype)
    generator = _as_generator(generator)

    draw = {"generator": generator, "dtype": dtype, "device": _draw_device(generator)}
    support = torch.rand(B, n, **draw) <= p
    values = torch.randn(B, n, **draw)
    return (support * values).to(device)


def chen2018_samples(
    D: torch.Tensor,
    B: int,
    p: float = 0.1,
    snr_db: float = math.inf,
    *,
    generator: Generator = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw signals ``y = D x + noise`` with Bernoulli-Gaussian codes ``x``.

    The noise is white Gaussian. Its standard deviation is set per sample:
    ``std(D x_b) * 10^(-snr_db / 20)``, where ``std`` is the population
    standard deviation (mean removed) of the ``m`` entries of the clean
    signal ``D x_b``. Chen et al.'s code (``setup_input_sc`` in
    ``utils/train.py`` of github.com/VITA-Group/LISTA-CPSS) computes the same
    per-sample moments over the measurement axis. A sample whose code is zero
    gets no noise. With ``snr_db = inf`` no noise is added.

    Args:
        D: dictionary with atoms as columns; the results follow its dtype and
            device.
        B: number of samples, >= 1.
        p: probability that a code entry is nonzero, in [0, 1].
        snr_db: signal-to-noise ratio in dB, a number or ``math.inf``.
        generator: a ``torch.Generator``, an int seed, or None. The codes are
            drawn first, then the noise.

    Shape:
        D: (m, n); returns y: (B, m) and x: (B, n).
    """
    if not isinstance(D, torch.Tensor) or D.dim() != 2:
        shape = tuple(D.shape) if isinstance(D, torch.Tensor) else type(D).__name__
        raise ValueError(f"D must be a tensor of shape (m, n), got {shape}.")
    dtype = _check_dtype(D.dtype)
    if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real):
        raise TypeError(f"snr_db must be a real number or math.inf, got {type(snr_db).__name__}.")
    if math.isnan(snr_db) or snr_db == -math.inf:
        raise ValueError(f"snr_db must be a finite number or math.inf, got {snr_db}.")
    generator = _as_generator(generator)

    x = bernoulli_gaussian_codes(
        B, D.shape[1], p, generator=generator, dtype=dtype, device=D.device
    )
    y = x @ D.T
    if math.isinf(snr_db):
        return y, x

    std = y.std(dim=1, correction=0, keepdim=True) * 10.0 ** (-snr_db / 20.0)
    noise = torch.randn(y.shape, generator=generator, dtype=dtype, device=_draw_device(generator))
    return y + std * noise.to(D.device), x


def chen2018_sampler(
    D: torch.Tensor,
    batch_size: int,
    p: float = 0.1,
    snr_db: float = math.inf,
    *,
    generator: Generator = None,
) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """Return a function that draws a fresh batch ``(y, x)`` of :func:`chen2018_samples`.

    The returned function takes no arguments, which is the sampler interface
    of :func:`implicit_basis.unrolled.train`. An int seed creates one generator
    that all its calls share, so the sequence of batches is reproducible.
    """
    generator = _as_generator(generator)
    _check_size(batch_size, "batch_size")

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        return chen2018_samples(D, batch_size, p, snr_db, generator=generator)

    return sample
