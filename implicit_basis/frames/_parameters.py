"""Conversion and checks for frame constructor arguments, and the ``learn=`` choice.

Every frame family takes its parameters as numbers, sequences, numpy arrays or
tensors. The helpers here turn them into 1-D tensors of the requested dtype and
device, reject invalid values with a message that names the argument, and
resolve which parameters are learned.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = [
    "as_scalar",
    "as_vector",
    "as_vectors",
    "broadcast_vectors",
    "check_count",
    "check_domain",
    "check_positive",
    "inverse_softplus",
    "parse_learn",
    "resolve_dtype",
    "uniform_centres",
]


def resolve_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """Return ``dtype``, or the default dtype when it is None; reject non-floating dtypes."""
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype such as torch.float32 or torch.float64; "
            f"received {dtype!r}. Pass dtype=torch.float32, dtype=torch.float64 or None "
            f"for the default dtype."
        )
    return dtype


def as_vector(
    name: str,
    value: object,
    *,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> Tensor:
    """Convert a number or a 1-D array-like to a finite 1-D tensor detached from any graph."""
    if isinstance(value, Tensor) and (value.is_complex() or value.dtype == torch.bool):
        raise TypeError(
            f"{name} must contain real numbers; received a tensor of dtype {value.dtype}. "
            f"Pass real values, for example {name}.real or {name}.to(torch.float64)."
        )
    try:
        if isinstance(value, Tensor):
            vector = value.detach().to(dtype=dtype, device=device).clone()
        else:
            vector = torch.as_tensor(value, dtype=dtype, device=device).clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"{name} must be a number or a 1-D sequence of numbers; received "
            f"{type(value).__name__} ({error}). Pass a float, a list of floats, a numpy "
            f"array or a tensor."
        ) from error

    if vector.ndim == 0:
        vector = vector.reshape(1)
    if vector.ndim != 1:
        raise ValueError(
            f"{name} must be a number or a 1-D sequence; received shape "
            f"{tuple(vector.shape)}. Flatten it, for example {name}.reshape(-1)."
        )
    if vector.numel() == 0:
        raise ValueError(f"{name} must contain at least one value; received an empty sequence.")

    finite = torch.isfinite(vector)
    if not bool(finite.all()):
        index = int(torch.nonzero(~finite)[0, 0])
        raise ValueError(
            f"{name} must be finite; {name}[{index}] = {vector[index].item()}. "
            f"Replace the non-finite value."
        )
    return vector


def as_vectors(
    values: dict[str, object],
    *,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> dict[str, Tensor]:
    """Convert each named value with ``as_vector``, then broadcast them to a common length."""
    vectors = {name: as_vector(name, value, dtype=dtype, device=device) for name, value in values.items()}
    return broadcast_vectors(**vectors)


def as_scalar(
    name: str,
    value: object,
    description: str,
    *,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> Tensor:
    """Convert a single number to a finite tensor of shape (1,).

    ``description`` names the quantity in the message of the error raised
    when ``value`` contains more than one number.
    """
    vector = as_vector(name, value, dtype=dtype, device=device)
    if vector.numel() != 1:
        raise ValueError(
            f"{name} must be a single number; received {vector.numel()} values. "
            f"Pass one {description}, in units of t."
        )
    return vector


def broadcast_vectors(**vectors: Tensor) -> dict[str, Tensor]:
    """Broadcast 1-D tensors of length n or 1 to the common length n."""
    lengths = {name: vector.numel() for name, vector in vectors.items()}
    n = max(lengths.values())
    if any(length not in (1, n) for length in lengths.values()):
        received = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise ValueError(
            f"{', '.join(lengths)} must have the same length, or length 1 to share one "
            f"value; received lengths {received}. Pass sequences of equal length."
        )
    return {name: vector.expand(n).clone() for name, vector in vectors.items()}


def check_count(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer of at least ``minimum``; raise otherwise."""
    if isinstance(value, bool):
        index = None
    else:
        try:
            index = operator.index(value)
        except TypeError:
            index = None
    if index is None:
        raise TypeError(
            f"{name} must be an integer; received {value!r} of type {type(value).__name__}. "
            f"Pass an int such as {max(minimum, 3)}."
        )
    if index < minimum:
        raise ValueError(f"{name} must be at least {minimum}; received {index}. Pass a larger {name}.")
    return index


def check_positive(name: str, vector: Tensor, *, allow_zero: bool = False, meaning: str = "") -> None:
    """Raise ValueError unless every entry of ``vector`` is positive (or non-negative)."""
    invalid = vector < 0 if allow_zero else vector <= 0
    if bool(invalid.any()):
        index = int(torch.nonzero(invalid)[0, 0])
        expected = "non-negative" if allow_zero else "positive"
        described = f" ({meaning})" if meaning else ""
        raise ValueError(
            f"{name}{described} must be {expected}; {name}[{index}] = {vector[index].item()}. "
            f"Pass {expected} values."
        )


def check_domain(domain: object, *, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    """Convert ``domain`` to a tensor (a, b) with a < b."""
    bounds = as_vector("domain", domain, dtype=dtype, device=device)
    if bounds.numel() != 2:
        raise ValueError(
            f"domain must be a pair (a, b); received {bounds.numel()} values. "
            f"Pass two numbers such as (-1.0, 1.0)."
        )
    if not bool(bounds[0] < bounds[1]):
        raise ValueError(
            f"domain must satisfy a < b; received ({bounds[0].item()}, {bounds[1].item()}). "
            f"Pass the lower bound first."
        )
    return bounds


def parse_learn(learn: bool | str | Iterable[str], allowed: Sequence[str], family: str) -> frozenset[str]:
    """Resolve ``learn`` to the set of learned parameter names.

    ``True`` learns every parameter in ``allowed``, ``False`` none, and a name or
    an iterable of names learns exactly those.
    """
    if learn is True:
        return frozenset(allowed)
    if learn is False:
        return frozenset()

    if isinstance(learn, str):
        requested = [learn]
    elif isinstance(learn, Iterable):
        requested = list(learn)
    else:
        raise TypeError(
            f"learn must be a bool, a parameter name or a collection of names; received "
            f"{type(learn).__name__}. {family} can learn {_quoted(allowed)}."
        )

    for name in requested:
        if not isinstance(name, str):
            raise TypeError(
                f"learn must contain parameter names as strings; received {name!r} of type "
                f"{type(name).__name__}. {family} can learn {_quoted(allowed)}."
            )
        if name not in allowed:
            raise ValueError(
                f"learn contains the unknown parameter {name!r}; {family} can learn "
                f"{_quoted(allowed)}. Pass a subset of these names, True for all of them "
                f"or False for none."
            )
    return frozenset(requested)


def inverse_softplus(x: Tensor) -> Tensor:
    """Return r with softplus(r) = x for x >= 0 (r = -inf at x = 0).

    The form x + log(-expm1(-x)) equals log(expm1(x)) but does not overflow for large x.
    """
    return x + torch.log(-torch.expm1(-x))


def _quoted(names: Sequence[str]) -> str:
    if not names:
        return "no parameters"
    return ", ".join(repr(name) for name in names)


def uniform_centres(domain: object, n_centres: object, width: object) -> tuple[Tensor, Tensor]:
    """Return ``n_centres`` equally spaced centres on ``domain`` (both ends included) and a width.

    The default width (``width=None``) is the spacing between centres, or the
    length of the domain when there is one centre, which sits at the midpoint.
    Both are float64 so that the caller converts them once to its dtype.
    """
    n = check_count("n_centres", n_centres, minimum=1)
    bounds = check_domain(domain, dtype=torch.float64, device="cpu")
    a, b = bounds.tolist()
    if n == 1:
        centres = torch.tensor([(a + b) / 2], dtype=torch.float64)
    else:
        centres = torch.linspace(a, b, n, dtype=torch.float64)
    if width is None:
        width = (b - a) / max(n - 1, 1)
    widths = as_vector("width", width, dtype=torch.float64, device="cpu")
    check_positive("width", widths)
    return centres, widths
