"""The comparison loop: every method on every problem, one record per pair.

A method that raises, or that does not apply, gets a record with its status
and the reason, and the run goes on with the next one.
"""

from __future__ import annotations

import datetime
import logging
import math
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import suite
from .measure import run_timed, support_scores
from .methods import LEARNED, Batch, SklearnMethod, expand_names, make_methods
from .reference import REFERENCE_METHODS, default_cache_dir, reference_gradients, reference_solutions

__all__ = [
    "BENCHMARK_METHODS",
    "BENCHMARK_PROBLEMS",
    "DEFAULT_METHODS",
    "RECORD_FIELDS",
    "CompareConfig",
    "CompareResult",
    "compare",
]

logger = logging.getLogger(__name__)

DEFAULT_METHODS = ("implicit", "cvxpylayers", "ista", "fista", "learned", "sklearn")
BENCHMARK_PROBLEMS = ("gaussian_lasso_64x256", "gaussian_lasso_128x512", "gaussian_lasso_256x1024")
BENCHMARK_METHODS = ("implicit", "cvxpylayers", "moreau", "sklearn")

# Every field of a record, in the order of the JSON output. Times are medians
# for the whole batch; the ratios divide a method's time per sample by the
# implicit backend's time per sample, since batch caps and time budgets can
# give methods different batches.
RECORD_FIELDS = (
    "problem", "method", "family", "status", "error", "warnings", "notes", "params",
    "batch", "batch_available", "dtype", "device", "warmup", "repeats", "repeats_done",
    "forward_time_s", "backward_time_s", "forward_times_s", "backward_times_s",
    "forward_time_per_sample_s", "backward_time_per_sample_s", "forward_ratio", "backward_ratio",
    "memory_saved_bytes", "memory_cuda_peak_bytes", "memory_host_peak_bytes",
    "solution_max_abs_error", "solution_rel_error", "grad_y_rel_error", "grad_D_rel_error",
    "nmse_db", "nmse_db_per_layer", "ref_nmse_db_per_layer", "heldout_nmse_db",
    "support_precision", "support_recall", "gap_max", "gap_median", "backend_gap_max",
)

# An entry counts as nonzero in the support scores above this fraction of
# its sample's largest magnitude.
SUPPORT_THRESHOLD = 1e-6


@dataclass
class CompareConfig:
    """Settings of a comparison run.

    Attributes:
        methods: method names, or ``unrolled``, ``learned`` and ``all``.
        iterations: iteration counts of ISTA and FISTA (one row each).
        layers: depth of the learned networks.
        train_steps, train_batch, train_lr: brief training of the learned
            networks (Adam, end to end).
        samples: test samples per problem (the first ones); None for all.
        warmup, repeats: untimed and timed runs of each method.
        batch_caps: method name -> largest batch it runs.
        time_budgets: method name -> seconds for all its runs; a probe on
            one sample shrinks its batch to fit, and repeats stop once spent.
        reference: ``"clarabel"`` or ``"implicit"`` (see ``compare.reference``).
        cache_dir: folder of cached reference codes; None for no cache.
        dtype, device: override the problems' dtype; the device of every tensor.
        seed: seed of the loss weights and of the training mini-batches.
        sklearn_tol: scikit-learn's ``tol`` when the implicit backend has no
            result on the problem. Otherwise ``tol`` is set so that its
            relative duality gap matches the largest one of the implicit backend.
        progress: show a tqdm bar; None shows it only on a terminal.
    """

    methods: tuple = DEFAULT_METHODS
    iterations: tuple = (10, 30, 100, 300)
    layers: int = 16
    train_steps: int = 200
    train_batch: int = 64
    train_lr: float = 5e-4
    samples: int | None = 64
    warmup: int = 1
    repeats: int = 5
    batch_caps: dict = field(default_factory=dict)
    time_budgets: dict = field(default_factory=dict)
    reference: str = "clarabel"
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    dtype: torch.dtype | None = None
    device: str | None = None
    seed: int = 0
    sklearn_tol: float = 1e-8
    progress: bool | None = None

    def check(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        expand_names(self.methods)
        for name in (*self.batch_caps, *self.time_budgets):
            expand_names([name])
        positive = {"layers": self.layers, "train_steps": self.train_steps,
                    "train_batch": self.train_batch, "repeats": self.repeats}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0; got {self.warmup!r}.")
        if self.samples is not None and (not isinstance(self.samples, int) or self.samples < 1):
            raise ValueError(f"samples must be an int >= 1 or None; got {self.samples!r}.")
        if not self.iterations or any(not isinstance(T, int) or T < 1 for T in self.iterations):
            raise ValueError(f"iterations must be ints >= 1; got {self.iterations!r}.")
        for name, cap in self.batch_caps.items():
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ValueError(f"batch cap of {name} must be an int >= 1; got {cap!r}.")
        for name, budget in self.time_budgets.items():
            if not (isinstance(budget, (int, float)) and budget > 0 and math.isfinite(budget)):
                raise ValueError(f"time budget of {name} must be a number of seconds > 0; got {budget!r}.")
        if self.reference not in REFERENCE_METHODS:
            raise ValueError(
                f"reference must be one of {', '.join(REFERENCE_METHODS)}; got {self.reference!r}."
            )
        if not (self.sklearn_tol > 0 and math.isfinite(self.sklearn_tol)):
            raise ValueError(f"sklearn_tol must be a number > 0; got {self.sklearn_tol!r}.")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["methods"] = list(self.methods)
        data["iterations"] = list(self.iterations)
        data["cache_dir"] = None if self.cache_dir is None else str(self.cache_dir)
        data["dtype"] = None if self.dtype is None else str(self.dtype).replace("torch.", "")
        return data


@dataclass
class CompareResult:
    """Everything a comparison measured.

    Attributes:
        records: one dict per (problem, method) with the keys ``RECORD_FIELDS``.
        problems: one dict per problem: its spec, sizes and reference.
        config: the settings, as a dict.
        environment: versions, machine and device.
    """

    records: list
    problems: list
    config: dict
    environment: dict

    def to_dict(self) -> dict:
        from .measure import __doc__ as memory_doc

        return {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "environment": self.environment,
            "config": self.config,
            "measurement": memory_doc.strip(),
            "problems": self.problems,
            "records": self.records,
        }


def compare(problems, config: CompareConfig | None = None, methods=None) -> CompareResult:
    """Run every method on every problem and measure time, memory and accuracy.

    Args:
        problems: names, paths or ``ProblemSpec`` objects; a spec with an SNR
            list runs each of its variants.
        config: the settings; defaults when None.
        methods: ``Method`` objects to run instead of those named in
            ``config.methods`` (a callable ``problem_name -> list`` gets a
            fresh list per problem).

    Returns:
        A ``CompareResult``; methods that failed have ``status == "error"``.

    Raises:
        ValueError: an invalid setting of ``config``.
        SuiteError: a problem file that cannot be loaded.
    """
    config = config or CompareConfig()
    config.check()
    specs = []
    for problem in problems:
        spec = problem if isinstance(problem, suite.ProblemSpec) else suite.load(problem)
        specs.append(spec)
    variants = [variant for spec in specs for variant in spec.variants()]

    per_problem = [_methods_for(variant.name, config, methods) for variant in variants]
    total = sum(len(rows) for rows in per_problem)
    records, problem_entries = [], []
    with tqdm(total=total, disable=_disabled(config.progress), desc="compare") as bar:
        for spec, rows in zip(variants, per_problem):
            entry, problem_records = _run_problem(spec, rows, config, bar)
            problem_entries.append(entry)
            records.extend(problem_records)
    return CompareResult(records, problem_entries, config.to_dict(), _environment(config))


def _disabled(progress):
    return None if progress is None else not progress


def _methods_for(name, config, methods):
    if methods is None:
        return make_methods(config.methods, config)
    if callable(methods):
        return list(methods(name))
    return list(methods)


def _environment(config) -> dict:
    import numpy

    device = torch.device(config.device or "cpu")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }


def _run_problem(spec, methods, config, bar):
    """Build the instance and reference of one problem, then run its methods."""
    available = spec["samples"]["test"]
    samples = available if config.samples is None else min(config.samples, available)
    inst = suite.instance(spec, samples=samples, dtype=config.dtype, device=config.device)
    entry = {
        "name": spec.name, "spec": spec.to_dict(), "samples": inst.B, "m": inst.m, "k": inst.k,
        "shared_D": inst.shared_D, "dtype": str(inst.y.dtype).replace("torch.", ""),
        "reference": None, "reference_error": None,
    }
    logger.info("problem %s: B=%d, m=%d, k=%d", spec.name, inst.B, inst.m, inst.k)

    reference = None
    try:
        reference = reference_solutions(
            inst.y, inst.D, inst.problem, method=config.reference, cache_dir=config.cache_dir
        )
        entry["reference"] = reference.summary()
        entry.update(_quality(inst, reference.z.to(inst.y), "reference_"))
    except Exception as error:  # the methods still run; reference metrics become null
        logger.exception("problem %s: the reference failed", spec.name)
        entry["reference_error"] = f"{type(error).__name__}: {error}"

    generator = torch.Generator().manual_seed(config.seed)
    weights = torch.randn(inst.B, inst.k, generator=generator, dtype=torch.float64)
    context = _Context(inst, reference, weights, config)

    # The implicit backend runs first, so that scikit-learn's tolerance can match its gap.
    order = sorted(range(len(methods)), key=lambda i: methods[i].family != "implicit")
    records = [None] * len(methods)
    for index in order:
        method = methods[index]
        bar.set_postfix_str(f"{spec.name} / {method.name}")
        if isinstance(method, SklearnMethod):
            method.tol = _sklearn_tol(records, methods, config)
            method.params["tol"] = method.tol
        records[index] = _run_method(context, method)
        bar.update(1)

    _add_ratios(records)
    entry["sklearn_target_gap"] = _implicit_gap(records, methods)
    return entry, records


@dataclass
class _Context:
    inst: object
    reference: object
    weights: torch.Tensor
    config: CompareConfig
    train_inst: object = None
    reference_grads: dict = field(default_factory=dict)

    def train_split(self):
        if self.train_inst is None:
            spec = self.inst.spec
            self.train_inst = suite.instance(
                spec, split="train", dtype=self.inst.y.dtype, device=self.inst.y.device
            )
        return self.train_inst

    def grads(self, n: int):
        if n not in self.reference_grads:
            head = self.inst.head(n)
            self.reference_grads[n] = reference_gradients(
                head.y, head.D, head.problem, self.reference.z[:n], self.weights[:n]
            )
        return self.reference_grads[n]


def _empty_record(context, method) -> dict:
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(
        problem=context.inst.name, method=method.name, family=method.family, status="ok",
        warnings=[], notes=method.notes, params=method.params, batch_available=context.inst.B,
        dtype=str(context.inst.y.dtype).replace("torch.", ""), device=str(context.inst.y.device),
        warmup=context.config.warmup, repeats=context.config.repeats,
    )
    return record


def _run_method(context: _Context, method) -> dict:
    record = _empty_record(context, method)
    inst, config = context.inst, context.config
    reason = method.applies(inst)
    if reason is not None:
        record.update(status="skipped", error=reason)
        return record

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _measure(context, method, record)
        except Exception as error:  # reported in the record; the run goes on
            logger.warning("%s / %s failed: %s: %s", inst.name, method.name, type(error).__name__, error)
            logger.debug("traceback", exc_info=True)
            record.update(status="error", error=f"{type(error).__name__}: {error}")
    record["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return record


def _measure(context: _Context, method, record: dict) -> None:
    inst, config = context.inst, context.config
    train_inst = context.train_split() if method.family in LEARNED else None
    method.setup(inst, train_inst, config)

    n = min(inst.B, config.batch_caps.get(method.family, inst.B))
    budget = config.time_budgets.get(method.family)
    if budget is not None and n > 1:
        n = _fit_budget(inst, method, context.weights, n, budget, config)
    head = inst.head(n)
    method.prepare(Batch(head.y, head.D, head.problem, head.penalties))
    timing = run_timed(head, method, context.weights[:n], warmup=config.warmup,
                       repeats=config.repeats, budget=budget)
    record.update(
        batch=n, repeats_done=len(timing.forward_times), forward_time_s=timing.forward_median,
        backward_time_s=timing.backward_median, forward_times_s=timing.forward_times,
        backward_times_s=timing.backward_times, memory_saved_bytes=timing.saved_bytes,
        memory_cuda_peak_bytes=timing.cuda_peak_bytes, memory_host_peak_bytes=timing.host_peak_bytes,
    )
    backend_gap = timing.extra.get("backend_gap")
    if backend_gap is not None:
        record["backend_gap_max"] = float(backend_gap.max())
    record.update(_quality(head, timing.z))
    _compare_to_reference(context, head, timing, record)

    layers = method.layers(Batch(head.y, head.D, head.problem, head.penalties))
    if layers is not None:
        if head.z_true is not None:
            record["nmse_db_per_layer"] = [_nmse_db(z, head.z_true) for z in layers]
        if context.reference is not None:
            z_ref = context.reference.z[:n].to(head.y)
            record["ref_nmse_db_per_layer"] = [_nmse_db(z, z_ref) for z in layers]
    logger.info(
        "%s / %s: B=%d, forward %s s, backward %s s, solution error %s",
        inst.name, method.name, n, _short(record["forward_time_s"]),
        _short(record["backward_time_s"]), _short(record["solution_rel_error"]),
    )


def _fit_budget(inst, method, weights, n, budget, config) -> int:
    """Return the batch whose runs fit ``budget`` at the per-sample rate of a one-sample probe.

    The probe runs twice on one sample and times the second run, so that
    one-time work (building a cvxpylayers layer) does not count.
    """
    head = inst.head(1)
    method.prepare(Batch(head.y, head.D, head.problem, head.penalties))
    timing = run_timed(head, method, weights[:1], warmup=1, repeats=1)
    probe = max(timing.forward_times[0] + sum(timing.backward_times), 1e-9)
    runs = config.warmup + config.repeats + 1  # the memory run counts as one
    fitted = max(1, int(budget / (runs * probe)))
    method.notes.append(f"time budget {budget:g} s: one sample took {probe:.3g} s after a warm-up run")
    return min(n, fitted)


def _quality(inst, z: torch.Tensor, prefix: str = "") -> dict:
    """Return NMSE, held-out NMSE and support scores against the instance's truth, and the gap."""
    out = {}
    z = z.detach()
    if inst.z_true is not None:
        out[prefix + "nmse_db"] = _nmse_db(z, inst.z_true)
        precision, recall = support_scores(z, inst.z_true, SUPPORT_THRESHOLD)
        out[prefix + "support_precision"] = precision
        out[prefix + "support_recall"] = recall
    if inst.signal is not None:
        out[prefix + "heldout_nmse_db"] = _heldout_nmse_db(inst, z)
    gap = inst.problem.duality_gap(z.double(), inst.y.double(), inst.D.double())
    out[prefix + "gap_max"] = float(gap.max())
    out[prefix + "gap_median"] = float(gap.median())
    return out


def _compare_to_reference(context, head, timing, record) -> None:
    if context.reference is None:
        return
    n = head.B
    z_ref = context.reference.z[:n]
    z = timing.z.double().cpu()
    record["solution_max_abs_error"] = float((z - z_ref).abs().max())
    record["solution_rel_error"] = _relative(z, z_ref)
    if timing.grad_y is None and timing.grad_D is None:
        return
    grad_y, grad_D = context.grads(n)
    if grad_y is not None and timing.grad_y is not None:
        record["grad_y_rel_error"] = _relative(timing.grad_y.double().cpu(), grad_y)
    if grad_D is not None and timing.grad_D is not None:
        record["grad_D_rel_error"] = _relative(timing.grad_D.double().cpu(), grad_D)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(b.norm())
    error = float((a - b).norm())
    return error / scale if scale > 0 else error


def _nmse_db(z: torch.Tensor, target: torch.Tensor) -> float:
    error = float((z.double() - target.double()).pow(2).sum())
    reference = float(target.double().pow(2).sum())
    if reference == 0:
        return math.nan
    return 10 * math.log10(error / reference) if error > 0 else -math.inf


def _heldout_nmse_db(inst, z: torch.Tensor) -> float:
    """Return the NMSE in dB of the reconstruction at the record's unobserved samples."""
    frame = inst.frame
    with torch.no_grad():
        norms = frame.atom_norms(inst.t)
        atoms = frame.evaluate(inst.t_signal, norms=norms)
        if atoms.dim() == 2:
            estimate = z.to(atoms) @ atoms.T
        else:
            estimate = torch.bmm(atoms, z.to(atoms).unsqueeze(-1)).squeeze(-1)
    hidden = ~inst.observed
    error = float((estimate - inst.signal)[hidden].double().pow(2).sum())
    reference = float(inst.signal[hidden].double().pow(2).sum())
    return 10 * math.log10(error / reference) if error > 0 else -math.inf


def _implicit_gap(records, methods):
    for record, method in zip(records, methods):
        if method.family == "implicit" and record is not None and record["status"] == "ok":
            return record["gap_max"]
    return None


def _sklearn_tol(records, methods, config) -> float:
    gap = _implicit_gap(records, methods)
    if gap is None or not math.isfinite(gap):
        return config.sklearn_tol
    # scikit-learn stops at a gap of tol * ||y||^2, a relative gap of 2 tol.
    # Floor: relative gaps much below 1e-13 are out of reach in float64.
    return max(gap / 2, 5e-14)


def _add_ratios(records) -> None:
    """Fill the per-sample times, and their ratios to those of the implicit backend."""
    pairs = (
        ("forward_time_s", "forward_time_per_sample_s", "forward_ratio"),
        ("backward_time_s", "backward_time_per_sample_s", "backward_ratio"),
    )
    for record in records:
        for total, per_sample, _ in pairs:
            if record[total] is not None and record["batch"]:
                record[per_sample] = record[total] / record["batch"]
    implicit = next(
        (r for r in records if r["family"] == "implicit" and r["status"] == "ok"), None
    )
    if implicit is None:
        return
    for record in records:
        for _, per_sample, ratio in pairs:
            ours, theirs = implicit[per_sample], record[per_sample]
            if ours and theirs is not None:
                record[ratio] = theirs / ours


def _short(value) -> str:
    return "-" if value is None else f"{value:.3g}"
