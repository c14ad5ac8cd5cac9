"""Training throughput of the slow-fast Mamba, and a seconds-per-epoch estimate.

Prints
- the selective scan alone (fwd+bwd) at the model's two widths: mepkg's loop,
  the reference loop, and mambapy's parallel pscan when ``mambapy`` imports;
- training windows/s (forward + backward + Adam step) of the paper-size model
  on CPU at batch 32, k 30, for each --threads value, and on CUDA when present
  (mamba_ssm kernels if importable, else the pure-PyTorch scan);
- inference windows/s on CPU (prediction of held-out videos, ``mepkg spot``);
- seconds per epoch for a SAMM-LV-sized fold: training windows = windows with
  an ME frame (other subjects) + background ratio x as many.

    python benchmarks/train.py [--threads 1 2] [--batches 2] [--no-scan]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time

import torch
import torch.nn.functional as F

from mepkg.mamba import scan_backend, selective_scan, selective_scan_reference
from mepkg.model import SlowFastMamba, count_parameters


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
    scans = {"mepkg selective_scan": selective_scan, "reference loop": selective_scan_reference}
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


def bench_training(device: torch.device, threads: int, batch: int, k: int, batches: int,
                   model_args: dict) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SlowFastMamba(**model_args).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
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
    seconds = time_it(step, batches)
    return batch / seconds


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
    p.add_argument("--batches", type=int, default=2, help="timed training steps per setting")
    p.add_argument("--scan-repeats", type=int, default=3)
    p.add_argument("--no-scan", action="store_true")
    p.add_argument("--model", type=json.loads, default={},
                   help='SlowFastMamba arguments as JSON (default: the paper\'s), e.g. the '
                        'synthetic config\'s \'{"d_model": 32, "depth": 2, "d_state": 16}\'')
    # SAMM-LV fold size (SPEC 1): 79 ME videos, 29 subjects, ~215k sampled frames at frame_skip 7
    p.add_argument("--n-me", type=int, default=159, help="MEs in the fold's dataset")
    p.add_argument("--me-len", type=float, default=10.0, help="positive sampled frames per ME")
    p.add_argument("--sampled-frames", type=int, default=215_000)
    p.add_argument("--subjects", type=int, default=29)
    p.add_argument("--ratio", type=float, default=0.5)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    print(f"SlowFastMamba({args.model or 'paper'}) parameters: "
          f"{count_parameters(SlowFastMamba(**args.model)):,}")
    if not args.no_scan:
        print(f"selective scan, CPU, threads {args.threads[0]}:")
        bench_scans(args.threads[0], args.scan_repeats)

    rates = {}
    for threads in args.threads:
        rate = bench_training(torch.device("cpu"), threads, args.batch, args.k, args.batches,
                              args.model)
        rates[threads] = rate
        print(f"training CPU threads={threads} ({scan_backend('cpu')}): batch {args.batch}, "
              f"k {args.k}: {rate:.2f} windows/s (fwd+bwd+Adam)")
    rate = bench_inference(args.threads[0], args.k, args.model)
    print(f"inference CPU threads={args.threads[0]}: {rate:.1f} windows/s (batch 256, k {args.k})")
    if torch.cuda.is_available():
        rate = bench_training(torch.device("cuda"), 1, args.batch, args.k, max(args.batches, 10),
                              args.model)
        rates["cuda"] = rate
        print(f"training CUDA ({scan_backend('cuda')}): {rate:.1f} windows/s")

    all_windows = args.sampled_frames / (args.k / 2) - 79
    fold = samm_fold_windows(args.n_me, args.me_len, args.k, args.ratio, args.subjects)
    steps = math.ceil(fold / args.batch)
    print(f"SAMM-LV-sized fold: ~{all_windows:,.0f} windows in all videos; training windows per "
          f"fold ~{fold:,.0f} ({args.n_me} MEs x {(args.me_len + args.k - 1) / (args.k / 2):.1f} "
          f"windows each x {args.subjects - 1}/{args.subjects} subjects x (1 + {args.ratio})), "
          f"{steps} steps/epoch")
    for key, rate in rates.items():
        per_epoch = fold / rate
        print(f"  {'CPU threads=' + str(key) if key != 'cuda' else 'CUDA':14s}: "
              f"{per_epoch:8.0f} s/epoch, {per_epoch * 50 / 3600:6.1f} h for 50 epochs "
              f"(one fold); one pass over all {all_windows:,.0f} windows: "
              f"{all_windows / rate / 3600:6.2f} h")


if __name__ == "__main__":
    main()
