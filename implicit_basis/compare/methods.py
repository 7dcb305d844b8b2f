"""The methods that the comparison runs: one adapter per backend or network.

Each method turns a batch (signals, dictionary, problem, penalties) into
codes. Methods that are differentiable keep the autograd graph, so that the
harness can time and check their backward pass. Before anything runs, a
method reports whether it applies to a problem (``applies``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import torch

__all__ = ["METHOD_GROUPS", "METHOD_NAMES", "Batch", "Method", "expand_names", "make_methods"]

logger = logging.getLogger(__name__)

LEARNED = ("lista", "lista_cp", "lista_cpss", "alista", "step_lista")
METHOD_NAMES = ("implicit", "cvxpylayers", "ista", "fista", *LEARNED, "sklearn", "moreau")
# Names that stand for several methods on the command line.
METHOD_GROUPS = {
    "unrolled": ("ista", "fista"),
    "learned": LEARNED,
    "all": METHOD_NAMES,
}


@dataclass
class Batch:
    """The inputs of one run.

    Attributes:
        y: signals (B, m); D: dictionary (m, k) or (B, m, k); either may require grad.
        problem: the problem with per-sample parameters of this batch.
        penalties: the per-sample penalty values (``lam``, ``sigma``, ...).
    """

    y: torch.Tensor
    D: torch.Tensor
    problem: object
    penalties: dict


@dataclass
class Method:
    """A way to compute codes, as one row of the comparison.

    Attributes:
        name: the row label (``"fista[T=100]"``).
        family: the name the method was requested by (``"fista"``), which
            batch caps and time budgets refer to.
        differentiable: the output carries gradients to ``y``.
        grad_D: the output also carries gradients to ``D``.
        params: settings reported in the JSON (iterations, layers, tolerances).
        notes: facts collected while running (warnings, training results).
    """

    name: str
    family: str
    differentiable: bool = True
    grad_D: bool = True
    params: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def applies(self, inst) -> str | None:
        """Return why the method does not apply to the instance, or None."""
        return None

    def setup(self, inst, train_inst, config) -> None:
        """Do the work that precedes solving (training); not timed as forward."""

    def prepare(self, batch: Batch) -> None:
        """Cache what depends only on the dictionary (step sizes); not timed."""

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        """Return the codes (B, k) and facts about the solve (``gap`` of the backend, ...)."""
        raise NotImplementedError

    def layers(self, batch: Batch) -> list[torch.Tensor] | None:
        """Return the estimate after every layer or iteration, or None; runs without grad."""
        return None


# -----------------------------------------------------------------------------
# Backends of sparse_code


@dataclass
class SparseCodeMethod(Method):
    """``ib.sparse_code`` with one backend."""

    backend: str = "implicit"
    options: dict = field(default_factory=dict)

    def forward(self, batch):
        from ..layer import sparse_code

        z, info = sparse_code(
            batch.y, batch.D, batch.problem, backend=self.backend, return_info=True, **self.options
        )
        return z, {"backend_gap": info.gap.detach()}


# -----------------------------------------------------------------------------
# Unrolled ISTA and FISTA


def _unrolled_unusable(problem) -> str | None:
    """Return why ``sparse_code(backend="unrolled")`` cannot solve ``problem``, or None."""
    from ..diff.base import get_backend

    try:
        get_backend("unrolled", problem)
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def _unrolled_registered(problem) -> bool:
    return _unrolled_unusable(problem) is None


def _plain_lasso(problem) -> str | None:
    from ..coding import Lasso

    if type(problem) is not Lasso or problem.nonneg or problem._value("weights") is not None:
        return "ISTA, FISTA and the LISTA family of implicit_basis.unrolled solve the plain lasso only"
    return None


@dataclass
class UnrolledMethod(Method):
    """``T`` iterations of ISTA or FISTA with autograd through every iteration.

    Uses the ``"unrolled"`` backend of ``sparse_code`` when it is registered
    (every kind with a proximal operator), and otherwise
    ``implicit_basis.unrolled.ista``/``fista`` (the plain lasso), with the
    step size ``1/L`` computed once per dictionary outside the timed forward.
    The estimate of every iteration (``layers``) comes from
    ``implicit_basis.unrolled``, so it exists for the plain lasso only; both
    follow Beck and Teboulle's momentum sequence and agree to rounding.
    """

    algorithm: str = "fista"
    T: int = 100
    _lipschitz: torch.Tensor | None = None

    def applies(self, inst):
        backend = _unrolled_unusable(inst.problem)
        if backend is None or _plain_lasso(inst.problem) is None:
            return None
        return f"{backend} The fallback implicit_basis.unrolled solves the plain lasso only."

    def prepare(self, batch):
        from ..unrolled import lipschitz_constant

        registered = _unrolled_registered(batch.problem)
        self.params["implementation"] = (
            "sparse_code(backend='unrolled')" if registered else f"implicit_basis.unrolled.{self.algorithm}"
        )
        if _plain_lasso(batch.problem) is None:
            self.params["curve_implementation"] = f"implicit_basis.unrolled.{self.algorithm}"
        if not registered or _plain_lasso(batch.problem) is None:
            with torch.no_grad():
                self._lipschitz = lipschitz_constant(batch.D.detach())

    def forward(self, batch):
        from .. import unrolled
        from ..layer import sparse_code

        if _unrolled_registered(batch.problem):
            z = sparse_code(
                batch.y, batch.D, batch.problem, backend="unrolled", max_iter=self.T,
                algorithm=self.algorithm,
            )
            return z, {}
        run = unrolled.ista if self.algorithm == "ista" else unrolled.fista
        return run(batch.y, batch.D, batch.penalties["lam"], self.T, lipschitz=self._lipschitz), {}

    def layers(self, batch):
        from .. import unrolled

        if _plain_lasso(batch.problem) is not None:
            return None
        run = unrolled.ista if self.algorithm == "ista" else unrolled.fista
        with torch.no_grad():
            return run(
                batch.y, batch.D, batch.penalties["lam"], self.T, lipschitz=self._lipschitz,
                return_all=True,
            )


# -----------------------------------------------------------------------------
# Learned networks


@dataclass
class LearnedMethod(Method):
    """A network of the LISTA family, trained briefly on the problem's training split.

    Training follows ``implicit_basis.unrolled.train`` end to end with Adam on
    mini-batches of the training samples and their true codes. After training
    the weights are frozen, so the timed backward is the gradient in ``y``.
    """

    network: str = "lista"
    K: int = 16
    model: torch.nn.Module | None = None

    def applies(self, inst):
        reason = _plain_lasso(inst.problem)
        if reason:
            return reason
        if not inst.shared_D:
            return "the LISTA family needs one dictionary shared by all samples"
        if inst.z_true is None:
            return "training needs the true codes, which real data do not have"
        if inst.spec["samples"]["train"] == 0:
            return "the problem has no training samples ([samples] train = 0)"
        return None

    def setup(self, inst, train_inst, config):
        from .. import unrolled

        classes = {
            "lista": unrolled.LISTA,
            "lista_cp": unrolled.LISTACP,
            "lista_cpss": unrolled.LISTACPSS,
            "alista": unrolled.ALISTA,
            "step_lista": unrolled.StepLISTA,
        }
        lam = float(inst.penalties["lam"].median())
        self.model = classes[self.network](inst.D.detach(), self.K, lam=lam)
        generator = torch.Generator(device=train_inst.y.device).manual_seed(config.seed)
        y_train, z_train = train_inst.y, train_inst.z_true
        size = min(config.train_batch, train_inst.B)

        def sampler():
            rows = torch.randint(0, train_inst.B, (size,), generator=generator, device=y_train.device)
            return y_train[rows], z_train[rows]

        validation = (y_train[:size], z_train[:size])
        history = unrolled.train(
            self.model, sampler, steps=config.train_steps, lr=config.train_lr,
            validation=validation, progress=False,
        )
        self.model.requires_grad_(False)
        self.params.update(
            train_steps=config.train_steps, train_batch=size, train_lr=config.train_lr,
            train_seconds=history.seconds, train_final_loss=history.loss[-1],
            initial_lam=lam,
        )

    def forward(self, batch):
        return self.model(batch.y), {}

    def layers(self, batch):
        with torch.no_grad():
            return self.model(batch.y, return_all=True)


# -----------------------------------------------------------------------------
# scikit-learn


@dataclass
class SklearnMethod(Method):
    """scikit-learn's coordinate descent, the solver of ``sparse_encode(algorithm="lasso_cd")``.

    ``sparse_encode`` fixes the tolerance of the ``Lasso`` estimator it
    builds, so this method builds the same estimator, ``Lasso(alpha=lam / m,
    fit_intercept=False, precompute=D^T D)``, with ``tol`` set by the
    comparison: scikit-learn stops when its duality gap is below
    ``tol * ||y||^2``, which is a relative gap (the one of
    ``Problem.duality_gap``) of ``2 tol``. Samples that share ``lam`` are fitted
    together. Forward only.
    """

    tol: float = 1e-8
    max_iter: int = 100_000

    def applies(self, inst):
        import importlib.util

        from ..coding import Lasso

        if importlib.util.find_spec("sklearn") is None:
            return "scikit-learn is not installed (pip install scikit-learn)"
        if type(inst.problem) is not Lasso or inst.problem._value("weights") is not None:
            return "scikit-learn's lasso_cd solves the (non-negative) lasso only"
        return None

    def forward(self, batch):
        import numpy as np
        from sklearn.linear_model import Lasso as SklearnLasso

        y = batch.y.detach().cpu().double().numpy()
        D = batch.D.detach().cpu().double().numpy()
        lam = batch.penalties["lam"].detach().cpu().double().numpy()
        nonneg = bool(batch.problem.nonneg)
        m = y.shape[1]
        z = np.zeros((y.shape[0], D.shape[-1]))
        if D.ndim == 2:
            gram = D.T @ D
            groups = [np.flatnonzero(lam == value) for value in np.unique(lam)]
        else:
            groups = [np.array([b]) for b in range(y.shape[0])]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for rows in groups:
                D_rows = D if D.ndim == 2 else D[rows[0]]
                estimator = SklearnLasso(
                    alpha=float(lam[rows[0]]) / m, fit_intercept=False,
                    precompute=gram if D.ndim == 2 else D_rows.T @ D_rows,
                    tol=self.tol, max_iter=self.max_iter, positive=nonneg,
                )
                estimator.fit(D_rows, y[rows].T)
                z[rows] = np.atleast_2d(estimator.coef_)
        for warning in caught:
            text = f"{warning.category.__name__}: {warning.message}"
            if text not in self.notes:
                self.notes.append(text)
        return torch.as_tensor(z, dtype=batch.y.dtype, device=batch.y.device), {}


# -----------------------------------------------------------------------------
# MOREAU through cvxpylayers


@dataclass
class MoreauMethod(Method):
    """The problem's cvxpy formulation in a ``CvxpyLayer`` with ``solver="MOREAU"``.

    NOTE: written against cvxpylayers 1.2's MOREAU interface and never run
    here, because the ``moreau`` package was not installed.
    """

    _layer: object = None

    def applies(self, inst):
        try:
            import moreau  # noqa: F401
        except ImportError:
            return "the moreau package is not installed (pip install moreau)"
        return None

    def forward(self, batch):
        from cvxpylayers.torch import CvxpyLayer

        from ..inputs import prepare_inputs

        prepared = prepare_inputs(batch.y, batch.D, batch.problem)
        formulation = batch.problem.cvxpy_formulation(prepared.m, prepared.k)
        if self._layer is None:
            self._layer = CvxpyLayer(
                formulation.problem, parameters=formulation.parameters,
                variables=[formulation.variable], solver="MOREAU",
            )
        values = formulation.values(prepared.y, prepared.D, prepared.params)
        shapes = [tuple(p.shape) for p in formulation.parameters]
        values = [v if v.dim() > len(s) else v.unsqueeze(0).expand(prepared.B, *s) for v, s in zip(values, shapes)]
        (z,) = self._layer(*values)
        return z.to(batch.y.dtype), {}


# -----------------------------------------------------------------------------


def expand_names(names) -> list[str]:
    """Return the method names with the group names (``unrolled``, ``learned``, ``all``) expanded.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    out: list[str] = []
    for name in names:
        members = METHOD_GROUPS.get(name, (name,))
        for member in members:
            if member not in METHOD_NAMES:
                known = ", ".join([*METHOD_NAMES, *METHOD_GROUPS])
                raise ValueError(f"unknown method {name!r}; expected one of: {known}.")
            if member not in out:
                out.append(member)
    return out


def make_methods(names, config) -> list[Method]:
    """Build one ``Method`` per row: ISTA and FISTA get one row per iteration count."""
    methods: list[Method] = []
    for name in expand_names(names):
        if name in ("implicit", "cvxpylayers"):
            methods.append(SparseCodeMethod(name, name, backend=name))
        elif name in ("ista", "fista"):
            for T in config.iterations:
                methods.append(UnrolledMethod(f"{name}[T={T}]", name, params={"T": T}, algorithm=name, T=T))
        elif name in LEARNED:
            methods.append(
                LearnedMethod(f"{name}[K={config.layers}]", name, grad_D=False,
                              params={"K": config.layers}, network=name, K=config.layers)
            )
        elif name == "sklearn":
            methods.append(SklearnMethod("sklearn", "sklearn", differentiable=False, grad_D=False))
        else:
            methods.append(MoreauMethod("moreau", "moreau"))
    return methods
