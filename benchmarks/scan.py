"""The selective scan alone (and the fused causal conv + SiLU): milliseconds per call,
forward + backward, for each backend, thread count and shape.

Shapes: the Mamba blocks of the paper's model (batch 32; slow path d_inner 512,
L k/2; fast path d_inner 256, L k; N 64) and of the synthetic config's CPU model
(d_inner 64 / 128, N 16), k 30 and 50. Per shape the timed calls of every
(backend, threads) pair alternate, one round after the other, so that on a shared
machine the ratios hold; the median of --repeats rounds is printed, warm-up excluded.

CPU: the fused numba scan and conv (``mepkg.scan_cpu``, ``mepkg.conv_cpu``), mepkg's
loop, the reference loop; threads set with torch.set_num_threads, which the fused
kernels follow. CUDA (when present): the Triton scan, the loop, mamba_ssm's
kernel (when it imports), at batch 32 and 256, with the peak memory of a call.

--train: instead, training windows/s (forward + backward + training's Adam, batch
32, k 30, the automatic scan path) of the paper's model and the CPU model, the
thread counts' steps alternating, median of --repeats steps. How torch's OpenMP
workers wait between ops is what mepkg's jobs and `mepkg train-fold` set
(``mepkg.jobs.OPENMP_WAIT``, read when torch loads) unless the environment says
otherwise, and is printed: compare with e.g. `GOMP_SPINCOUNT=0` (sleep at once)
or `OMP_WAIT_POLICY=ACTIVE` (spin).

    python benchmarks/scan.py [--threads 1 2] [--repeats 5] [--backends numba loop]
    python benchmarks/scan.py --device cuda --batch 32 256
    python benchmarks/scan.py --train --threads 1 2 --repeats 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from mepkg.jobs import OPENMP_WAIT, set_openmp_wait

set_openmp_wait()   # as jobs do, before torch loads (a value in the environment wins)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mepkg import mamba as mamba_mod
from mepkg.mamba import selective_scan
from mepkg.model import SlowFastMamba
from mepkg.train import make_optimizer

PAPER = {"d_model": 128, "d_state": 64}       # docs/method.md §4
CPU_MODEL = {"d_model": 32, "d_state": 16}    # config/synthetic.yaml


def shapes(model: dict, k: int) -> list[tuple[str, int, int, int]]:
    """(label, d_inner, length, d_state) of the model's two kinds of Mamba block."""
    d, n = model["d_model"], model["d_state"]
    return [("slow", 4 * d, k // 2, n), ("fast", 2 * d, k, n)]


def scan_inputs(batch, d_inner, length, d_state, device, dtype=torch.float32):
    """Inputs as Mamba.forward passes them: (B, D, L) views of time-major memory."""
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)
    xz = r(batch, length, 2 * d_inner).requires_grad_()
    bc = r(batch, length, 2 * d_state).requires_grad_()
    delta = (r(batch, length, d_inner) * 0.5 - 3).requires_grad_()
    A = -torch.arange(1.0, d_state + 1, device=device).repeat(d_inner, 1).requires_grad_()
    D = torch.ones(d_inner, device=device, requires_grad=True)
    bias = torch.zeros(d_inner, device=device, requires_grad=True)
    u, z = xz[..., :d_inner].transpose(1, 2), xz[..., d_inner:].transpose(1, 2)
    B, C = bc[..., :d_state].transpose(1, 2), bc[..., d_state:].transpose(1, 2)
    return (u, delta.transpose(1, 2), A, B, C, D, z, bias)


def timed_call(backend: str, args, device) -> float:
    """Seconds for one forward + backward."""
    u, delta, A, B, C, D, z, bias = args
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    y = selective_scan(u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True,
                       backend=backend)
    y.float().square().sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def timed_conv(args, conv: torch.nn.Conv1d) -> float:
    x = args[0]
    t0 = time.perf_counter()
    mamba_mod.conv1d_silu(x, conv).square().sum().backward()
    return time.perf_counter() - t0


def bench(device: torch.device, backends: list[str], threads: list[int], batches: list[int],
          ks: list[int], repeats: int, conv: bool) -> None:
    for batch in batches:
        for model_name, model in (("paper", PAPER), ("cpu model", CPU_MODEL)):
            for k in ks:
                for where, d_inner, length, n in shapes(model, k):
                    args = scan_inputs(batch, d_inner, length, n, device)
                    runs = {(b, t): [] for b in backends for t in threads}
                    if conv and device.type == "cpu":
                        layer = torch.nn.Conv1d(d_inner, d_inner, 4, groups=d_inner, padding=3)
                        runs.update({("conv+silu", t): [] for t in threads})
                    peak = {}
                    for i in range(repeats + 1):            # round 0: warm-up
                        for (backend, t), times in runs.items():
                            torch.set_num_threads(t)
                            if device.type == "cuda":
                                torch.cuda.reset_peak_memory_stats()
                            sec = (timed_conv(args, layer) if backend == "conv+silu"
                                   else timed_call(backend, args, device))
                            if device.type == "cuda":
                                peak[backend] = torch.cuda.max_memory_allocated() / 2**20
                            if i:
                                times.append(sec)
                    base = {}
                    for (backend, t), times in runs.items():
                        ms = statistics.median(times) * 1e3
                        base.setdefault(backend, ms)
                        extra = f"  peak {peak[backend]:8.1f} MiB" if backend in peak else ""
                        print(f"{model_name:9s} k {k:2d} {where} B={batch:<4d} D={d_inner:<4d} "
                              f"L={length:<3d} N={n:<3d} {backend:10s} threads {t:2d}: "
                              f"{ms:9.2f} ms fwd+bwd ({base[backend] / ms:4.2f}x){extra}",
                              flush=True)


def bench_train(device: torch.device, threads: list[int], batch: int, k: int,
                repeats: int) -> None:
    """Training windows/s of both models at each thread count, steps alternating."""
    for model_name, model_args in (("paper", {}), ("cpu model", {"d_model": 32, "depth": 2,
                                                                 "d_state": 16})):
        torch.manual_seed(0)
        model = SlowFastMamba(**model_args).to(device).train()
        opt = make_optimizer(model, 1e-4)
        x = torch.randn(batch, 36, k, device=device)
        target = torch.rand(batch, k, device=device)
        times = {t: [] for t in threads}
        for i in range(repeats + 1):                    # round 0: warm-up
            for t in threads:
                torch.set_num_threads(t)
                t0 = time.perf_counter()
                spot, logits = model(x)
                loss = F.mse_loss(spot, target) + 0.1 * logits.square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i:
                    times[t].append(time.perf_counter() - t0)
        base = batch / statistics.median(times[threads[0]])
        for t in threads:
            rate = batch / statistics.median(times[t])
            print(f"train {model_name:9s} batch {batch} k {k} threads {t:2d}: {rate:7.1f} "
                  f"windows/s ({rate / base:4.2f}x)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backends", nargs="+", default=None,
                   help=f"from {', '.join(mamba_mod.SCAN_BACKENDS)} (default: what the "
                        "device has, without the reference)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, nargs="+", default=[32])
    p.add_argument("--k", type=int, nargs="+", default=[30])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-conv", action="store_true", help="skip the fused conv + SiLU")
    p.add_argument("--train", action="store_true",
                   help="training windows/s of both models instead of the scan alone")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.train:
        print(f"device {device}, torch {torch.__version__}, scan: "
              f"{mamba_mod.scan_backend(device)}, "
              + ", ".join(f"{v}={os.environ.get(v, '(unset)')}" for v in OPENMP_WAIT)
              + f"; median of {args.repeats} steps")
        bench_train(device, args.threads, args.batch[0], args.k[0], args.repeats)
        return
    backends = args.backends
    if backends is None:
        backends = (["triton", "loop"] + (["mamba_ssm"] if mamba_mod._cuda_scan else [])
                    if device.type == "cuda" else ["numba"])
    print(f"device {device}, torch {torch.__version__}, automatic choice: "
          f"{mamba_mod.scan_backend(device)}; times: median of {args.repeats}")
    bench(device, backends, args.threads, args.batch, args.k, args.repeats,
          conv=not args.no_conv)


if __name__ == "__main__":
    main()
