"""Train the demo's ECG model with DistributedDataParallel, its windows split across processes.

Run, two CPU processes on the gloo backend:

    torchrun --nproc_per_node 2 examples/train_ddp.py [--steps 25] [--method implicit]

Without torchrun the script trains in one process, which gives the reference
that a distributed run must match.

The model, the data and the training loop are those of ``implicit-basis
demo``, imported from ``implicit_basis.demo``. The ECG record of PyWavelets
is observed at a random 30% of its samples and cut into 8 windows. Each
window is coded by a lasso over a learned frame of Gabor and damped-sinusoid
atoms, and the frame is trained on the K-fold held-out error.

Each process trains on ``windows / world_size`` of the windows, and
``DistributedDataParallel`` averages the gradients. Every process has as
many windows and the loss is a mean over windows, so the average is the
gradient of the loss of all windows: the distributed run follows the
one-process run step for step. Every process draws the folds of all the
windows from the same seed and keeps its own rows.

The same script scales to GPUs and machines: with ``--device cuda`` each
process uses the GPU of its ``LOCAL_RANK`` and the NCCL backend, and
torchrun's ``--nnodes`` and ``--rdzv-endpoint`` options spread the processes
over machines. The number of windows must stay a multiple of the number of
processes (``--window`` sets the windows: 1024 / window of them).

NOTE: torchrun's rendezvous store (torch 2.13) listens on every network
interface of the first machine, not only on ``--master-addr``; run it on a
trusted network.

Rank 0 prints the training time, the reconstruction error of the trained
model on all 1024 samples, and the largest difference between the
processes' parameters, which is 0 when they stayed in step.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from implicit_basis.demo import (
    DemoConfig,
    WindowCoder,
    build_frame,
    errors,
    load_ecg,
    make_windows,
    observe,
    reconstruct_record,
    split_folds,
    train,
)


def parse_args(argv=None) -> argparse.Namespace:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("implicit", "unrolled", "learned"), default="implicit",
                        help="how the codes are computed (default: implicit)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="training steps")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the samples and folds")
    parser.add_argument("--observed", type=float, default=defaults.observed, help="observed fraction")
    parser.add_argument("--window", type=int, default=defaults.window, help="samples per window")
    parser.add_argument("--margin", type=int, default=defaults.margin, help="context samples per side")
    parser.add_argument("--folds", type=int, default=defaults.folds, help="cross-validation folds")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam step for centres and frequencies")
    parser.add_argument("--lr-log", type=float, default=defaults.lr_log, help="Adam step for log-scale parameters")
    parser.add_argument("--lam", type=float, default=defaults.lam, help="initial lasso weight")
    parser.add_argument("--depth", type=int, default=None,
                        help="FISTA steps (unrolled) or layers (learned); default: the demo's")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=defaults.dtype)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu (gloo backend) or cuda (NCCL, the GPU of LOCAL_RANK)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads per process (default: 1, see DemoConfig)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def train_rank(rank: int, world_size: int, args: argparse.Namespace):
    """Train this process's share of the windows; return the model, the history and the windows.

    With ``world_size`` 1 the model is trained on all windows without
    ``DistributedDataParallel``; otherwise the default process group must
    be initialised.
    """
    device = torch.device("cpu")
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dtype = getattr(torch, args.dtype)

    x = load_ecg()
    observed = observe(x.shape[0], args.observed, args.seed)
    windows = make_windows(x, observed, args.window, args.margin, dtype=dtype, device=device)
    if windows.count % world_size:
        raise ValueError(
            f"{windows.count} windows cannot be shared equally by {world_size} processes; "
            f"choose --window so that 1024 / window is a multiple of {world_size}."
        )
    share = windows.count // world_size
    rows = slice(rank * share, (rank + 1) * share)
    local = windows.select(rows)

    # The initial model has no random part, so every process builds the same
    # one. DistributedDataParallel also broadcasts rank 0's parameters.
    defaults = DemoConfig()
    depth = args.depth or (defaults.fista_steps if args.method == "unrolled" else defaults.layers)
    frame = build_frame(args.window, args.margin, defaults.frame, dtype=dtype, device=device)
    model = WindowCoder(frame, args.lam, args.method, depth)
    wrapped = model
    if world_size > 1:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    generator = torch.Generator().manual_seed(args.seed + 1)

    def splitter():
        fit, held_out = split_folds(windows.observed, args.folds, generator)
        return fit[rows], held_out[rows]

    history = train(
        wrapped, local, steps=args.steps, lr=args.lr, lr_log=args.lr_log, folds=args.folds,
        seed=args.seed + 1, progress=rank == 0 and not args.no_progress,
        description=f"rank {rank}, {share} windows", splitter=splitter,
    )
    return model, history, windows, x, observed


def largest_difference(model: torch.nn.Module) -> float:
    """Return the largest absolute difference between this process's parameters and rank 0's."""
    flat = torch.cat([parameter.detach().reshape(-1) for parameter in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    difference = (flat - reference).abs().max()
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return float(difference)


def main(argv=None) -> dict:
    """Train, then on rank 0 print and return the errors; other ranks return an empty dict."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    try:
        model, history, windows, x, observed = train_rank(rank, world_size, args)
        difference = largest_difference(model) if distributed else 0.0
    finally:
        if distributed:
            dist.destroy_process_group()
    if rank != 0:
        return {}

    reconstruction, _ = reconstruct_record(model, windows)
    interior = slice(int(observed[0]), int(observed[-1]) + 1)
    measured = errors(reconstruction, x, interior)
    backend = "none"
    if distributed:
        backend = "nccl" if args.device == "cuda" else "gloo"
    print(f"{world_size} process(es), backend {backend}, {windows.count // world_size} of "
          f"{windows.count} windows each; method {args.method}, {args.steps} steps")
    print(f"training time            {history.seconds:.1f} s")
    print(f"held-out loss            {np.mean(history.losses[:3]):.4f} (first 3 steps) -> "
          f"{np.mean(history.losses[-3:]):.4f} (last 3), rank 0's windows")
    print(f"final lam                {float(model.lam.detach()):.5f}")
    print(f"relative error, all      {measured['relative_error']:.4f} ({measured['snr_db']:.2f} dB)")
    print(f"parameter spread         {difference:.3g} (largest difference from rank 0)")
    return {
        "world_size": world_size,
        "seconds": history.seconds,
        "losses": history.losses,
        "difference": difference,
        "parameters": {name: p.detach().cpu() for name, p in model.named_parameters()},
        **measured,
    }


if __name__ == "__main__":
    main()
