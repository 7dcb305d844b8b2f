"""Differentiation modes: each backend solves a batch and differentiates it."""

from . import cvxpylayers as _cvxpylayers  # noqa: F401  (registers the backend)
from . import implicit as _implicit  # noqa: F401  (registers the backend)
from . import unrolled as _unrolled  # noqa: F401  (registers the backend)
from .base import Backend, get_backend, register_backend

__all__ = ["Backend", "get_backend", "register_backend"]
