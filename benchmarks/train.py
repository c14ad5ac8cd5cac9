"""Training throughput of the slow-fast Mamba with each selective scan, and a
seconds-per-epoch estimate.

Prints, in one run (so that the ratios hold on a shared machine):
- the fused CPU scan's compile/load time (numba; cached after the first run);
- the selective scan alone (fwd+bwd) at the paper model's two widths: the fused
  CPU scan, mepkg's loop, the reference loop (and mambapy's pscan if installed);
- training windows/s (forward + backward + Adam step, batch 32, k 30) of the
  paper's model and of the synthetic config's CPU model, for each --threads
  value, with the fused scan (+ the fused conv+SiLU), the loop and the reference
  loop (+ torch's conv) swapped into ``mepkg.mamba``, all with training's
  optimizer, and "before #10" (the loop with torch's per-tensor Adam: the step
  as it was when issue 10 was filed); steps of the four alternate, warm-up
  excluded, median of --steps; on CUDA when present: the pure-PyTorch loop and mamba_ssm's kernel
  (when it imports), paper model;
- inference windows/s on CPU (prediction of held-out videos, ``mepkg spot``);
- seconds per epoch for a SAMM-LV-sized fold: training windows = windows with
  an ME frame (other subjects) + background ratio x as many.

Threads: torch.set_num_threads(n); the fused scan splits the batch over the
same number of threads (it uses no numba threading layer).

    python benchmarks/train.py [--threads 1 2] [--steps 3] [--no-scan]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time

import torch
import torch.nn.functional as F

from mepkg import mamba as mamba_mod
from mepkg.mamba import (conv1d_silu, scan_backend, selective_scan_loop,
                         selective_scan_reference)
from mepkg.model import SlowFastMamba, count_parameters
from mepkg.train import make_optimizer

CPU_MODEL = {"d_model": 32, "depth": 2, "d_state": 16}     # config/synthetic.yaml


def cpu_scans() -> dict:
    """The scans to compare, by name: fused (when it loads), loop, reference."""
    scans = {}
    fused = mamba_mod._fused_cpu_scan()
    if fused is not None:
        scans["fused"] = fused
    else:
        print(f"  (fused CPU scan unavailable: {mamba_mod._fused.get('error')})")
    scans["loop"] = selective_scan_loop
    scans["reference"] = selective_scan_reference
    return scans


def use_scan(name: str, scan) -> None:
    """Swap ``scan`` into mepkg.mamba; the fused scan comes with the fused conv+SiLU, the
    loops with the torch conv (so that "loop" is the model as it was before the fused path)."""
    mamba_mod.selective_scan = scan
    mamba_mod.conv1d_silu = conv1d_silu if name == "fused" else mamba_mod.conv1d_silu_torch


def fused_compile_seconds() -> float:
    """Seconds for the fused scan's first call (numba compile, or load from its cache)."""
    fused = mamba_mod._fused_cpu_scan()
    if fused is None:
        return float("nan")
    args = scan_inputs(2, 8, 5, 4)
    t0 = time.perf_counter()
    fused(*args[:6], z=args[6], delta_bias=args[7], delta_softplus=True).sum().backward()
    return time.perf_counter() - t0


def time_it(fn, repeats: int) -> float:
    fn()                                            # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def scan_inputs(batch, d_inner, length, d_state=64):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    A = -torch.arange(1.0, d_state + 1).repeat(d_inner, 1)
    return [t.requires_grad_() for t in (r(batch, d_inner, length), r(batch, d_inner, length) * 0.5,
                                         A, r(batch, d_state, length), r(batch, d_state, length),
                                         torch.ones(d_inner), r(batch, d_inner, length),
                                         torch.zeros(d_inner))]


def mambapy_scan():
    try:
        from mambapy.pscan import pscan
    except ImportError:
        return None

    def scan(u, delta, A, B, C, D, z=None, delta_bias=None, delta_softplus=False):
        delta = F.softplus(delta + delta_bias[None, :, None]).transpose(1, 2)   # B x L x D
        dA = torch.exp(delta.unsqueeze(-1) * A)                                  # B x L x D x N
        dBu = (delta * u.transpose(1, 2)).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(2)
        hs = pscan(dA, dBu)                                                      # B x L x D x N
        y = torch.einsum("bldn,bnl->bdl", hs, C) + u * D[None, :, None]
        return y * F.silu(z)
    return scan


def bench_scans(threads: int, repeats: int) -> None:
    torch.set_num_threads(threads)
    scans = {"mepkg " + name: scan for name, scan in cpu_scans().items()}
    if (pscan := mambapy_scan()) is not None:
        scans["mambapy pscan"] = pscan
    else:
        print("  (mambapy not installed: pip install mambapy to compare its pscan)")
    for d_inner, length, where in ((512, 15, "slow path"), (256, 30, "fast path"),
                                   (256, 50, "fast path, k=50")):
        args = scan_inputs(32, d_inner, length)
        for name, scan in scans.items():
            def step():
                y = scan(*args[:6], z=args[6], delta_bias=args[7], delta_softplus=True)
                y.square().sum().backward()
            ms = time_it(step, repeats) * 1e3
            print(f"  scan {where:16s} B=32 D={d_inner} L={length} N=64  {name:22s} "
                  f"fwd+bwd {ms:8.1f} ms")


def train_step_fn(device: torch.device, batch: int, k: int, model_args: dict,
                  optimizer: str = "training"):
    """One training step (forward + backward + Adam) of a fresh model on random data.
    optimizer "training": ``mepkg.train.make_optimizer`` (what training uses); "per-tensor":
    torch's default CPU Adam, one set of small ops per parameter tensor (before #10)."""
    torch.manual_seed(0)
    model = SlowFastMamba(**model_args).to(device).train()
    opt = (make_optimizer(model, 3e-4) if optimizer == "training"
           else torch.optim.Adam(model.parameters(), lr=3e-4, foreach=False))
    x = torch.randn(batch, 36, k, device=device)
    target = torch.rand(batch, k, device=device)
    cls = torch.randint(0, 5, (batch, k), device=device)

    def step():
        spot, logits = model(x)
        loss = 0.9 * F.mse_loss(spot, target) + 0.1 * F.cross_entropy(logits.flatten(0, 1),
                                                                      cls.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


BEFORE = "before #10"      # the training step when issue #10 was filed: loop scan, torch conv,
                           # per-tensor Adam


def bench_training(device: torch.device, threads: int, batch: int, k: int, steps: int,
                   model_args: dict, scans: dict | None = None, budget_s: float = 60,
                   before: bool = False) -> dict:
    """Training windows/s per scan (median of ``steps`` timed steps after one warm-up,
    fewer, but at least one, once a round of all scans has taken ``budget_s`` in all;
    the scans' steps alternate so that load on a shared machine hits them alike).
    Every scan trains its own copy of the model with training's optimizer; ``before``
    adds the BEFORE column (the loop scan with torch's per-tensor Adam)."""
    torch.set_num_threads(threads)
    scans = dict(scans or {"fused": mamba_mod.selective_scan})
    settings = {name: (name, scan, "training") for name, scan in scans.items()}
    if before:
        settings[BEFORE] = ("loop", selective_scan_loop, "per-tensor")
    steps_of = {name: train_step_fn(device, batch, k, model_args, optimizer)
                for name, (_, _, optimizer) in settings.items()}
    original = mamba_mod.selective_scan
    times = {name: [] for name in settings}
    start = time.perf_counter()
    try:
        for rep in range(steps + 1):
            if rep >= 2 and time.perf_counter() - start > budget_s:
                break
            for name, (kind, scan, _) in settings.items():
                use_scan(kind, scan)
                t0 = time.perf_counter()
                steps_of[name]()
                if rep:                                 # rep 0: warm-up
                    times[name].append(time.perf_counter() - t0)
    finally:
        use_scan("fused", original)
    return {name: batch / statistics.median(t) for name, t in times.items()}


@torch.no_grad()
def bench_inference(threads: int, k: int, model_args: dict, batch: int = 256) -> float:
    torch.set_num_threads(threads)
    model = SlowFastMamba(**model_args).eval()
    x = torch.randn(batch, 36, k)
    return batch / time_it(lambda: model(x), 1)


def samm_fold_windows(n_me: int, me_len: float, k: int, ratio: float, n_subjects: int) -> float:
    """Training windows of one LOSO fold: ME windows of the other subjects x (1 + ratio).

    An ME with ``me_len`` positive sampled frames overlaps about (me_len + k - 1) / (k/2)
    windows (stride k/2).
    """
    per_me = (me_len + k - 1) / (k / 2)
    positive = n_me * per_me * (n_subjects - 1) / n_subjects
    return positive * (1 + ratio)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--steps", type=int, default=3,
                   help="timed training steps per setting and scan (median; the CPU model "
                        "takes 4x as many)")
    p.add_argument("--budget", type=float, default=60,
                   help="seconds per model and thread count after which fewer steps are timed")
    p.add_argument("--scan-repeats", type=int, default=2)
    p.add_argument("--no-scan", action="store_true", help="skip the scan-alone timings")
    p.add_argument("--model", type=json.loads, default={},
                   help="SlowFastMamba arguments as JSON for the first model (default: the "
                        f"paper's); the second is the synthetic config's CPU model {CPU_MODEL}")
    # SAMM-LV fold size (docs/method.md §1): 79 ME videos, 29 subjects, ~215k sampled frames at frame_skip 7
    p.add_argument("--n-me", type=int, default=159, help="MEs in the fold's dataset")
    p.add_argument("--me-len", type=float, default=10.0, help="positive sampled frames per ME")
    p.add_argument("--sampled-frames", type=int, default=215_000)
    p.add_argument("--subjects", type=int, default=29)
    p.add_argument("--ratio", type=float, default=0.5)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    print(f"fused CPU scan: {scan_backend('cpu')}; first call (compile or cache load) "
          f"{fused_compile_seconds():.1f} s; CPU: {torch.backends.cpu.get_cpu_capability()}, "
          f"torch {torch.__version__}")
    if not args.no_scan:
        print(f"selective scan alone, CPU, threads {args.threads[0]}:")
        bench_scans(args.threads[0], args.scan_repeats)

    scans = cpu_scans()
    models = {"paper model": args.model, "CPU model": CPU_MODEL}
    print(f"training windows/s, CPU, batch {args.batch}, k {args.k} (fwd+bwd+Adam, median; "
          f"'{BEFORE}': the loop with torch's per-tensor Adam, the step as it was):")
    columns = list(scans) + [BEFORE]
    header = "".join(f"{name:>11s}" for name in columns)
    print(f"  {'model':12s} {'parameters':>10s} {'threads':>7s}{header}"
          + ("   fused/loop fused/ref fused/before" if "fused" in scans else ""))
    rates = {}
    for label, model_args in models.items():
        n_params = count_parameters(SlowFastMamba(**model_args))
        steps = args.steps * (1 if label == "paper model" else 4)
        for threads in args.threads:
            r = bench_training(torch.device("cpu"), threads, args.batch, args.k, steps,
                               model_args, scans, args.budget, before=True)
            rates[(label, threads)] = r
            cells = "".join(f"{r[name]:11.2f}" for name in columns)
            ratio = (f"   {r['fused'] / r['loop']:9.1f}x {r['fused'] / r['reference']:8.1f}x "
                     f"{r['fused'] / r[BEFORE]:11.1f}x" if "fused" in r else "")
            print(f"  {label:12s} {n_params:10,d} {threads:7d}{cells}{ratio}")
    for label, model_args in models.items():
        rate = bench_inference(args.threads[0], args.k, model_args)
        print(f"inference CPU threads={args.threads[0]} {label}: {rate:.1f} windows/s "
              f"(batch 256, k {args.k}, {scan_backend('cpu')})")
    epoch_rates = {f"CPU threads={t}": rates[("paper model", t)][next(iter(scans))]
                   for t in args.threads}
    if torch.cuda.is_available():
        cuda_scans = {"pure-PyTorch loop": selective_scan_loop}
        if mamba_mod._cuda_scan is not None:
            cuda_scans["mamba_ssm kernel"] = mamba_mod._cuda_scan
        else:
            print(f"  (mamba_ssm not importable: {mamba_mod._CUDA_SCAN_ERROR})")
        r = bench_training(torch.device("cuda"), 1, args.batch, args.k, max(args.steps, 10),
                           args.model, cuda_scans, args.budget)
        for name, rate in r.items():
            epoch_rates[f"CUDA {name}"] = rate
            print(f"training CUDA {torch.cuda.get_device_name()}, paper model, {name}: "
                  f"{rate:.1f} windows/s")

    all_windows = args.sampled_frames / (args.k / 2) - 79
    fold = samm_fold_windows(args.n_me, args.me_len, args.k, args.ratio, args.subjects)
    steps = math.ceil(fold / args.batch)
    print(f"SAMM-LV-sized fold: ~{all_windows:,.0f} windows in all videos; training windows per "
          f"fold ~{fold:,.0f} ({args.n_me} MEs x {(args.me_len + args.k - 1) / (args.k / 2):.1f} "
          f"windows each x {args.subjects - 1}/{args.subjects} subjects x (1 + {args.ratio})), "
          f"{steps} steps/epoch")
    print(f"paper model, {next(iter(scans))} scan:")
    for key, rate in epoch_rates.items():
        per_epoch = fold / rate
        print(f"  {key:26s}: {per_epoch:8.0f} s/epoch, {per_epoch * 50 / 3600:6.1f} h for 50 "
              f"epochs (one fold); one pass over all {all_windows:,.0f} windows: "
              f"{all_windows / rate / 3600:6.2f} h")


if __name__ == "__main__":
    main()
