"""``sparse_code``, the standalone solve, and ``SparseCoding``, the layer."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_max_iter, check_tol
from .coding.base import Problem
from .diff.base import get_backend
from .frames.base import Frame
from .info import SolveInfo
from .inputs import prepare_inputs

__all__ = ["SparseCoding", "sparse_code"]


def sparse_code(
    y: torch.Tensor,
    D: torch.Tensor,
    problem: Problem,
    backend: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    return_info: bool = False,
    init: torch.Tensor | None = None,
    **options,
):
    """Solve a batch of coding problems; the result is differentiable.

    Gradients flow to ``y``, ``D`` and the problem's tensor parameters
    (``lam``, ``sigma``, ``l2``, ``l1_ratio``, weights).

    Args:
        y: signals.
        D: dictionary with atoms as columns, shared by the batch or per sample.
        problem: the coding problem (``ib.Lasso``, ``ib.GroupLasso``, ...).
        backend: ``"auto"``, ``"implicit"``, ``"cvxpylayers"`` or ``"unrolled"``.
        tol: stopping tolerance of the backend (a relative duality gap for the
            implicit backend, the conic solver's tolerance for cvxpylayers);
            None keeps the backend's default.
        max_iter: iteration limit of the backend; None keeps its default.
        return_info: also return a ``SolveInfo`` with per-sample outcomes.
        init: optional warm start (k,) or (B, k). With the implicit and
            cvxpylayers backends it may change the time taken, never the
            solution. The unrolled backend returns a fixed number of steps, so
            there ``init`` is the first iterate and does change the result.
        **options: backend-specific settings (see each backend).

    Returns:
        ``z``, or ``(z, info)`` when ``return_info`` is True. ``z`` has the
        dtype and device of ``y``.

    At a non-differentiable point (an atom exactly at its threshold, a zero
    group at its threshold, ``lam`` exactly ``lam_max``) the gradient is the
    one of the identified support, with the tied atoms treated as inactive:
    at such an atom the derivative is 0, and at ``lam = lam_max`` the
    derivative in ``lam`` is the right derivative, 0. The implicit backend
    flags these samples in ``info.degenerate``.

    Raises:
        TypeError, ValueError: invalid inputs (shapes, dtypes, NaN or inf,
            penalties out of their domain, tensors on different devices,
            ``tol``, ``max_iter`` or ``init`` out of range), before anything
            is solved.
        InfeasibleProblemError: basis pursuit (denoising) without a feasible
            point on some samples; the error names them and carries the
            others' results.
        SolverFailedError: the backend failed on some samples, likewise.

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); parameters () or (B,);
        z: (k,) if no input is batched, else (B, k).
    """
    batch = prepare_inputs(y, D, problem)
    solver = get_backend(backend, problem)
    tol = check_tol(tol)
    max_iter = check_max_iter(max_iter)
    if init is not None:
        from .inputs import prepare_codes

        init = prepare_codes(init, batch, name="init").detach()

    if batch.B == 0:
        z = _empty_codes(batch)
        info = SolveInfo.empty(batch.k, batch.y.dtype, batch.y.device, solver.name)
    else:
        z, info = solver.solve(problem, batch, tol=tol, max_iter=max_iter, init=init, **options)

    z = batch.unbatch(z)
    if not return_info:
        return z
    return z, info if batch.batched else info.unbatched()


def _empty_codes(batch) -> torch.Tensor:
    """Return a (0, k) result that stays in the graph of every input requiring grad."""
    z = batch.y.new_zeros(0, batch.k)
    inputs = [batch.y, batch.D]
    inputs += [v for v in batch.params.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    for tensor in inputs:
        if tensor.requires_grad:
            z = z + 0 * tensor.sum()
    return z


class SparseCoding(nn.Module):
    """A sparse-coding layer over a parametric frame.

    ``forward(y, t, mask=None)`` evaluates the frame at the sample points
    ``t`` (``D = frame(t, mask)``), solves ``problem`` for each signal and
    returns the codes. ``reconstruct(z, t_new, t, mask)`` evaluates the
    expansion ``frame(t_new) z`` at any points, which interpolates the signal.

    Gradients reach ``y``, ``t``, the frame's parameters and the problem's
    tensor parameters. A problem parameter given as an ``nn.Parameter`` (for
    example ``ib.Lasso(nn.Parameter(torch.tensor(0.1)))``) is a parameter of
    the layer: it appears in ``layer.parameters()`` and ``state_dict`` and
    follows ``.to()``. A plain tensor that requires grad is not registered.
    It stays the caller's tensor, and the layer keeps its autograd graph.

    Masks handle variable-length signals and missing samples. A sample whose
    mask is False contributes nothing. Its row of ``D`` and its entry of ``y``
    are set to zero before the solve, so a NaN there is ignored, and the frame
    normalises its atoms over the observed samples only. The codes equal
    those of the signal with that sample removed.

    Args:
        frame: an ``ib.frames`` frame; its dtype and device set the layer's.
        problem: the coding problem (``ib.Lasso``, ``ib.BasisPursuit``, ...).
        backend: ``"auto"``, ``"implicit"``, ``"cvxpylayers"`` or
            ``"unrolled"``; see ``sparse_code``.
        **options: passed to ``sparse_code`` on every call: ``tol``,
            ``max_iter`` and the backend's own settings (``solver_args`` for
            cvxpylayers, ``dense_limit`` for implicit).

    Raises:
        TypeError: ``frame`` is not a ``Frame``, ``problem`` is not a
            ``Problem``, or ``options`` contains ``return_info`` or ``init``.
        ValueError: unknown ``backend``.

    Shape:
        - y: (m,) or (B, m) signals.
        - t: (m,) shared sample points or (B, m) per signal.
        - mask: (m,) or (B, m) bool, True where the sample is observed.
        - Output z: (k,), or (B, k) when y, t, mask or a problem parameter is
          batched.

        B is the batch size, m the number of samples and k the number of atoms.
    """

    def __init__(self, frame: Frame, problem: Problem, backend: str = "auto", **options) -> None:
        super().__init__()
        if not isinstance(frame, Frame):
            raise TypeError(
                f"frame must be an implicit_basis.frames.Frame (RadialBasis, DampedSinusoids, "
                f"...); got {type(frame).__name__}. For a new family of atoms, subclass "
                f"Frame and implement _atoms and n_atoms."
            )
        if not isinstance(problem, Problem):
            raise TypeError(
                f"problem must be an implicit_basis problem (ib.Lasso, ib.BasisPursuit, ...); "
                f"got {type(problem).__name__}."
            )
        for name in _PER_CALL_OPTIONS:
            if name in options:
                raise TypeError(
                    f"{name} is not a layer option: {_PER_CALL_OPTIONS[name]}"
                )
        get_backend(backend, problem)
        self.frame = frame
        self.problem = problem
        self.backend = backend
        self.options = dict(options)

    def dictionary(self, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate the frame at ``t``, with masked rows set to zero.

        Shape:
            t: (m,) or (B, m); mask: (m,) or (B, m); result (m, k) or (B, m, k).
        """
        return self.frame(t, mask=mask)

    def forward(
        self,
        y: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_info: bool = False,
    ):
        """Return the codes of the signals ``y`` sampled at ``t``.

        Samples where ``mask`` is False are ignored, whatever ``y`` contains
        there. With ``return_info`` the result is ``(z, info)``, where
        ``info`` is the ``SolveInfo`` of ``sparse_code``.

        Raises:
            TypeError: ``y`` or ``t`` is not a floating tensor, or its dtype
                differs from the frame's; ``mask`` is not a bool tensor.
            ValueError: shapes or batch sizes of ``y``, ``t`` and ``mask``
                that do not match, or tensors on another device than the
                frame.

        Shape:
            y: (m,) or (B, m); t: (m,) or (B, m); mask: (m,) or (B, m);
            z: (k,) or (B, k).
        """
        self._check_signal(y, t)
        if mask is not None:
            y = _masked_signal(y, mask, t)
        D = self.dictionary(t, mask)
        return sparse_code(
            y, D, self.problem, backend=self.backend, return_info=return_info, **self.options
        )

    def reconstruct(
        self,
        z: torch.Tensor,
        t_new: torch.Tensor,
        t: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Evaluate the expansion of the codes ``z`` at the points ``t_new``.

        A frame that normalises its atoms (``normalize=True``, the default)
        divides them by their norms over the fitting samples, and the codes
        are only valid with that scaling. So pass the ``t`` and ``mask`` given
        to ``forward``: the atoms at ``t_new`` are then divided by the norms
        over those samples. The result is differentiable in ``z``, ``t_new``,
        ``t`` and the frame's parameters.

        Raises:
            ValueError: ``t`` missing for a normalising frame, ``mask``
                without ``t``, shapes that do not match, or ``z`` on
                another device than the frame.
            TypeError: ``z`` or ``t_new`` in another dtype than the frame.

        Shape:
            z: (k,) or (B, k); t_new: (n,) or (B, n); t, mask: (m,) or (B, m)
            as in ``forward``; result (n,) or (B, n).
        """
        k = self.frame.n_atoms
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(
                f"z must be a floating torch.Tensor of codes, shape ({k},) or (B, {k}); got "
                f"{_describe(z)}. Pass the output of the layer."
            )
        if z.dim() not in (1, 2) or z.shape[-1] != k:
            raise ValueError(
                f"z must have shape ({k},) or (B, {k}), one entry per atom of the frame; got "
                f"{tuple(z.shape)}."
            )
        self._check_dtype(z, "z")
        device = self.frame.device
        if z.device != device:
            raise ValueError(
                f"z is on {z.device} but the layer is on {device}; move z with "
                f"z.to({str(device)!r}) or the layer with layer.to({str(z.device)!r})."
            )
        for name, value in (("t_new", t_new), ("t", t)):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                self._check_dtype(value, name)

        norms = None
        if t is None:
            if mask is not None:
                raise ValueError(
                    "mask was given without t: the mask selects fitting samples, so pass the "
                    "fitting points too, reconstruct(z, t_new, t=t, mask=mask)."
                )
            if _normalises(self.frame):
                raise ValueError(
                    "this frame normalises its atoms over the fitting samples, so reconstruct "
                    "needs them to scale the atoms as the fit did: call "
                    "reconstruct(z, t_new, t=t, mask=mask) with the t and mask given to forward."
                )
        else:
            norms = self.frame.atom_norms(t, mask=mask)
        atoms = self.frame.evaluate(t_new, norms=norms)

        if atoms.dim() == 2:
            return z @ atoms.mT
        B = atoms.shape[0]
        if z.dim() == 2 and z.shape[0] != B:
            raise ValueError(
                f"z has batch size {z.shape[0]} but t_new, t or mask has batch size {B}; "
                f"give them the same leading dimension, or pass one unbatched to share it."
            )
        return torch.bmm(atoms, z.expand(B, k).unsqueeze(-1)).squeeze(-1)

    def extra_repr(self) -> str:
        parts = [f"backend={self.backend!r}"]
        parts.extend(f"{name}={value!r}" for name, value in self.options.items())
        return ", ".join(parts)

    def _check_dtype(self, value: torch.Tensor, name: str) -> None:
        dtype = self.frame.dtype
        if value.dtype == dtype:
            return
        if value.dtype not in _LAYER_DTYPES:
            raise TypeError(
                f"{name} is {value.dtype} but the layer's frame is {dtype}, and frames compute "
                f"in float32 or float64 only. Convert the input with {name}.to({dtype})."
            )
        convert = _LAYER_DTYPES[value.dtype]
        raise TypeError(
            f"{name} is {value.dtype} but the layer's frame is {dtype}. Convert the layer "
            f"with {convert}, or the input with {name}.to({dtype})."
        )

    def _check_signal(self, y: object, t: object) -> None:
        """Check ``y`` and ``t`` against each other and the frame, before any work."""
        for name, value in (("y", y), ("t", t)):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(
                    f"{name} must be a floating torch.Tensor; got {_describe(value)}. Convert "
                    f"it with torch.as_tensor({name}, dtype={self.frame.dtype})."
                )
            if value.dim() not in (1, 2):
                raise ValueError(
                    f"{name} must have shape (m,) or (B, m); got {tuple(value.shape)}. Flatten "
                    f"extra batch dimensions, e.g. {name}.reshape(-1, {name}.shape[-1])."
                )
            self._check_dtype(value, name)
            device = self.frame.device
            if value.device != device:
                raise ValueError(
                    f"{name} is on {value.device} but the layer is on {device}; move the layer "
                    f"with layer.to({str(value.device)!r}) or {name} with "
                    f"{name}.to({str(device)!r})."
                )
        if y.shape[-1] != t.shape[-1]:
            raise ValueError(
                f"y has {y.shape[-1]} samples per signal but t has {t.shape[-1]} points; give "
                f"one sample point per entry of y."
            )
        if y.dim() == 2 and t.dim() == 2 and y.shape[0] != t.shape[0]:
            raise ValueError(
                f"y has batch size {y.shape[0]} but t has batch size {t.shape[0]}; pass t of "
                f"shape ({y.shape[-1]},) to share the points, or ({y.shape[0]}, {y.shape[-1]})."
            )


# The dtypes a layer computes in, with the call that converts a layer to each.
_LAYER_DTYPES = {torch.float32: "layer.float()", torch.float64: "layer.double()"}

# Arguments of sparse_code that belong to one call, not to the layer.
_PER_CALL_OPTIONS = {
    "return_info": "pass it to the call, layer(y, t, return_info=True).",
    "init": "a warm start belongs to one batch; call sparse_code(y, layer.dictionary(t), "
    "layer.problem, init=...) for it.",
}


def _masked_signal(y: torch.Tensor, mask: object, t: torch.Tensor) -> torch.Tensor:
    """Zero the masked samples of ``y``, whose dictionary rows the frame zeroes.

    ``torch.where`` also passes zero gradient to those entries, and drops a
    NaN or inf placeholder there instead of propagating it.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a bool torch.Tensor (True where the sample is observed); got "
            f"{_describe(mask)}. Convert it with torch.as_tensor(mask, dtype=torch.bool)."
        )
    m = y.shape[-1]
    if mask.dim() not in (1, 2) or mask.shape[-1] != m:
        raise ValueError(
            f"mask must have shape ({m},) or (B, {m}), one flag per sample of y; got "
            f"{tuple(mask.shape)}."
        )
    if mask.dim() == 2:
        for name, value in (("y", y), ("t", t)):
            if value.dim() == 2 and value.shape[0] != mask.shape[0]:
                raise ValueError(
                    f"mask has batch size {mask.shape[0]} but {name} has batch size "
                    f"{value.shape[0]}; give them the same leading dimension, or pass mask "
                    f"of shape ({m},) to share it."
                )
    if mask.device != y.device:
        raise ValueError(
            f"mask is on {mask.device} but y is on {y.device}; move it with mask.to(y.device)."
        )
    return torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))


def _normalises(frame: Frame) -> bool:
    """Return whether ``frame`` divides any atom by its norm over the samples."""
    flags = frame._normalized_atoms()
    if isinstance(flags, bool):
        return flags
    return any(flags)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype}"
    return type(value).__name__
