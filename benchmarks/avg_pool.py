"""NB201's average pooling on a CPU: ``nn.AvgPool2d`` against metanas' depthwise-convolution
``AvgPool`` (the same numbers), forward+backward, per op and per training step of a network.

    python benchmarks/avg_pool.py [--repeats 20] [--threads 1] [--out docs/results]

Prints a table (median milliseconds, paired and interleaved so load hits both alike) and
writes ``avg_pool.json`` and ``avg_pool.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from metanas.figures import pyplot, save_png
from metanas.jsonio import write_json
from metanas.spaces.nb201 import NB201Network
from metanas.spaces.nb201.network import AvgPool

POOL_CELL = "|avg_pool_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
OPS = [  # (name, batch, channels, side): the proxy (C=8 at 16 px), a fit (C=16 at 32 px)
    ("3x3, 64 x 8 x 16 px (zero-cost batch)", 64, 8, 16),
    ("3x3, 256 x 16 x 32 px (fit, stage 1)", 256, 16, 32),
    ("3x3, 256 x 64 x 8 px (fit, stage 3)", 256, 64, 8),
]


def timed(fn: Callable[[], None], repeats: int) -> list[float]:
    fn()  # warm-up (oneDNN primitives)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def op_step(pool: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        pool(x).square().sum().backward()
    return run


def with_torch_pooling(net: nn.Module) -> nn.Module:
    """``net`` with every metanas AvgPool replaced by the equivalent ``nn.AvgPool2d``."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, AvgPool):
                setattr(parent, name, nn.AvgPool2d(child.kernel, child.stride, child.padding,
                                                   count_include_pad=False))
    return net


def net_step(arch: str, torch_pool: bool, batch: int, C: int, side: int) -> Callable[[], None]:
    """One SGD step's forward+backward of a 10-class NB201 network (N=1)."""
    net = NB201Network(arch, C=C, N=1, in_channels=3, num_classes=10).train()
    if torch_pool:
        net = with_torch_pooling(net)
    x = torch.randn(batch, 3, side, side)
    y = torch.randint(0, 10, (batch,))

    def run() -> None:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases: list[tuple[str, Callable[[], None], Callable[[], None]]] = []
    for name, b, c, side in OPS:
        x = torch.randn(b, c, side, side, requires_grad=True)
        cases.append((f"op {name}",
                      op_step(nn.AvgPool2d(3, 1, 1, count_include_pad=False), x),
                      op_step(AvgPool(3, 1, 1), x)))
    for cell, label in ((POOL_CELL, "3 pooling edges"), (RESNET_CELL, "NB201's ResNet cell")):
        for b, c, side in ((64, 8, 16), (256, 16, 32)):
            cases.append((f"network step, {label}, C={c} at {side} px, batch {b}",
                          net_step(cell, True, b, c, side), net_step(cell, False, b, c, side)))
    rows = []
    for name, torch_fn, ours_fn in cases:
        torch_ms, ours_ms = [], []
        for _ in range(args.repeats):  # interleaved: load hits both alike
            torch_ms += timed(torch_fn, 1)
            ours_ms += timed(ours_fn, 1)
        rows.append({"case": name, "torch_avgpool_ms": statistics.median(torch_ms),
                     "metanas_avgpool_ms": statistics.median(ours_ms),
                     "speedup": statistics.median(torch_ms) / statistics.median(ours_ms)})
    table = Table(title=f"forward+backward, median ms of {args.repeats}, "
                        f"{args.threads} torch thread(s)")
    for col in ("case", "nn.AvgPool2d", "metanas AvgPool", "speed-up"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["case"], f"{r['torch_avgpool_ms']:.2f}", f"{r['metanas_avgpool_ms']:.2f}",
                      f"{r['speedup']:.2f}x")
    Console(width=140).print(table)
    out = f"{args.out}/avg_pool"
    write_json(f"{out}.json", {"repeats": args.repeats, "threads": args.threads,
                               "torch": torch.__version__, "rows": rows}, option="--out")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    ax.barh([r["case"] for r in rows], [r["speedup"] for r in rows], color="C0")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("speed-up of metanas AvgPool over nn.AvgPool2d (forward+backward)")
    ax.invert_yaxis()
    save_png(fig, f"{out}.png")
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
