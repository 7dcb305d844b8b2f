"""The ``Problem`` base class: penalty parameters, their checks and broadcasting.

A problem kind owns everything about itself: its objective, its cvxpy
formulation, its optimality residual and duality gap. Backends ask a problem
for its parameters resolved to one batch (``Problem.resolve``), so that every
backend sees the same checked, broadcast tensors.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

__all__ = ["Problem", "ScalarSpec", "batched_matvec", "batched_rmatvec"]


@dataclass(frozen=True)
class ScalarSpec:
    """Domain of one scalar penalty parameter (``lam``, ``l2``, ``sigma``, ...)."""

    name: str
    minimum: float = 0.0
    maximum: float = math.inf
    allow_minimum: bool = True

    def describe(self) -> str:
        low = "[" if self.allow_minimum else "("
        high = "]" if math.isfinite(self.maximum) else ")"
        upper = f"{self.maximum:g}" if math.isfinite(self.maximum) else "inf"
        return f"{low}{self.minimum:g}, {upper}{high}"

    def violates(self, value: torch.Tensor) -> torch.Tensor:
        """Return a bool mask of the entries outside the domain (NaN included)."""
        below = value < self.minimum if self.allow_minimum else value <= self.minimum
        above = value > self.maximum
        return below | above | ~torch.isfinite(value)


def batched_matvec(D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Compute ``D z`` per sample.

    Shape:
        D: (m, k) shared or (B, m, k) per sample; z: (B, k); result (B, m).
    """
    if D.dim() == 2:
        return z @ D.T
    return torch.bmm(D, z.unsqueeze(-1)).squeeze(-1)


def batched_rmatvec(D: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Compute ``D^T r`` per sample.

    Shape:
        D: (m, k) shared or (B, m, k) per sample; r: (B, m); result (B, k).
    """
    if D.dim() == 2:
        return r @ D
    return torch.bmm(r.unsqueeze(1), D).squeeze(1)


class Problem(nn.Module):
    """Base class of the coding problems.

    Scalar parameters may be Python floats or tensors of shape () or (B,);
    tensors keep their autograd graph, so gradients reach them. An
    ``nn.Parameter`` is registered as a parameter of the problem (and so of
    any ``SparseCoding`` layer holding it); a plain tensor that does not
    require grad is registered as a buffer (it follows ``.to()`` and
    ``state_dict``); a tensor that requires grad but is not a parameter is
    kept as it is, so that its graph reaches the caller's leaves. A deep copy
    of the problem shares that tensor instead of copying it.

    Subclasses set ``kind`` and ``scalar_specs`` and implement the batched
    oracles ``objective_batched``, ``duality_gap_batched`` and
    ``residual_batched`` on resolved parameters, plus ``cvxpy_formulation``.
    """

    kind: ClassVar[str] = "problem"
    scalar_specs: ClassVar[tuple[ScalarSpec, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self._plain: dict[str, object] = {}
        # Per-instance cache of built solver objects (cvxpylayers layers).
        # Dropped on copy and pickle, since those objects hold C handles.
        self._cache: dict = {}

    # ------------------------------------------------------------------
    # Parameter storage

    def _store(self, name: str, value) -> None:
        """Store a parameter value as a float, a parameter, a buffer or a tensor."""
        if isinstance(value, nn.Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, torch.Tensor) and not value.requires_grad:
            self.register_buffer(name, value)
        else:
            self._plain[name] = value

    def _value(self, name: str):
        if name in self._parameters:
            return self._parameters[name]
        if name in self._buffers:
            return self._buffers[name]
        return self._plain[name]

    def __getattr__(self, name: str):
        plain = self.__dict__.get("_plain")
        if plain is not None and name in plain:
            return plain[name]
        return super().__getattr__(name)

    def _store_scalar(self, spec: ScalarSpec, value) -> None:
        """Check a scalar parameter's type, shape and current values, then store it."""
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
            raise TypeError(
                f"{spec.name} must be a float or a torch.Tensor of shape () or (B,); "
                f"got {type(value).__name__}."
            )
        if isinstance(value, numbers.Real):
            value = float(value)
        else:
            _check_param_tensor(value, spec.name, max_dim=1)
        _check_scalar_values(spec, value)
        self._store(spec.name, value)

    def _store_weights(self, name: str, value, n_label: str) -> None:
        """Check a weight vector of shape (n,) or (B, n): entries >= 0, +inf allowed."""
        if value is None:
            self._plain[name] = None
            return
        if not isinstance(value, torch.Tensor):
            try:
                value = torch.as_tensor(value, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError) as error:
                raise TypeError(
                    f"{name} must be a tensor or a sequence of floats of shape ({n_label},) "
                    f"or (B, {n_label}); got {type(value).__name__}."
                ) from error
        _check_param_tensor(value, name, max_dim=2)
        if value.dim() == 0:
            raise ValueError(
                f"{name} must have shape ({n_label},) or (B, {n_label}); got a scalar. "
                f"For a uniform weight, scale lam instead."
            )
        _check_weight_values(value, name)
        self._store(name, value)

    # ------------------------------------------------------------------
    # Resolution to one batch

    def batch_size(self) -> int | None:
        """Return the batch size fixed by per-sample parameters, or None."""
        sizes = set()
        for spec in self.scalar_specs:
            value = self._value(spec.name)
            if isinstance(value, torch.Tensor) and value.dim() == 1:
                sizes.add((spec.name, value.shape[0]))
        for name in self.weight_names():
            value = self._value(name)
            if isinstance(value, torch.Tensor) and value.dim() == 2:
                sizes.add((name, value.shape[0]))
        distinct = {size for _, size in sizes}
        if len(distinct) > 1:
            listing = ", ".join(f"{name}: {size}" for name, size in sorted(sizes))
            raise ValueError(
                f"per-sample parameters of {type(self).__name__} disagree on the batch "
                f"size ({listing}); give them the same leading dimension."
            )
        return distinct.pop() if distinct else None

    def weight_names(self) -> tuple[str, ...]:
        """Return the names of the weight vectors (checked for per-sample batch sizes)."""
        return ()

    def cache_key(self) -> tuple:
        """Return what identifies the structure of the cvxpy formulation, beyond (m, k)."""
        return (self.kind,)

    def scalar(self, name: str, B: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Return scalar parameter ``name`` as a checked (B,) tensor, keeping its graph."""
        spec = next(s for s in self.scalar_specs if s.name == name)
        value = self._value(name)
        if isinstance(value, float):
            return torch.full((B,), value, dtype=dtype, device=device)
        _check_device(value, name, device)
        _check_scalar_values(spec, value)
        value = value.to(dtype)
        if value.dim() == 0:
            return value.expand(B)
        if value.shape[0] != B:
            raise ValueError(
                f"{name} has batch size {value.shape[0]} but the signals have batch size {B}; "
                f"give {name} shape () or ({B},)."
            )
        return value

    def resolve(self, B: int, k: int, dtype: torch.dtype, device: torch.device) -> dict:
        """Return the parameters as checked tensors broadcast to a batch of ``B`` samples.

        Raises ``ValueError`` when a parameter is out of its domain, its batch
        size differs from ``B`` or its length differs from ``k`` atoms.
        """
        return {spec.name: self.scalar(spec.name, B, dtype, device) for spec in self.scalar_specs}

    def _resolve_weights(
        self, name: str, B: int, n: int, n_label: str, dtype, device
    ) -> torch.Tensor | None:
        """Return weights broadcast to (B, n), or None when all weights are the default."""
        value = self._value(name)
        if value is None:
            return None
        _check_device(value, name, device)
        if value.shape[-1] != n:
            raise ValueError(
                f"{name} has length {value.shape[-1]} but the problem has {n} {n_label}; "
                f"give one weight per {n_label.rstrip('s')}."
            )
        if value.dim() == 2 and value.shape[0] != B:
            raise ValueError(
                f"{name} has batch size {value.shape[0]} but the signals have batch size {B}; "
                f"give {name} shape ({n},) or ({B}, {n})."
            )
        _check_weight_values(value, name)
        return value.to(dtype).expand(B, n)

    # ------------------------------------------------------------------
    # Public oracles on unbatched or batched tensors

    def objective(self, z, y, D) -> torch.Tensor:
        """Return the objective value at ``z``; shape () or (B,)."""
        return self._evaluate("objective_batched", z, y, D)

    def duality_gap(self, z, y, D) -> torch.Tensor:
        """Return the relative duality gap at ``z`` (scale-invariant); shape () or (B,)."""
        return self._evaluate("duality_gap_batched", z, y, D)

    def residual(self, z, y, D) -> torch.Tensor:
        """Return the relative optimality (KKT) residual at ``z``; shape () or (B,)."""
        return self._evaluate("residual_batched", z, y, D)

    def cvxpy_problem(self, m: int, k: int):
        """Return the DPP ``cvxpy.Problem`` for ``m`` samples and ``k`` atoms.

        Its parameters (``problem.parameters()``) are named: ``D``, ``y`` and the
        penalty thresholds of the kind (see ``cvxpy_formulation``).
        """
        return self.cvxpy_formulation(m, k).problem

    def _evaluate(self, method: str, z, y, D) -> torch.Tensor:
        from ..inputs import prepare_codes, prepare_inputs

        batch = prepare_inputs(y, D, self)
        z = prepare_codes(z, batch)
        value = getattr(self, method)(z, batch.y, batch.D, batch.params)
        return batch.unbatch_scalar(value)

    # ------------------------------------------------------------------
    # Copies: the cache holds solver handles that neither copy nor pickle.

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def __deepcopy__(self, memo):
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        # A plain tensor that requires grad is the caller's, with the caller's
        # autograd graph: the copy shares it. torch cannot deep-copy a
        # non-leaf tensor, and a copied leaf would cut the gradient's path.
        for value in self.__dict__.get("_plain", {}).values():
            if isinstance(value, torch.Tensor) and value.requires_grad:
                memo[id(value)] = value
        for key, value in self.__dict__.items():
            if key == "_cache":
                clone.__dict__[key] = {}
            else:
                clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    def extra_repr(self) -> str:
        parts = []
        for spec in self.scalar_specs:
            value = self._value(spec.name)
            if isinstance(value, float):
                parts.append(f"{spec.name}={value:g}")
            else:
                parts.append(f"{spec.name}=tensor{tuple(value.shape)}")
        return ", ".join(parts)


def _check_param_tensor(value: torch.Tensor, name: str, max_dim: int) -> None:
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor; got {value.dtype}. "
            f"Cast it with {name}.to(torch.float64)."
        )
    if value.dim() > max_dim:
        shapes = "() or (B,)" if max_dim == 1 else "(n,) or (B, n)"
        raise ValueError(
            f"{name} must have shape {shapes}; got {tuple(value.shape)}. "
            f"For per-sample values use a 1-D tensor of length B, e.g. {name}.reshape(-1)."
        )


def _check_weight_values(value: torch.Tensor, name: str) -> None:
    # A tensor on the meta device has no values to check; the device check
    # at solve time rejects it before any value is read.
    if value.device.type == "meta":
        return
    bad = torch.isnan(value) | (value < 0)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(
            f"{name} must be >= 0 (0 = unpenalised, +inf = forced to zero); "
            f"got {name}{list(index)} = {value[index].item()}."
        )


def _check_scalar_values(spec: ScalarSpec, value) -> None:
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        return  # no values to check; see _check_weight_values
    if isinstance(value, float):
        bad = spec.violates(torch.tensor(value, dtype=torch.float64))
        if bool(bad):
            raise ValueError(
                f"{spec.name} must be a finite value in {spec.describe()}; got {value}."
                + _scalar_hint(spec)
            )
        return
    with torch.no_grad():
        bad = spec.violates(value.detach())
    if bool(bad.any()):
        if value.dim() == 0:
            received = f"{value.item()}"
        else:
            index = int(bad.nonzero()[0, 0])
            received = f"{spec.name}[{index}] = {value[index].item()}"
        raise ValueError(
            f"{spec.name} must be a finite value in {spec.describe()}; got {received}."
            + _scalar_hint(spec)
        )


def _scalar_hint(spec: ScalarSpec) -> str:
    if spec.name == "lam":
        return (
            " A negative lam makes the problem unbounded; for an all-zero code any "
            "lam >= lam_max(y, D) suffices, so +inf is not needed."
        )
    return ""


def _check_device(value: torch.Tensor, name: str, device) -> None:
    # A device given as a string, or without an index ("cuda"), matches any
    # tensor of that type. CPU tensors report no index, so "cpu:0" is "cpu".
    device = torch.device(device)
    same_index = device.type == "cpu" or device.index is None or value.device.index == device.index
    if value.device.type != device.type or not same_index:
        raise ValueError(
            f"{name} is on {value.device} but the signals are on {device}; "
            f"move it with {name}.to({str(device)!r})."
        )
