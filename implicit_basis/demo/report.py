"""The demo's outputs: the error measures, the printed table, the JSON record and the figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["errors", "format_table", "plot", "write_json"]


def errors(reconstruction: np.ndarray, x: np.ndarray, interior: slice) -> dict:
    """Return the relative l2 error and the SNR of ``reconstruction`` against the record ``x``.

    ``x`` is standardised (zero mean), so the relative error
    ``||x_hat - x|| / ||x||`` is the error relative to the centred record, and
    ``snr_db = -20 log10(relative_error)``. ``interior`` restricts the same
    measures to the samples from the first to the last observed one, where
    no method extrapolates.

    Shape:
        reconstruction, x: (N,).
    """
    def relative(part: slice) -> float:
        return float(np.linalg.norm(reconstruction[part] - x[part]) / np.linalg.norm(x[part]))

    whole = relative(slice(None))
    inner = relative(interior)
    return {
        "relative_error": whole,
        "snr_db": _snr_db(whole),
        "relative_error_interior": inner,
        "snr_db_interior": _snr_db(inner),
    }


def _snr_db(relative_error: float) -> float:
    return math.inf if relative_error == 0 else -20.0 * math.log10(relative_error)


def format_table(result: dict) -> str:
    """Return the demo's table: one row per method with its errors and training time."""
    record, windows = result["record"], result["windows"]
    lines = [
        f"ECG record (pywt.data.ecg), {record['samples']} samples, {record['observed']} observed "
        f"({record['observed_fraction']:.0%}, seed {result['config']['seed']}); "
        f"{windows['count']} windows of {windows['window']} samples with {windows['margin']} "
        f"samples of context; {result['frame']['atoms']} atoms",
        "",
        f"{'method':<34}{'rel. error':>11}{'SNR dB':>8}{'interior':>10}{'int. dB':>9}{'train s':>9}",
    ]
    for row in result["methods"]:
        seconds = "-" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}"
        lines.append(
            f"{row['label']:<34}{row['relative_error']:>11.3f}{row['snr_db']:>8.2f}"
            f"{row['relative_error_interior']:>10.3f}{row['snr_db_interior']:>9.2f}{seconds:>9}"
        )
    first, last = record["interior"]
    lines += [
        "",
        f"rel. error: ||x_hat - x|| / ||x|| over all {record['samples']} samples of the "
        f"standardised record; interior: samples {first} to {last}, between the first and "
        f"the last observed one.",
    ]
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> Path:
    """Write ``result`` as JSON to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    return path


# Colours and line styles of the methods in the figure.
_STYLES = {
    "spline": {"color": "tab:green", "linestyle": "-"},
    "untrained": {"color": "tab:gray", "linestyle": "-"},
    "implicit": {"color": "tab:red", "linestyle": "-"},
    "unrolled": {"color": "tab:orange", "linestyle": "--"},
    "learned": {"color": "tab:purple", "linestyle": ":"},
}


def plot(x: np.ndarray, observed: np.ndarray, reconstructions: dict, labels: dict, path: Path) -> Path:
    """Draw the record, its observed samples and the reconstructions to a PNG at ``path``.

    The top panel shows the whole record, the bottom one the 256 samples
    around its largest absolute value (an R peak of the ECG).

    Args:
        x: the standardised record.
        observed: indices of the observed samples.
        reconstructions: method key to reconstruction of the record.
        labels: method key to the label in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = x.shape[0]
    centre = int(np.argmax(np.abs(x)))
    low = min(max(centre - 128, 0), max(n - 256, 0))
    zoom = slice(low, min(low + 256, n))

    figure, axes = plt.subplots(2, 1, figsize=(14, 8))
    for axis, part in zip(axes, (slice(0, n), zoom)):
        times = np.arange(n)[part]
        axis.plot(times, x[part], color="black", linewidth=1.2, label="ECG record")
        for key, reconstruction in reconstructions.items():
            axis.plot(times, reconstruction[part], linewidth=1.0, label=labels[key], **_STYLES.get(key, {}))
        seen = observed[(observed >= times[0]) & (observed <= times[-1])]
        axis.plot(seen, x[seen], "o", color="black", markersize=3, label="observed samples")
        # Keep the record's range: an extrapolating spline can leave it by far.
        span = x.max() - x.min()
        axis.set_ylim(x.min() - 0.15 * span, x.max() + 0.15 * span)
        axis.set_xlabel("sample")
        axis.set_ylabel("standardised amplitude")
        axis.grid(alpha=0.3)
    axes[0].set_title(f"ECG record and reconstructions from {observed.size} of {n} samples")
    axes[1].set_title(f"samples {zoom.start} to {zoom.stop - 1}")
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
