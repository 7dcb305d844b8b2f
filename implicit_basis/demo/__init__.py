"""The demo: interpolate an ECG record from a random 30% of its samples with a learned sparse code.

``implicit-basis demo`` (or ``python -m implicit_basis demo``) runs it;
``run_demo(DemoConfig(...))`` does the same from Python and returns the
record it writes. The pieces are importable for other scripts, such as
``examples/train_ddp.py``: the data (``load_ecg``, ``observe``,
``make_windows``, ``split_folds``), the model (``build_frame``,
``WindowCoder``, ``LearnedISTA``) and the training (``train``,
``held_out_loss``, ``reconstruct_record``).
"""

from .command import configure_parser, main, run
from .data import Windows, load_ecg, make_windows, observe, spline_reconstruction, split_folds
from .model import METHODS, FrameSpec, LearnedISTA, WindowCoder, build_frame
from .report import errors, format_table
from .pipeline import DemoConfig, run_demo
from .train import TrainResult, held_out_loss, optimizer_for, reconstruct_record, train

__all__ = [
    "METHODS",
    "DemoConfig",
    "FrameSpec",
    "LearnedISTA",
    "TrainResult",
    "WindowCoder",
    "Windows",
    "build_frame",
    "configure_parser",
    "errors",
    "format_table",
    "held_out_loss",
    "load_ecg",
    "main",
    "make_windows",
    "observe",
    "optimizer_for",
    "reconstruct_record",
    "run",
    "run_demo",
    "spline_reconstruction",
    "split_folds",
    "train",
]
