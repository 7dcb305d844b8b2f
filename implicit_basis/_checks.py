"""Input checks shared by the public entry points.

Every check raises before any solve, with a message that names the argument,
the expected value, the received value and the fix.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "HALF_DTYPES",
    "check_finite",
    "check_float_tensor",
    "check_max_iter",
    "check_same_device",
    "check_tol",
    "compute_dtype",
]

HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_float_tensor(x, name: str) -> torch.Tensor:
    """Return ``x`` if it is a real floating tensor, else raise ``TypeError``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor; got {type(x).__name__}. "
            f"Convert it with torch.as_tensor({name}, dtype=torch.float64)."
        )
    if x.is_complex():
        raise TypeError(
            f"{name} must be a real floating tensor; got {x.dtype}. "
            "Complex signals are not supported: split real and imaginary parts."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor (float32 or float64); got {x.dtype}. "
            f"Cast it with {name}.to(torch.float64)."
        )
    return x


def check_finite(x: torch.Tensor, name: str, batched: bool) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or inf, naming the first bad sample.

    A tensor on the meta device has no data to solve with, so it raises too.
    """
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device, which has shapes but no data to solve with; "
            f"create {name} on a real device (cpu or cuda)."
        )
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return
    index = tuple(int(i) for i in (~finite).nonzero()[0].tolist())
    value = x[index].item()
    where = f" in sample {index[0]}" if batched else ""
    raise ValueError(
        f"{name} contains non-finite values{where}: {name}{list(index)} = {value}. "
        f"Remove or impute the NaN/inf entries of {name} before solving."
    )


def check_same_device(tensors: dict[str, torch.Tensor]) -> torch.device:
    """Return the common device of ``tensors``, or raise naming two that differ."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, tensor in items[1:]:
        if tensor.device != first.device:
            raise ValueError(
                f"{first_name} is on {first.device} but {name} is on {tensor.device}; "
                f"move both to one device, e.g. {name}.to({first_name}.device)."
            )
    return first.device


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the solvers compute in: half precision is raised to float32."""
    if dtype in HALF_DTYPES:
        return torch.float32
    return dtype


def check_tol(tol) -> float | None:
    """Return ``tol`` as a float, or None; raise unless it is a positive finite number.

    Each backend gives ``tol`` its own meaning and may narrow the range further.
    """
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(
            f"tol must be a float or None; got {type(tol).__name__} {tol!r}. "
            "Pass a number such as 1e-8, or None for the backend's default."
        )
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(
            f"tol must be a positive finite float; got {tol!r}. Leave it None for the "
            "backend's default."
        )
    return float(tol)


def check_max_iter(max_iter) -> int | None:
    """Return ``max_iter`` as an int, or None; raise unless it is a positive integer."""
    if max_iter is None:
        return None
    if not isinstance(max_iter, numbers.Real):
        raise TypeError(
            f"max_iter must be an int or None; got {type(max_iter).__name__} {max_iter!r}. "
            "Pass a positive integer such as 1000, or None for the backend's default."
        )
    integral = not isinstance(max_iter, bool) and math.isfinite(max_iter) and int(max_iter) == max_iter
    if not integral or max_iter < 1:
        raise ValueError(
            f"max_iter must be a positive integer; got {max_iter!r}. Leave it None for the "
            "backend's default."
        )
    return int(max_iter)
