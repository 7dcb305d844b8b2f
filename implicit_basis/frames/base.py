"""The ``Frame`` base class: evaluation, masking, normalisation and input checks.

A frame is a parametric family of atoms ``phi_j(t; theta)``. Evaluated at sample
points ``t`` it returns the dictionary ``D[i, j] = phi_j(t_i)``, atoms as columns.
Subclasses implement ``_atoms`` (raw atoms) and ``n_atoms``; everything else
(masks, normalisation, validation, parameter storage) lives here.
"""

from __future__ import annotations

import abc
from itertools import chain

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._parameters import inverse_softplus, parse_learn, resolve_dtype

__all__ = ["Frame"]

# Sample points and atoms are computed in these dtypes only. Half precision loses
# too much in the phases and recurrences, so it is rejected with a clear error.
_SUPPORTED_DTYPES = (torch.float32, torch.float64)


class Frame(nn.Module, abc.ABC):
    r"""Base class of parametric frames: ``frame(t)`` returns the dictionary ``D``.

    ``D[i, j] = phi_j(t_i)`` is atom ``j`` evaluated at sample ``i`` (atoms are
    columns). Rows where ``mask`` is False are set to zero and receive zero
    gradient. With ``normalize=True`` each atom is then divided by its l2 norm
    over the unmasked samples. An atom whose norm is zero (for example one that
    vanishes on every unmasked sample, or whose squared norm underflows) is
    returned as exact zeros and treated as a constant, so its gradient is zero
    and never NaN.

    Subclasses implement ``_atoms(t)`` and the ``n_atoms`` property. Parameters
    are registered with ``_register_tensor``: learned ones as ``nn.Parameter``,
    fixed ones as buffers, so both follow ``.to()``, ``.double()`` and
    ``state_dict``. A learned parameter that must stay positive (a width, a
    scale, a decay rate) is stored unconstrained as ``raw_<name>`` and mapped
    through softplus, so any optimiser step keeps it positive. The constrained
    value is read from the attribute ``<name>``.

    Args:
        normalize: divide each atom by its l2 norm over the unmasked samples.

    Shape:
        - t: (m,) or (B, m) sample points.
        - mask: (m,) or (B, m) bool, True where the sample is observed.
        - Output: (m, k), or (B, m, k) when t or mask is batched.

        B is the batch size, m the number of samples and k the number of atoms.
    """

    # Names accepted by the learn= argument of the subclass.
    learnable: tuple[str, ...] = ()

    def __init__(self, *, normalize: bool = True) -> None:
        super().__init__()
        if not isinstance(normalize, bool):
            raise TypeError(
                f"normalize must be True or False; received {normalize!r}. Pass "
                f"normalize=True to scale each atom to unit norm over the samples."
            )
        self.normalize = normalize
        # Names of parameters stored as raw_<name> through softplus.
        self._softplus_names: set[str] = set()
        self._learned_names: tuple[str, ...] = ()

    # ------------------------------------------------------------------
    # Interface for subclasses.

    @abc.abstractmethod
    def _atoms(self, t: Tensor) -> Tensor:
        """Return the raw atoms at ``t`` of shape (..., m): a tensor of shape (..., m, k)."""

    @property
    @abc.abstractmethod
    def n_atoms(self) -> int:
        """Number of atoms k."""

    @property
    def groups(self) -> list[int]:
        """Sizes of the contiguous atom groups: ``[n_atoms]`` for a single frame."""
        return [self.n_atoms]

    @property
    def learned(self) -> tuple[str, ...]:
        """Names of the learned parameters, in registration order."""
        return self._learned_names

    def _normalized_atoms(self) -> bool | list[bool]:
        """Return whether to normalise the atoms: one bool for all, or one per atom."""
        return self.normalize

    def _register_tensor(self, name: str, value: Tensor, *, learn: bool, positive: bool = False) -> None:
        """Register ``value`` as a parameter (``learn``) or a buffer.

        A learned positive parameter is stored as ``raw_<name>`` with
        ``softplus(raw_<name>) = value``, and read back through ``_value(name)``.
        """
        if learn and positive:
            if bool((value <= 0).any()):
                index = int(torch.nonzero(value <= 0)[0, 0])
                raise ValueError(
                    f"{name} must be positive to be learned; {name}[{index}] = "
                    f"{value[index].item()}. Learned {name} are kept positive through "
                    f"softplus, which cannot reach 0: pass a small positive value such as "
                    f"1e-6, or leave {name!r} out of learn to fix it."
                )
            self.register_parameter("raw_" + name, nn.Parameter(inverse_softplus(value)))
            self._softplus_names.add(name)
        elif learn:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)
        if learn:
            self._learned_names = self._learned_names + (name,)

    def _parse_options(self, learn, dtype, device) -> tuple[dict, frozenset[str]]:
        """Resolve the ``dtype``/``device`` keywords of the parameters and the set of learned names."""
        factory = {"dtype": resolve_dtype(dtype), "device": device}
        return factory, parse_learn(learn, self.learnable, type(self).__name__)

    def _register_tensors(
        self, vectors: dict[str, Tensor], learned: frozenset[str], *, positive: tuple[str, ...] = ()
    ) -> None:
        """Register every entry of ``vectors`` in order, learned when its name is in ``learned``.

        The names in ``positive`` are kept positive through softplus when learned.
        """
        for name, value in vectors.items():
            self._register_tensor(name, value, learn=name in learned, positive=name in positive)

    def __getattr__(self, name: str) -> object:
        # nn.Module.__getattr__ finds parameters, buffers and submodules. A learned
        # positive parameter is stored as raw_<name>, so <name> is computed here.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in self.__dict__.get("_softplus_names", ()):
                return F.softplus(super().__getattr__("raw_" + name))
            raise

    def _value(self, name: str) -> Tensor:
        """Return the constrained value of a parameter registered by ``_register_tensor``."""
        if name in self._softplus_names:
            return F.softplus(getattr(self, "raw_" + name))
        return getattr(self, name)

    # ------------------------------------------------------------------
    # dtype and device.

    def _reference_tensor(self) -> Tensor:
        for tensor in chain(self.parameters(), self.buffers()):
            if tensor.is_floating_point():
                return tensor
        raise RuntimeError(
            f"{type(self).__name__} has no floating parameter or buffer, so its dtype and "
            f"device are undefined. A Frame subclass must register at least one."
        )

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the frame's parameters and buffers."""
        return self._reference_tensor().dtype

    @property
    def device(self) -> torch.device:
        """Device of the frame's parameters and buffers."""
        return self._reference_tensor().device

    # ------------------------------------------------------------------
    # Public evaluation.

    def forward(self, t: Tensor, mask: Tensor | None = None) -> Tensor:
        """Evaluate the dictionary ``D`` at sample points ``t``.

        Masked rows (``mask`` False) are exactly zero. With ``normalize=True``
        every atom has unit l2 norm over the unmasked samples, except atoms that
        are zero there, which stay zero.

        Shape:
            - t: (m,) or (B, m).
            - mask: (m,) or (B, m) bool, True where observed. A (B, m) mask with
              a (m,) t gives a batched output.
            - Output: (m, k) or (B, m, k).
        """
        self._check_t(t)
        self._check_mask(mask, t)
        D = self._masked_atoms(t, mask)
        scaled, _ = self._scale(D)
        return scaled

    def atom_norms(self, t: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the norms that ``frame(t, mask)`` divides each atom by.

        The norm is the l2 norm of the atom over the unmasked samples. It is 1
        for an atom that is zero there, and for every atom when
        ``normalize=False``, so that ``frame.evaluate(t_new,
        frame.atom_norms(t, mask))`` always matches the scaling of ``frame(t, mask)``.

        Shape:
            - t: (m,) or (B, m).
            - mask: (m,) or (B, m) bool.
            - Output: (k,), or (B, k) when t or mask is batched.
        """
        self._check_t(t)
        self._check_mask(mask, t)
        D = self._masked_atoms(t, mask)
        _, norms = self._scale(D)
        return norms.squeeze(-2)

    def evaluate(self, t: Tensor, norms: Tensor | None = None) -> Tensor:
        """Evaluate the raw atoms at ``t``, divided by ``norms`` when given.

        Use it to reconstruct a fitted expansion at new points with the scaling
        of the fit: ``frame.evaluate(t_new, frame.atom_norms(t_fit, mask)) @ z``.

        Shape:
            - t: (m,) or (B, m).
            - norms: (k,) or (B, k), positive.
            - Output: (m, k), or (B, m, k) when t or norms is batched.
        """
        self._check_t(t)
        D = self._raw_atoms(t)
        if norms is None:
            return D
        self._check_norms(norms, t)
        return D / norms.unsqueeze(-2)

    def extra_repr(self) -> str:
        return f"n_atoms={self.n_atoms}, normalize={self.normalize}, learn={self.learned}"

    # ------------------------------------------------------------------
    # Evaluation steps.

    def _raw_atoms(self, t: Tensor) -> Tensor:
        D = self._atoms(t)
        finite = torch.isfinite(D)
        if not bool(finite.all()):
            position = torch.nonzero(~finite)[0].tolist()
            *sample, atom = position
            t_value = t[tuple(sample)].item()
            raise ValueError(
                f"{type(self).__name__} produced a non-finite atom: atom {atom} at sample "
                f"{tuple(sample)} (t = {t_value}) is {D[tuple(position)].item()}. Check the "
                f"frame's parameters for NaN or inf; for polynomials evaluated far outside "
                f"their domain, use float64 or keep t inside the domain."
            )
        return D

    def _masked_atoms(self, t: Tensor, mask: Tensor | None) -> Tensor:
        D = self._raw_atoms(t)
        if mask is None:
            return D
        # torch.where passes zero gradient to the masked entries.
        return torch.where(mask.unsqueeze(-1), D, torch.zeros((), dtype=D.dtype, device=D.device))

    def _scale(self, D: Tensor) -> tuple[Tensor, Tensor]:
        """Return the normalised dictionary and the norms, of shape (..., 1, k)."""
        flags = self._normalized_atoms()
        ones = torch.ones((), dtype=D.dtype, device=D.device)
        if flags is False or (isinstance(flags, list) and not any(flags)):
            return D, torch.ones((*D.shape[:-2], 1, D.shape[-1]), dtype=D.dtype, device=D.device)

        selected: bool | Tensor = True
        if isinstance(flags, list):
            selected = torch.tensor(flags, dtype=torch.bool, device=D.device)
        squared = (D * D).sum(dim=-2, keepdim=True)
        nonzero = squared > 0
        # Replace zero squared norms by 1 before the square root: sqrt has an
        # infinite derivative at 0, and masking its output afterwards would still
        # propagate 0 * inf = NaN. A vanishing atom is then set to exact zeros
        # through torch.where, which gives it zero gradient.
        norms = torch.sqrt(torch.where(nonzero & selected, squared, ones))
        vanishing = ~nonzero & selected
        scaled = torch.where(vanishing, torch.zeros_like(ones), D / norms)
        return scaled, norms

    # ------------------------------------------------------------------
    # Input checks.

    def _check_t(self, t: object) -> None:
        name = type(self).__name__
        if not isinstance(t, Tensor):
            raise TypeError(
                f"t must be a torch.Tensor of sample points; received {type(t).__name__}. "
                f"Convert it with torch.as_tensor(t, dtype={self.dtype})."
            )
        if not t.is_floating_point():
            raise TypeError(
                f"t must be a floating tensor; received dtype {t.dtype}. Convert it with "
                f"t.to({self.dtype})."
            )
        if t.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(
                f"t must be float32 or float64; received {t.dtype}. Evaluate the frame in "
                f"float32 and cast the result: frame.float()(t.float()).to({t.dtype})."
            )
        if t.dtype != self.dtype:
            raise TypeError(
                f"t has dtype {t.dtype} but the {name} parameters are {self.dtype}. Convert "
                f"one of them: frame.to({t.dtype}) or t.to({self.dtype})."
            )
        if t.ndim not in (1, 2):
            raise ValueError(
                f"t must have shape (m,) or (B, m); received shape {tuple(t.shape)}. "
                f"Reshape it, for example t.reshape(-1) or t.reshape(B, -1)."
            )
        if t.device != self.device:
            raise ValueError(
                f"t is on device {t.device} but the {name} is on device {self.device}. "
                f"Move one of them: frame.to({str(t.device)!r}) or t.to({str(self.device)!r})."
            )
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            index = tuple(torch.nonzero(~finite)[0].tolist())
            where = index[0] if len(index) == 1 else index
            raise ValueError(
                f"t must be finite; t[{where}] = {t[index].item()}. Replace a missing sample "
                f"point with any finite value and set mask to False there."
            )

    def _check_mask(self, mask: object, t: Tensor) -> None:
        if mask is None:
            return
        if not isinstance(mask, Tensor):
            raise TypeError(
                f"mask must be a bool torch.Tensor (True where observed) or None; received "
                f"{type(mask).__name__}. Convert it with torch.as_tensor(mask, dtype=torch.bool)."
            )
        if mask.dtype != torch.bool:
            raise TypeError(
                f"mask must have dtype torch.bool (True where observed); received "
                f"{mask.dtype}. Convert it, for example mask != 0."
            )
        m = t.shape[-1]
        batch_matches = mask.ndim == 1 or t.ndim == 1 or mask.shape[0] == t.shape[0]
        if mask.ndim not in (1, 2) or mask.shape[-1] != m or not batch_matches:
            expected = f"({m},) or ({t.shape[0]}, {m})" if t.ndim == 2 else f"({m},) or (B, {m})"
            raise ValueError(
                f"mask must have shape {expected} to match t of shape {tuple(t.shape)}; "
                f"received shape {tuple(mask.shape)}. Pass one flag per sample point."
            )
        if mask.device != t.device:
            raise ValueError(
                f"mask is on device {mask.device} but t is on device {t.device}. Move the "
                f"mask with mask.to(t.device)."
            )

    def _check_norms(self, norms: object, t: Tensor) -> None:
        k = self.n_atoms
        if not isinstance(norms, Tensor):
            raise TypeError(
                f"norms must be a torch.Tensor of shape ({k},) or (B, {k}); received "
                f"{type(norms).__name__}. Compute it with frame.atom_norms(t_fit, mask)."
            )
        if norms.dtype != t.dtype or norms.device != t.device:
            raise ValueError(
                f"norms must have the dtype and device of t ({t.dtype} on {t.device}); "
                f"received {norms.dtype} on {norms.device}. Convert it with norms.to(t)."
            )
        batch_matches = norms.ndim == 1 or t.ndim == 1 or norms.shape[0] == t.shape[0]
        if norms.ndim not in (1, 2) or norms.shape[-1] != k or not batch_matches:
            raise ValueError(
                f"norms must have shape ({k},) or (B, {k}) matching t of shape "
                f"{tuple(t.shape)}; received shape {tuple(norms.shape)}. Compute it with "
                f"frame.atom_norms(t_fit, mask)."
            )
        invalid = ~(torch.isfinite(norms) & (norms > 0))
        if bool(invalid.any()):
            index = tuple(torch.nonzero(invalid)[0].tolist())
            raise ValueError(
                f"norms must be positive and finite; norms{list(index)} = "
                f"{norms[index].item()}. Compute it with frame.atom_norms(t_fit, mask), "
                f"which returns 1 for atoms that vanish."
            )
