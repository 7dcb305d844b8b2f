"""Reports of a comparison: a text table, a JSON file and a PNG figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["format_table", "plot", "to_json_data", "write_json"]

_MIB = 2.0**20
# Top of the NMSE axis when a curve goes above it (dB).
_NMSE_TOP_DB = 10.0


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _milliseconds(value) -> str:
    return "-" if value is None else f"{1e3 * value:.3g}"


def _mib(value) -> str:
    return "-" if value is None else f"{value / _MIB:.3g}"


# Columns that both tables start with: what ran, on how many samples, how fast.
_LEADING_COLUMNS = [
    ("problem", lambda r: r["problem"]),
    ("method", lambda r: r["method"]),
    ("status", lambda r: r["status"]),
    ("B", lambda r: _number(r["batch"])),
    ("fwd ms", lambda r: _milliseconds(r["forward_time_s"])),
    ("bwd ms", lambda r: _milliseconds(r["backward_time_s"])),
]


def _columns(benchmark: bool):
    if benchmark:
        return _LEADING_COLUMNS + [
            ("fwd/ours", lambda r: _number(r["forward_ratio"])),
            ("bwd/ours", lambda r: _number(r["backward_ratio"])),
            ("max |z-ref|", lambda r: _number(r["solution_max_abs_error"], 2)),
            ("grad y err", lambda r: _number(r["grad_y_rel_error"], 2)),
            ("grad D err", lambda r: _number(r["grad_D_rel_error"], 2)),
            ("gap", lambda r: _number(r["gap_max"], 2)),
        ]
    return _LEADING_COLUMNS + [
        ("saved MiB", lambda r: _mib(r["memory_saved_bytes"])),
        ("z err", lambda r: _number(r["solution_rel_error"], 2)),
        ("grad y err", lambda r: _number(r["grad_y_rel_error"], 2)),
        ("grad D err", lambda r: _number(r["grad_D_rel_error"], 2)),
        ("NMSE dB", lambda r: _number(r["nmse_db"] if r["nmse_db"] is not None else r["heldout_nmse_db"])),
        ("prec", lambda r: _number(r["support_precision"], 2)),
        ("recall", lambda r: _number(r["support_recall"], 2)),
        ("gap", lambda r: _number(r["gap_max"], 2)),
    ]


def format_table(result, benchmark: bool = False) -> str:
    """Return the records as an aligned text table, followed by the errors and skips.

    With ``benchmark`` the columns are those of the implicit backend's
    benchmark: batch times, the ratios of times per sample to those of the
    implicit backend, the largest solution error and the gradient errors. ``z err`` and the gradient errors
    are relative Frobenius errors against the reference. ``NMSE dB`` is
    against the true codes, or at the unobserved samples for real data.
    """
    columns = _columns(benchmark)
    rows = [[header for header, _ in columns]]
    for record in result.records:
        rows.append([str(cell(record)) for _, cell in columns])
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))

    for problem in result.problems:
        reference = problem.get("reference")
        if reference is not None:
            lines.append(
                f"reference of {problem['name']}: {reference['method']}, max gap "
                f"{_number(reference['max_gap'], 2)}, max residual {_number(reference['max_residual'], 2)}, "
                f"{reference['polished']}/{reference['samples']} polished"
                + (" (cached)" if reference["cache_hit"] else f", {reference['seconds']:.3g} s")
            )
        if problem.get("reference_error"):
            lines.append(f"reference of {problem['name']} failed: {problem['reference_error']}")
    for record in result.records:
        if record["status"] != "ok":
            lines.append(f"{record['status']}: {record['problem']} / {record['method']}: {record['error']}")
        for note in record["notes"] or []:
            lines.append(f"note: {record['problem']} / {record['method']}: {note}")
    return "\n".join(lines)


def _clean(value):
    """Return JSON-ready data: tensors to lists, non-finite floats to "inf", "-inf" or "nan"."""
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "nan"
        return "inf" if value > 0 else "-inf"
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def to_json_data(result) -> dict:
    """Return the result as JSON-ready data (the content ``write_json`` writes)."""
    return _clean(result.to_dict())


def write_json(result, path) -> Path:
    """Write every field of the result to ``path`` as JSON; non-finite numbers become strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(to_json_data(result), handle, indent=2, allow_nan=False)
        handle.write("\n")
    return path


def plot(result, path) -> Path:
    """Draw one row per problem: NMSE against layers or iterations, and time against error.

    The left panel plots the NMSE (dB) of every layer of the learned networks
    and of every iteration of the longest ISTA and FISTA runs. Without those
    per-iteration estimates, ISTA and FISTA get one point per iteration count.
    The NMSE is against the true codes, or against the reference codes when
    there are none, and the solvers are horizontal lines. The right panel
    plots forward plus backward time against the relative solution error for
    every method that ran.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot needs matplotlib; install it with `pip install matplotlib`.") from error

    path = Path(path)
    problems = result.problems or [{"name": "(none)"}]
    figure = Figure(figsize=(12, 4 * len(problems)))
    FigureCanvasAgg(figure)
    for row, problem in enumerate(problems):
        records = [r for r in result.records if r["problem"] == problem["name"] and r["status"] == "ok"]
        _plot_layers(figure.add_subplot(len(problems), 2, 2 * row + 1), problem, records)
        _plot_tradeoff(figure.add_subplot(len(problems), 2, 2 * row + 2), problem, records)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def _plot_layers(axes, problem, records) -> None:
    truth = any(r["nmse_db"] is not None for r in records)
    key = "nmse_db_per_layer" if truth else "ref_nmse_db_per_layer"
    curves: dict = {}
    points: dict = {}
    levels: list = []
    for record in records:
        curve = record[key]
        level = _level(record, truth)
        if record["family"] in ("ista", "fista"):
            if curve is not None and len(curve) > len(curves.get(record["family"], [])):
                curves[record["family"]] = curve
            if level is not None:
                points.setdefault(record["family"], []).append((record["params"]["T"], level))
        elif curve is not None:
            curves[record["method"]] = curve
        elif level is not None:
            levels.append((record["method"], level))
    colors = iter(f"C{index % 10}" for index in range(1000))
    drawn = []
    for label, level in levels:
        axes.axhline(level, linestyle="--", linewidth=1, color=next(colors), label=label)
        drawn.append(level)
    for label, curve in curves.items():
        curve = [_finite(v) for v in curve]
        axes.plot(range(1, len(curve) + 1), curve, color=next(colors), label=label)
        drawn.extend(curve)
    for label, values in points.items():
        if label not in curves:
            values.sort()
            axes.plot([T for T, _ in values], [v for _, v in values], marker="o", color=next(colors), label=label)
            drawn.extend(v for _, v in values)
    finite = [v for v in drawn if math.isfinite(v)]
    if finite and max(finite) > _NMSE_TOP_DB:
        # A diverging network would squeeze every other curve into a line.
        axes.set_ylim(min(finite) - 1, _NMSE_TOP_DB)
    axes.set_xscale("log")
    axes.set_xlabel("layers / iterations")
    axes.set_ylabel("NMSE (dB) vs " + ("true codes" if truth else "reference codes"))
    axes.set_title(problem["name"])
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)


def _level(record, truth: bool):
    """Return the record's NMSE in dB against the true codes, or its error against the reference."""
    value = record["nmse_db"] if truth else _error_db(record["solution_rel_error"])
    return value if value is not None and math.isfinite(value) else None


def _plot_tradeoff(axes, problem, records) -> None:
    for record in records:
        time = (record["forward_time_s"] or 0.0) + (record["backward_time_s"] or 0.0)
        error = record["solution_rel_error"]
        if error is None or time <= 0:
            continue
        error = max(error, 1e-17)
        axes.scatter([time], [error], s=14)
        axes.annotate(record["method"], (time, error), fontsize=7)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("forward + backward time (s)")
    axes.set_ylabel("relative error vs reference")
    axes.set_title(problem["name"])


def _finite(value):
    return value if isinstance(value, float) and math.isfinite(value) else float("nan")


def _error_db(error):
    if error is None or error <= 0:
        return None
    return 20 * math.log10(error)
