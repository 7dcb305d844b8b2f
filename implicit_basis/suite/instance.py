"""Building the tensors of a problem: dictionary, signals, codes, penalties and problem object."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from ..coding import (
    BasisPursuit,
    BasisPursuitDenoising,
    ElasticNet,
    GroupLasso,
    Lasso,
    Problem,
    SparseGroupLasso,
    lam_max,
)
from ..inputs import BatchDimensions
from ..synthetic import bernoulli_gaussian_codes, chen2018_samples, gaussian_dictionary
from .files import load
from .spec import DTYPES, GROUP_KINDS, ProblemSpec, SuiteError

__all__ = ["Instance", "instance"]


@dataclass
class Instance(BatchDimensions):
    """The tensors of one problem: signals, dictionary, problem object and ground truth.

    Attributes:
        name: the spec's name.
        spec: the ``ProblemSpec``.
        split: ``"test"`` or ``"train"``.
        y: signals (B, m).
        D: dictionary (m, k) shared, or (B, m, k) when the points differ per sample.
        problem: the ``implicit_basis`` problem, with per-sample parameters (B,).
        z_true: the codes that generated ``y`` (B, k), or None for real data.
        t: sample points (m,) or (B, m), or None for a Gaussian dictionary.
        frame: the frame that gives ``D = frame(t)``, or None.
        noise_std: standard deviation of the added noise per sample (B,), 0 without noise.
        signal: real data only: the whole record per sample (B, n), for
            the error of a reconstruction at the unobserved points.
        t_signal: real data only: the time of every record sample (n,).
        observed: real data only: bool (B, n), True at the observed samples.
        penalties: the per-sample penalty values that built ``problem``.

    Shape:
        B samples, m observed points, k atoms, n samples of a whole record.
    """

    name: str
    spec: ProblemSpec
    split: str
    y: torch.Tensor
    D: torch.Tensor
    problem: Problem
    z_true: torch.Tensor | None
    t: torch.Tensor | None
    frame: torch.nn.Module | None
    noise_std: torch.Tensor
    signal: torch.Tensor | None = None
    t_signal: torch.Tensor | None = None
    observed: torch.Tensor | None = None
    penalties: dict = field(default_factory=dict)
    groups: list | None = None

    def head(self, n: int) -> "Instance":
        """Return the instance restricted to its first ``n`` samples (penalties included)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.B:
            raise ValueError(f"n must be an int in [1, {self.B}]; got {n!r}.")
        if n == self.B:
            return self

        def rows(value):
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == self.B:
                return value[:n]
            return value

        penalties = {key: rows(value) for key, value in self.penalties.items()}
        return replace(
            self,
            y=self.y[:n],
            D=self.D if self.shared_D else self.D[:n],
            problem=_make_problem(self.spec, penalties, self.groups),
            z_true=rows(self.z_true),
            t=self.t if self.t is None or self.t.dim() == 1 else self.t[:n],
            noise_std=self.noise_std[:n],
            signal=rows(self.signal),
            observed=rows(self.observed),
            penalties=penalties,
        )


def instance(
    spec,
    *,
    samples: int | None = None,
    split: str = "test",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Instance:
    """Build the tensors of a problem.

    Everything is drawn on the CPU in float64 from the spec's seeds, then cast
    to ``dtype`` and moved to ``device``, so that a seed gives the same
    problem in every dtype and on every device (up to rounding). The penalties
    (``lam``, ``sigma``) are computed in float64 before the cast.

    Args:
        spec: a ``ProblemSpec`` of one variant, or a name or path for ``load``.
        samples: keep the first ``samples`` of the split (all by default);
            the first n samples are the same whatever ``samples`` is.
        split: ``"test"`` or ``"train"``.
        dtype: float32 or float64; the spec's dtype when None.
        device: device of the tensors; the CPU when None.

    Raises:
        SuiteError: the spec lists several SNRs (pick a variant), or a value
            that only the built dictionary can check is wrong (group sizes
            that do not add up to k, for example).
        ValueError: an invalid ``samples``, ``split`` or ``dtype``.
    """
    if not isinstance(spec, ProblemSpec):
        spec = load(spec)
    if isinstance(spec.snr_db, tuple):
        names = ", ".join(v.name for v in spec.variants())
        raise SuiteError(
            spec.path, "[noise] snr_db",
            f"{spec.name} lists several SNRs; build one variant: {names} (spec.variants()).",
        )
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train'; got {split!r}.")
    available = spec["samples"]["test" if split == "test" else "train"]
    if available == 0:
        raise ValueError(f"{spec.name} has no {split} samples ([samples] {split} = 0).")
    if samples is None:
        samples = available
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= available:
        raise ValueError(f"samples must be an int in [1, {available}] for the {split} split; got {samples!r}.")
    if dtype is None:
        dtype = DTYPES[spec.dtype]
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}.")

    seed = spec["samples"]["seed" if split == "test" else "train_seed"]
    generator = torch.Generator().manual_seed(seed)
    built = _build(spec, available, generator)
    built = _cast(built, dtype, device)
    problem = _make_problem(spec, built["penalties"], built["groups"])
    result = Instance(name=spec.name, spec=spec, split=split, problem=problem, **built)
    return result.head(samples)


def _cast(built: dict, dtype, device) -> dict:
    """Return the built values with floating tensors and frames in ``dtype`` on ``device``."""
    out = {}
    for key, value in built.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value = value.to(dtype=dtype, device=device)
        elif isinstance(value, torch.Tensor):
            value = value.to(device=device)
        elif isinstance(value, dict):
            value = _cast(value, dtype, device)
        elif isinstance(value, torch.nn.Module):
            value = value.to(dtype=dtype, device=device)
        out[key] = value
    return out


def _build(spec: ProblemSpec, B: int, generator: torch.Generator) -> dict:
    """Draw one split in float64 on the CPU: dictionary, signals, codes and penalties."""
    double = torch.float64
    frame = t = signal = t_signal = observed = None
    if spec.has("dictionary"):
        section = spec["dictionary"]
        D = gaussian_dictionary(section["m"], section["k"], generator=section["seed"], dtype=double)
    else:
        frame = _make_frame(spec["frame"])
        if spec.has("points"):
            t = _points(spec["points"], B, generator)
        else:
            t, signal, t_signal, observed = _record(spec, B, generator)
        with torch.no_grad():
            D = frame(t)
    groups = _groups(spec, frame, D.shape[-1])

    if spec.synthetic:
        y, z_true, noise_std = _signals(spec, D, B, groups, generator)
    else:
        y, z_true = signal[observed].reshape(B, -1), None
        noise_std = torch.zeros(B, dtype=double)
    penalties = _penalties(spec, y, D, noise_std, groups)
    return {
        "y": y, "D": D, "z_true": z_true, "t": t, "frame": frame, "noise_std": noise_std,
        "signal": signal, "t_signal": t_signal, "observed": observed,
        "penalties": penalties, "groups": groups,
    }


def _make_frame(section: dict):
    from .. import frames

    family = section["family"]
    common = {"normalize": section["normalize"], "dtype": torch.float64}
    if family == "union":
        return frames.Union([_make_frame(member) for member in section["members"]])
    if family == "fourier":
        return frames.Fourier(section["n_freqs"], section["period"], learn=False, **common)
    if family in ("legendre", "chebyshev"):
        cls = frames.Legendre if family == "legendre" else frames.Chebyshev
        return cls(section["degree"], tuple(section["domain"]), **common)
    if family == "radial_basis":
        return frames.RadialBasis.grid(
            tuple(section["domain"]), section["n_centres"], section["width"], learn=False, **common
        )
    if family == "gabor":
        return frames.Gabor.grid(
            tuple(section["domain"]), section["n_centres"], section["freqs"], section["width"],
            learn=False, **common,
        )
    if family == "wavelet":
        return frames.Wavelet.dyadic(
            section["kind"], tuple(section["domain"]), section["n_octaves"],
            section["coarsest_scale"], section["spacing"], learn=False, **common,
        )
    return frames.DampedSinusoids(
        section["freqs"], section["decays"], section["onset"], learn=False, **common
    )


def _points(section: dict, B: int, generator: torch.Generator) -> torch.Tensor:
    a, b = section["domain"]
    m = section["m"]
    if section["kind"] == "grid":
        return torch.linspace(a, b, m, dtype=torch.float64)
    if section["per_sample"]:
        draws = torch.rand(B, m, generator=generator, dtype=torch.float64)
    else:
        draws = torch.rand(m, generator=torch.Generator().manual_seed(section["seed"]), dtype=torch.float64)
    return (a + (b - a) * draws).sort(dim=-1).values


def _record(spec: ProblemSpec, B: int, generator: torch.Generator):
    """Return points (B, m), the record (B, n), its time axis (n,) and the observed mask (B, n)."""
    section = spec["data"]
    values = _load_source(spec, section["source"])
    n = values.numel()
    if section["standardize"]:
        values = (values - values.mean()) / values.std(correction=0)
    a, b = section["domain"]
    t_signal = torch.linspace(a, b, n, dtype=torch.float64)
    m = max(1, round(section["observed"] * n))
    observed = torch.zeros(B, n, dtype=torch.bool)
    for row in range(B):
        observed[row, torch.randperm(n, generator=generator)[:m]] = True
    t = t_signal.expand(B, n)[observed].reshape(B, m)
    return t, values.expand(B, n).clone(), t_signal, observed


def _load_source(spec: ProblemSpec, source: str) -> torch.Tensor:
    # Only data shipped inside installed packages: nothing is downloaded.
    try:
        import pywt.data
    except ImportError as error:
        raise SuiteError(
            spec.path, "[data] source",
            f"source {source!r} needs PyWavelets; install it with `pip install pywavelets`.",
        ) from error
    return torch.as_tensor(pywt.data.ecg(), dtype=torch.float64)


def _groups(spec: ProblemSpec, frame, k: int) -> list[int] | None:
    section = spec["problem"]
    if section["kind"] not in GROUP_KINDS:
        return None
    rule = section["groups"]
    if isinstance(rule, list):
        if sum(rule) != k:
            raise SuiteError(
                spec.path, "[problem] groups",
                f"invalid value for [problem] groups: the sizes add up to {sum(rule)} but the "
                f"dictionary has {k} atoms; expected sizes that add up to {k}.",
            )
        return list(rule)
    segments = frame.groups if frame is not None else [k]
    if rule == "frames":
        return list(segments)
    size = section["group_size"]
    sizes = []
    for segment in segments:
        full, rest = divmod(segment, size)
        sizes.extend([size] * full + ([rest] if rest else []))
    return sizes


def _signals(spec: ProblemSpec, D: torch.Tensor, B: int, groups, generator):
    """Draw codes, clean signals and noise; return y (B, m), codes (B, k), noise std (B,)."""
    codes = spec["codes"]
    snr = spec.snr_db
    k = D.shape[-1]
    if codes["kind"] == "bernoulli_gaussian" and D.dim() == 2:
        # The generator of Chen et al. (2018), draw for draw.
        y, x = chen2018_samples(D, B, codes["p"], snr, generator=generator)
        clean = x @ D.T
    else:
        if codes["kind"] == "bernoulli_gaussian":
            x = bernoulli_gaussian_codes(B, k, codes["p"], generator=generator, dtype=torch.float64)
        else:
            active = torch.rand(B, len(groups), generator=generator, dtype=torch.float64) <= codes["p"]
            sizes = torch.tensor(groups)
            x = torch.randn(B, k, generator=generator, dtype=torch.float64)
            x = x * active.repeat_interleave(sizes, dim=1)
        clean = x @ D.T if D.dim() == 2 else torch.bmm(D, x.unsqueeze(-1)).squeeze(-1)
        y = clean
        if not math.isinf(snr):
            std = clean.std(dim=1, correction=0, keepdim=True) * 10.0 ** (-snr / 20.0)
            y = clean + std * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    if math.isinf(snr):
        noise_std = torch.zeros(B, dtype=torch.float64)
    else:
        noise_std = clean.std(dim=1, correction=0) * 10.0 ** (-snr / 20.0)
    return y, x, noise_std


def _penalties(spec: ProblemSpec, y, D, noise_std, groups) -> dict:
    """Return the per-sample penalty values (B,) that the problem is built from."""
    section = spec["problem"]
    kind = section["kind"]
    out: dict = {}
    if "lam" in section:
        if section["lam_rule"] == "absolute":
            out["lam"] = torch.full((y.shape[0],), section["lam"], dtype=torch.float64)
        else:
            probe = _make_problem(spec, {**_fixed(section), "lam": 0.0}, groups)
            out["lam"] = section["lam"] * lam_max(y, D, probe)
    if kind == "basis_pursuit_denoising":
        if section["sigma_rule"] == "absolute":
            out["sigma"] = torch.full((y.shape[0],), section["sigma"], dtype=torch.float64)
        else:
            out["sigma"] = section["sigma"] * math.sqrt(y.shape[1]) * noise_std
    out.update(_fixed(section))
    return out


def _fixed(section: dict) -> dict:
    return {key: section[key] for key in ("l2", "l1_ratio", "nonneg") if key in section}


def _make_problem(spec: ProblemSpec, penalties: dict, groups) -> Problem:
    kind = spec.kind
    builders: dict[str, Callable[[], Problem]] = {
        "lasso": lambda: Lasso(penalties["lam"], nonneg=penalties.get("nonneg", False)),
        "elastic_net": lambda: ElasticNet(penalties["lam"], penalties["l2"]),
        "group_lasso": lambda: GroupLasso(penalties["lam"], groups),
        "sparse_group_lasso": lambda: SparseGroupLasso(penalties["lam"], groups, penalties["l1_ratio"]),
        "basis_pursuit": BasisPursuit,
        "basis_pursuit_denoising": lambda: BasisPursuitDenoising(penalties["sigma"]),
    }
    return builders[kind]()
