"""DistributedDataParallel over the sparse-coding layer: two gloo processes on the loopback interface.

Two processes run ``examples/train_ddp.py``'s training (the demo's
``WindowCoder``, a ``SparseCoding`` layer with the implicit backend over a
learned frame) for a few steps, each on half of the windows. Their final
parameters must be identical, and equal to those of one process trained on
all the windows.

Every socket stays on 127.0.0.1. The test process runs the rendezvous
store and opens its listening socket itself, bound to 127.0.0.1 on a free
port, because a ``TCPStore`` that binds its own socket listens on every
interface (torch 2.13). The workers connect to it, and gloo binds to the
loopback interface (``GLOO_SOCKET_IFNAME``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from implicit_basis.demo import DemoConfig, build_frame

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_ddp.py"

# Two steps of the implicit method, two folds, 4 of the 8 windows per process.
ARGS = ["--method", "implicit", "--steps", "2", "--folds", "2", "--no-progress"]

WORLD_SIZE = 2

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no distributed package with the gloo backend",
)


def _load_example():
    spec = importlib.util.spec_from_file_location("examples_train_ddp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _loopback_interface() -> str | None:
    names = {name for _, name in socket.if_nameindex()}
    for name in ("lo", "lo0"):
        if name in names:
            return name
    return None


def _listening_addresses() -> list[str] | None:
    """Return the local addresses of this process's listening TCP sockets (None off Linux).

    Reads the socket inodes of /proc/self/fd and the LISTEN entries (state
    0A) of /proc/net/tcp and /proc/net/tcp6.
    """
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                addresses.append(_decode_address(fields[1]))
    return addresses


def _decode_address(text: str) -> str:
    """Decode a /proc/net/tcp{,6} address such as 0100007F:1F90 to '127.0.0.1'."""
    host = text.split(":")[0]
    raw = bytes.fromhex(host)
    # The kernel writes each 32-bit word in host byte order (little-endian here).
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return socket.inet_ntop(socket.AF_INET, words)
    return socket.inet_ntop(socket.AF_INET6, words)


def _worker(rank: int, world_size: int, port: int, folder: str, argv: list[str]) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    loopback = _loopback_interface()
    if loopback is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, world_size, False, timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        example = _load_example()
        model, history, *_ = example.train_rank(rank, world_size, example.parse_args(argv))
        listening = _listening_addresses()
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(
        {
            "parameters": {name: p.detach().clone() for name, p in model.named_parameters()},
            "losses": history.losses,
            "listening": listening,
        },
        Path(folder) / f"rank{rank}.pt",
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train with two processes and with one; return the two ranks' outcomes and the reference."""
    folder = tmp_path_factory.mktemp("ddp")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    # The store takes over the socket and closes it when it is destroyed.
    store = dist.TCPStore(
        "127.0.0.1", port, None, True, timedelta(seconds=60),
        wait_for_workers=False, master_listen_fd=listener.detach(),
    )
    try:
        mp.spawn(_worker, args=(WORLD_SIZE, port, str(folder), ARGS), nprocs=WORLD_SIZE, join=True)
    finally:
        del store
    ranks = [torch.load(folder / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        example = _load_example()
        model, history, *_ = example.train_rank(0, 1, example.parse_args(ARGS))
    finally:
        torch.set_num_threads(threads)
    single = {name: p.detach().clone() for name, p in model.named_parameters()}
    return ranks, single


def test_ranks_hold_identical_parameters(runs):
    ranks, _ = runs
    first, second = ranks[0]["parameters"], ranks[1]["parameters"]
    assert set(first) == set(second)
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)


def test_ranks_match_one_process(runs):
    ranks, single = runs
    parameters = ranks[0]["parameters"]
    assert set(parameters) == set(single)
    for name, value in single.items():
        assert value.dtype == torch.float64, name
        torch.testing.assert_close(parameters[name], value, rtol=1e-10, atol=1e-10, msg=name)


def test_training_moved_parameters(runs):
    # Equality would also hold if no step changed anything.
    _, single = runs
    example = _load_example()
    args = example.parse_args(ARGS)
    start = build_frame(args.window, args.margin, DemoConfig().frame, dtype=torch.float64)
    moved = (single["frame.frames.0.centres"] - start.frames[0].centres.detach()).abs().max()
    assert float(moved) > 1e-4


def test_ranks_report_losses(runs):
    ranks, _ = runs
    for outcome in ranks:
        assert len(outcome["losses"]) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads listening sockets from /proc/net")
def test_workers_listen_on_loopback_only(runs):
    ranks, _ = runs
    for rank, outcome in enumerate(ranks):
        addresses = set(outcome["listening"])
        assert addresses <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, (rank, addresses)
