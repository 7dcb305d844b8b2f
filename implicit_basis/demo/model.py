"""The demo's model: a lasso code per window over a learned union of Gabor and damped-sinusoid atoms.

``build_frame`` makes the frame and ``WindowCoder`` wraps it with a positive
penalty weight ``lam = exp(log_lam)`` and one of three ways to compute the
code: the implicit layer, unrolled FISTA, or a learned unrolled network
(``LearnedISTA``) that reads the frame's dictionary at every call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import frames
from ..coding import Lasso
from ..layer import SparseCoding
from ..unrolled import lipschitz_constant, soft_threshold

__all__ = ["METHODS", "FrameSpec", "LearnedISTA", "WindowCoder", "build_frame"]

# The values of WindowCoder's ``method`` argument.
METHODS = ("implicit", "unrolled", "learned")


@dataclass(frozen=True)
class FrameSpec:
    """The initial atoms of the demo's frame.

    Widths and spacings are in samples of the record, frequencies in cycles
    per window and decay rates per window length. There are three families,
    with centres spaced along the window and its margins:

    - narrow Gabor pairs (width ``narrow_width``, frequency ``narrow_freq``,
      every ``narrow_spacing`` samples) for the QRS complexes, whose main
      peak lasts about 10 samples;
    - wide Gabor pairs (``wide_width``, ``wide_freq``, every ``wide_spacing``
      samples) for the P and T waves;
    - damped cosine/sine pairs at ``slow_freqs`` with decay ``slow_decay``,
      for the baseline wander.

    The defaults were chosen by hand on this record.
    """

    narrow_width: float = 2.5
    narrow_spacing: int = 4
    narrow_freq: float = 4.0
    wide_width: float = 8.0
    wide_spacing: int = 8
    wide_freq: float = 2.0
    slow_freqs: tuple[float, ...] = (0.5, 1.0, 1.5)
    slow_decay: float = 0.5

    def as_dict(self) -> dict:
        """Return the settings as a JSON-ready dictionary."""
        return {**asdict(self), "slow_freqs": list(self.slow_freqs)}


def build_frame(
    window: int,
    margin: int,
    spec: FrameSpec | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> frames.Union:
    """Build the demo's frame for windows of ``window`` samples with ``margin`` samples of context.

    Time is in units of the window length (see ``Windows``), so widths and
    spacings given in samples are divided by ``window``. Every parameter is
    learned: centres, widths and frequencies of the Gabor atoms, frequencies
    and decay rates of the damped sinusoids.

    The atoms are not normalised (``normalize=False``). A frame that
    normalises divides each atom by its norm over the fitted samples, and an
    atom that barely overlaps them (a narrow one between two observed times)
    is then scaled up by orders of magnitude where it is reconstructed.

    Shape:
        frame(t): (m, k) or (B, m, k), k = 2 * (number of Gabor centres) + 2 * len(slow_freqs).
    """
    spec = FrameSpec() if spec is None else spec
    factory = {"dtype": dtype, "device": device}
    low, high = -margin, window + margin

    def centres(spacing: int) -> torch.Tensor:
        return torch.arange(low, high + 1, spacing, dtype=torch.float64) / window

    narrow = frames.Gabor(
        centres(spec.narrow_spacing), spec.narrow_width / window, spec.narrow_freq,
        normalize=False, **factory,
    )
    wide = frames.Gabor(
        centres(spec.wide_spacing), spec.wide_width / window, spec.wide_freq,
        normalize=False, **factory,
    )
    slow = frames.DampedSinusoids(
        list(spec.slow_freqs), spec.slow_decay, onset=low / window,
        normalize=False, **factory,
    )
    return frames.Union([narrow, wide, slow])


class LearnedISTA(nn.Module):
    """A learned unrolled lasso network that takes the dictionary at every call.

    Layer k computes an ISTA step with a learned step and threshold:

        z_{k+1} = soft(z_k - s_k D^T (D z_k - y), s_k lam c_k),
        s_k = exp(a_k) / L,   c_k = exp(b_k),   z_0 = 0,

    with ``L = ||D||_2^2`` per signal, computed without gradient. ``a_k`` and
    ``b_k`` start at 0, so the untrained network is ``depth`` ISTA steps on
    the lasso with weight ``lam``. This is step-size LISTA (as
    ``implicit_basis.unrolled.StepLISTA``) with a threshold scale per layer.
    Unlike the networks of ``implicit_basis.unrolled``, which store a fixed
    dictionary, it reads ``D`` at every call, so the frame that produces
    ``D`` is trained with it.

    Args:
        depth: number of layers K, >= 1.
        dtype, device: of the parameters.

    Shape:
        y: (B, m); D: (B, m, k); lam: (); result: (B, k).
    """

    def __init__(self, depth: int, dtype: torch.dtype | None = None, device=None) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}.")
        self.log_steps = nn.Parameter(torch.zeros(depth, dtype=dtype, device=device))
        self.log_thresholds = nn.Parameter(torch.zeros(depth, dtype=dtype, device=device))

    @property
    def depth(self) -> int:
        """Number of layers K."""
        return self.log_steps.numel()

    def forward(self, y: torch.Tensor, D: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            lipschitz = lipschitz_constant(D).clamp(min=torch.finfo(D.dtype).tiny)
        inverse_lipschitz = (1.0 / lipschitz).unsqueeze(-1)
        z = y.new_zeros(y.shape[0], D.shape[-1])
        for k in range(self.depth):
            step = self.log_steps[k].exp() * inverse_lipschitz
            residual = torch.bmm(D, z.unsqueeze(-1)).squeeze(-1) - y
            gradient = torch.bmm(residual.unsqueeze(1), D).squeeze(1)
            z = soft_threshold(z - step * gradient, step * lam * self.log_thresholds[k].exp())
        return z

    def extra_repr(self) -> str:
        return f"depth={self.depth}"


class WindowCoder(nn.Module):
    """Fit a lasso code per window over a learned frame and reconstruct the windows.

    The code of a window solves

        min_z 1/2 ||D z - y||^2 + lam ||z||_1,   D = frame(t, mask),

    over its fitted samples, with ``lam = exp(log_lam)`` so that it stays
    positive while trained. ``method`` selects how ``z`` is computed:

    - ``"implicit"``: ``SparseCoding`` with the implicit backend, the exact
      lasso code, differentiated through its optimality conditions;
    - ``"unrolled"``: ``SparseCoding`` with the unrolled backend, ``depth``
      FISTA steps with autograd through each;
    - ``"learned"``: ``LearnedISTA`` with ``depth`` layers, whose steps and
      thresholds are trained with the frame.

    Args:
        frame: the frame, e.g. from ``build_frame``; its parameters are the
            model's.
        lam: initial penalty weight, > 0.
        method: one of ``METHODS``.
        depth: FISTA steps (``"unrolled"``) or layers (``"learned"``);
            ignored by ``"implicit"``.

    Shape:
        y, t, mask: (B, m); t_new: (n,) or (B, n); forward result: (B, n).
    """

    def __init__(self, frame: frames.Frame, lam: float, method: str = "implicit", depth: int = 50) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
        if not lam > 0:
            raise ValueError(f"lam must be positive, since it is learned as log(lam); got {lam}.")
        self.frame = frame
        self.method = method
        self.depth = depth
        self.log_lam = nn.Parameter(torch.tensor(math.log(lam), dtype=frame.dtype, device=frame.device))
        self.network = LearnedISTA(depth, frame.dtype, frame.device) if method == "learned" else None

    @property
    def lam(self) -> torch.Tensor:
        """The penalty weight exp(log_lam)."""
        return self.log_lam.exp()

    def layer(self) -> SparseCoding:
        """Return the ``SparseCoding`` layer for the current ``lam``.

        ``Lasso`` takes ``lam`` as a tensor in the autograd graph of
        ``log_lam``, so a new problem is built per call. The layer has no
        state of its own, and building it costs only the input checks.
        """
        if self.method == "unrolled":
            options = {"backend": "unrolled", "max_iter": self.depth, "algorithm": "fista"}
        else:
            options = {"backend": "implicit"}
        return SparseCoding(self.frame, Lasso(self.lam), **options)

    def codes(self, y: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Return the codes of the windows' samples where ``mask`` is True.

        Shape:
            y, t, mask: (B, m); result: (B, k).
        """
        if self.network is None:
            return self.layer()(y, t, mask)
        D = self.frame(t, mask)
        y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
        return self.network(y, D, self.lam)

    def forward(self, y: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, t_new: torch.Tensor) -> torch.Tensor:
        """Fit the samples where ``mask`` is True and return the reconstruction at ``t_new``.

        Shape:
            y, t, mask: (B, m); t_new: (n,) or (B, n); result: (B, n).
        """
        z = self.codes(y, t, mask)
        reconstruction = self.layer().reconstruct(z, t_new, t=t, mask=mask)
        return reconstruction.expand(y.shape[0], -1) if reconstruction.dim() == 1 else reconstruction

    def extra_repr(self) -> str:
        depth = "" if self.method == "implicit" else f", depth={self.depth}"
        return f"method={self.method!r}{depth}"
