"""Damped sinusoid frame: exponentially decaying cosine/sine pairs after an onset."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._parameters import as_scalar, as_vectors, check_positive
from .base import Frame

__all__ = ["DampedSinusoids"]


class DampedSinusoids(Frame):
    r"""Cosine/sine pairs with an exponential envelope that starts at ``onset``.

    For each pair ``(f_j, d_j)`` the frame has two adjacent atoms

        exp(-d_j (t - onset)_+) cos(2 pi f_j t),  exp(-d_j (t - onset)_+) sin(2 pi f_j t),

    where ``(x)_+ = max(x, 0)``. Frequencies ``f_j`` are in cycles per unit of
    ``t`` (Hz when t is in seconds) and decay rates ``d_j >= 0`` in 1 / unit of
    ``t``. Before the onset the envelope is 1, so the atom is an undamped
    sinusoid there. For a causal transient, sample only ``t >= onset`` or mask
    the earlier samples. The envelope has a kink at ``t = onset``, where
    autograd uses the derivative from the left (0).

    Args:
        freqs: frequencies, shape (n,) or a scalar shared by all pairs.
        decays: decay rates, shape (n,) or a scalar shared by all pairs, >= 0.
        onset: time at which the decay starts, in units of ``t``.
        learn: parameters to learn: ``"freqs"``, ``"decays"``, ``"onset"``, a
            collection of them, True for all or False for none. Default: freqs
            and decays. Learned decay rates are stored as ``raw_decays`` with
            ``decays = softplus(raw_decays)``, so they stay positive, and must
            be positive at construction. Fixed decay rates may be 0.
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the parameters (default: torch's default dtype).
        device: device of the parameters.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, 2 n) or (B, m, 2 n).
    """

    learnable = ("freqs", "decays", "onset")

    def __init__(
        self,
        freqs: object,
        decays: object,
        onset: float = 0.0,
        *,
        learn: bool | str | Iterable[str] = ("freqs", "decays"),
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        factory, learned = self._parse_options(learn, dtype, device)

        vectors = as_vectors({"freqs": freqs, "decays": decays}, **factory)
        check_positive("decays", vectors["decays"], allow_zero=True, meaning="decay rates")
        vectors["onset"] = as_scalar("onset", onset, "onset time", **factory).reshape(())
        self._register_tensors(vectors, learned, positive=("decays",))

    @property
    def n_atoms(self) -> int:
        return 2 * self._value("freqs").numel()

    def _atoms(self, t: Tensor) -> Tensor:
        t = t.unsqueeze(-1)
        envelope = torch.exp(-self._value("decays") * F.relu(t - self._value("onset")))
        phase = (2 * math.pi * t) * self._value("freqs")
        pairs = torch.stack((envelope * torch.cos(phase), envelope * torch.sin(phase)), dim=-1)
        return pairs.flatten(-2)

    def extra_repr(self) -> str:
        return f"n_pairs={self.n_atoms // 2}, onset={self._value('onset').item():g}, " + super().extra_repr()
