"""Training throughput of the slow-fast Mamba with each selective scan, and LOSO
time estimates.

Prints, in one run (so that the ratios hold on a shared machine):
- the fused CPU scan's compile/load time (numba; cached after the first run);
- the selective scan alone (fwd+bwd) at the paper model's two widths: the fused
  CPU scan, mepkg's loop, the reference loop (and mambapy's pscan if installed);
- CPU training windows/s (forward + backward + Adam step, batch 32, k 30) of the
  paper's model and of the synthetic config's CPU model, for each --threads
  value, with the fused scan (+ the fused conv+SiLU), the loop and the reference
  loop (+ torch's conv) swapped into ``mepkg.mamba``, all with training's
  optimizer, and the loop with torch's per-tensor Adam (one set of small ops
  per parameter tensor: the slowest step); steps of the four alternate,
  warm-up excluded, median of --steps;
- CUDA training windows/s and peak GPU memory, paper model, batch 32 and 256 x
  k 30 and 50: the pure-PyTorch loop, the fused CUDA scan (whatever
  ``mepkg.mamba.selective_scan`` dispatches to on CUDA when it is not the
  loop), each eager and replayed as a CUDA graph (``mepkg.train_step``, as
  training runs), and mamba_ssm's kernel when it imports; "no CUDA device"
  where there is none;
- inference windows/s on CPU (prediction of held-out videos, ``mepkg spot``);
- seconds per epoch for a SAMM-LV-sized fold (training windows = windows with
  an ME frame of the other subjects + background ratio x as many), and whole
  LOSO estimates on the GPU: SAMM-LV-sized (29 folds x 50 epochs, k 30, batch
  32) and CAS(ME)^3-sized (94 folds x 50 epochs x ~11,000 windows, k 50,
  batch 256), one fold at a time.

Threads: torch.set_num_threads(n); the fused scan splits the batch over the
same number of threads (it uses no numba threading layer).
torch's OpenMP workers wait between ops as mepkg's jobs make them
(``mepkg.jobs.OPENMP_WAIT``) unless the environment says otherwise.

    python benchmarks/train.py [--threads 1 2] [--steps 3] [--no-scan] [--cuda-only]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time

from mepkg.jobs import set_openmp_wait

set_openmp_wait()   # as jobs do, before torch loads (a value in the environment wins)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mepkg import mamba as mamba_mod
from mepkg.mamba import (conv1d_silu, scan_backend, selective_scan_loop,
                         selective_scan_reference)
from mepkg.model import SlowFastMamba, count_parameters
from mepkg.train import fold_loss, TrainConfig
from mepkg.train_step import WARMUP_STEPS, TrainStep, make_optimizer

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
    loops with the torch conv (so that "loop" is the model without mepkg's fused kernels)."""
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
    torch's default CPU Adam, one set of small ops per parameter tensor."""
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


BEFORE = "loop+pt-Adam"    # the slowest step: loop scan, torch conv, torch's per-tensor Adam


def bench_training(device: torch.device, threads: int, batch: int, k: int, steps: int,
                   model_args: dict, scans: dict | None = None, budget_s: float = 60,
                   per_tensor_adam: bool = False) -> dict:
    """Training windows/s per scan (median of ``steps`` timed steps after one warm-up,
    fewer, but at least one, once a round of all scans has taken ``budget_s`` in all;
    the scans' steps alternate so that load on a shared machine hits them alike).
    Every scan trains its own copy of the model with training's optimizer;
    ``per_tensor_adam`` adds the BEFORE column (the loop scan with torch's per-tensor Adam)."""
    torch.set_num_threads(threads)
    scans = dict(scans or {"fused": mamba_mod.selective_scan})
    settings = {name: (name, scan, "training") for name, scan in scans.items()}
    if per_tensor_adam:
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


def cuda_variants() -> dict:
    """CUDA scans to time, by name: (scan, CUDA graph?). The fused scan is whatever
    ``mepkg.mamba.selective_scan`` dispatches to on CUDA, when that is not the loop."""
    dispatch = mamba_mod.selective_scan
    variants = {"loop": (selective_scan_loop, False), "loop + graph": (selective_scan_loop, True)}
    backend = scan_backend("cuda")
    if backend == "mamba_ssm CUDA kernel":
        variants["mamba_ssm"] = (dispatch, False)
        variants["mamba_ssm + graph"] = (dispatch, True)
    elif backend != "pure-PyTorch sequential scan":
        variants["fused"] = (dispatch, False)
        variants["fused + graph"] = (dispatch, True)
    else:
        print(f"  (no fused CUDA scan in this mepkg: selective_scan on CUDA is the {backend})")
    return variants


def bench_cuda_step(batch: int, k: int, model_args: dict, scan, graph: bool,
                    steps: int) -> tuple[float, float]:
    """Training windows/s and peak GPU memory (GiB) of training's step on CUDA: a fresh
    model, training's optimizer and one-cycle schedule, random batches of one shape,
    eager or replayed as a CUDA graph (mepkg.train_step.TrainStep)."""
    device = torch.device("cuda")
    original = mamba_mod.selective_scan
    mamba_mod.selective_scan = scan
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        model = SlowFastMamba(**model_args).to(device).train()
        opt = make_optimizer(model, 3e-4, capturable=graph)
        warm = WARMUP_STEPS + 2
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-4,
                                                       total_steps=warm + steps + 1)
        weights, config = torch.ones(5, device=device), TrainConfig()
        step = TrainStep(model, opt, schedule,
                         lambda s, l, st, ct: fold_loss(s, l, st, ct, weights, config),
                         batch, "graph" if graph else "eager")
        x = torch.randn(batch, 36, k)
        target = (torch.rand(batch, k) > 0.7).float()
        cls = torch.randint(0, 5, (batch, k))
        for _ in range(warm):                       # warm-up (and capture)
            step(x, target, cls)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, target, cls)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - t0) / steps
        if graph and step.mode != "graph":
            print(f"  (capture failed: batch {batch}, k {k} ran eagerly)")
        peak = torch.cuda.max_memory_allocated() / 2**30
        step.release()
        del step, opt, model, schedule
        return batch / seconds, peak
    finally:
        mamba_mod.selective_scan = original


def bench_cuda(model_args: dict, steps: int) -> dict:
    """CUDA rows: {(variant, batch, k): windows/s}; {} (and 'no CUDA device') without one."""
    if not torch.cuda.is_available():
        print("training CUDA: no CUDA device")
        return {}
    print(f"training windows/s on CUDA ({torch.cuda.get_device_name()}, torch "
          f"{torch.__version__}), paper-sized model {model_args or '(the paper)'}, fwd+bwd+Adam "
          f"with training's optimizer and schedule; peak GPU memory:")
    rates = {}
    variants = cuda_variants()
    for k in (30, 50):
        for batch in (32, 256):
            for name, (scan, graph) in variants.items():
                try:
                    rate, peak = bench_cuda_step(batch, k, model_args, scan, graph, steps)
                except torch.cuda.OutOfMemoryError:
                    print(f"  {name:18s} batch {batch:4d} k {k}: out of GPU memory")
                    torch.cuda.empty_cache()
                    continue
                rates[(name, batch, k)] = rate
                print(f"  {name:18s} batch {batch:4d} k {k}: {rate:9.1f} windows/s, "
                      f"{batch / rate * 1e3:7.1f} ms/step, peak {peak:6.2f} GiB")
    return rates


def loso_estimates(rates: dict, samm_fold: float) -> None:
    """Whole-LOSO hours on the GPU, one fold at a time, from the CUDA rows."""
    sizes = {"SAMM-LV-sized (29 folds x 50 epochs x %.0f windows, k 30, batch 32)" % samm_fold:
             (29 * 50 * samm_fold, 32, 30),
             "CAS(ME)^3-sized (94 folds x 50 epochs x 11,000 windows, k 50, batch 256)":
             (94 * 50 * 11_000, 256, 50)}
    print("LOSO on the GPU, one fold at a time (training only; several folds per GPU "
          "add throughput: compute.train_jobs_per_gpu):")
    for label, (windows, batch, k) in sizes.items():
        cells = [f"{name} {windows / rate / 3600:.2f} h" for (name, b, kk), rate in rates.items()
                 if (b, kk) == (batch, k)]
        print(f"  {label}: " + ("; ".join(cells) if cells else "no CUDA device"))


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
    p.add_argument("--cuda-only", action="store_true", help="only the CUDA rows and estimates")
    p.add_argument("--cuda-steps", type=int, default=20, help="timed CUDA steps per row")
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
    fold = samm_fold_windows(args.n_me, args.me_len, args.k, args.ratio, args.subjects)
    if args.cuda_only:
        loso_estimates(bench_cuda(args.model, args.cuda_steps), fold)
        return

    print(f"fused CPU scan: {scan_backend('cpu')}; first call (compile or cache load) "
          f"{fused_compile_seconds():.1f} s; CPU: {torch.backends.cpu.get_cpu_capability()}, "
          f"torch {torch.__version__}")
    if not args.no_scan:
        print(f"selective scan alone, CPU, threads {args.threads[0]}:")
        bench_scans(args.threads[0], args.scan_repeats)

    scans = cpu_scans()
    models = {"paper model": args.model, "CPU model": CPU_MODEL}
    print(f"training windows/s, CPU, batch {args.batch}, k {args.k} (fwd+bwd+Adam, median; "
          f"'{BEFORE}': the loop with torch's per-tensor Adam):")
    columns = list(scans) + [BEFORE]
    header = "".join(f"{name:>13s}" for name in columns)
    print(f"  {'model':12s} {'parameters':>10s} {'threads':>7s}{header}"
          + ("   fused/loop fused/ref fused/slowest" if "fused" in scans else ""))
    rates = {}
    for label, model_args in models.items():
        n_params = count_parameters(SlowFastMamba(**model_args))
        steps = args.steps * (1 if label == "paper model" else 4)
        for threads in args.threads:
            r = bench_training(torch.device("cpu"), threads, args.batch, args.k, steps,
                               model_args, scans, args.budget, per_tensor_adam=True)
            rates[(label, threads)] = r
            cells = "".join(f"{r[name]:13.2f}" for name in columns)
            ratio = (f"   {r['fused'] / r['loop']:9.1f}x {r['fused'] / r['reference']:8.1f}x "
                     f"{r['fused'] / r[BEFORE]:11.1f}x" if "fused" in r else "")
            print(f"  {label:12s} {n_params:10,d} {threads:7d}{cells}{ratio}")
    for label, model_args in models.items():
        rate = bench_inference(args.threads[0], args.k, model_args)
        print(f"inference CPU threads={args.threads[0]} {label}: {rate:.1f} windows/s "
              f"(batch 256, k {args.k}, {scan_backend('cpu')})")
    epoch_rates = {f"CPU threads={t}": rates[("paper model", t)][next(iter(scans))]
                   for t in args.threads}
    all_windows = args.sampled_frames / (args.k / 2) - 79
    steps = math.ceil(fold / args.batch)
    print(f"SAMM-LV-sized fold: ~{all_windows:,.0f} windows in all videos; training windows per "
          f"fold ~{fold:,.0f} ({args.n_me} MEs x {(args.me_len + args.k - 1) / (args.k / 2):.1f} "
          f"windows each x {args.subjects - 1}/{args.subjects} subjects x (1 + {args.ratio})), "
          f"{steps} steps/epoch")
    print(f"paper model, CPU, {next(iter(scans))} scan:")
    for key, rate in epoch_rates.items():
        per_epoch = fold / rate
        print(f"  {key:26s}: {per_epoch:8.0f} s/epoch, {per_epoch * 50 / 3600:6.1f} h for 50 "
              f"epochs (one fold); one pass over all {all_windows:,.0f} windows: "
              f"{all_windows / rate / 3600:6.2f} h")
    loso_estimates(bench_cuda(args.model, args.cuda_steps), fold)


if __name__ == "__main__":
    main()
