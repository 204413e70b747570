"""Dynamic graph propagation (xmc.ops.dynamic_graph_propagate): the fused C++ kernel ("cpu") and
the torch tiles ("chunked") against the materialised reference.

LDGN's setting from the issue: 4,000 labels, dim 256, batch 16 (Qa, Kb of width 64). Each
backend runs in a fresh process: inputs built, one tiny call (one-time costs), the
memory baseline, a warm-up, then --repeats timed forward+backward passes. Peak memory is
the resident-set high-water mark (VmHWM) above the baseline on the CPU, torch's peak allocation on a
GPU. Writes benchmarks/results/dynamic_graph.{md,json} (with --device cuda: dynamic_graph_cuda.*).

    python benchmarks/dynamic_graph.py --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def worker(args: argparse.Namespace) -> None:
    import torch

    from xmc.ops import dynamic_graph_propagate
    from xmc.utils.resources import peak_rss_bytes

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    g = torch.Generator().manual_seed(0)
    B, L, D, d = args.batch, args.labels, args.dim, args.width
    Qa = (torch.randn(B, L, d, generator=g) / d ** 0.5).to(device).requires_grad_()
    Kb = torch.randn(B, L, d, generator=g).to(device).requires_grad_()
    H = torch.randn(B, L, D, generator=g).to(device).requires_grad_()
    dO = torch.randn(B, L, D, generator=g).to(device)
    tiny = [t[:1, :8].detach().clone().requires_grad_() for t in (Qa, Kb, H)]
    dynamic_graph_propagate(*tiny, backend=args.backend).sum().backward()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated() if cuda else peak_rss_bytes()
    times = []
    for rep in range(args.repeats + 1):
        for t in (Qa, Kb, H):
            t.grad = None
        start = time.perf_counter()
        dynamic_graph_propagate(Qa, Kb, H, backend=args.backend).backward(dO)
        if cuda:
            torch.cuda.synchronize()
        if rep:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()
    print(json.dumps({"times_s": times, "peak_bytes": peak - baseline}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--labels", type=int, default=4000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=64, help="columns of Qa and Kb (the 1x1 convolutions' output)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--backends", default=None, help="comma list (default: reference,chunked,cpu; on cuda: "
                                                     "reference,chunked,cuda)")
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    results = {}
    default = "reference,chunked,cuda" if args.device == "cuda" else "reference,chunked,cpu"
    for backend in (args.backends or default).split(","):
        cmd = [sys.executable, __file__, "--worker", "--backend", backend, "--device", args.device,
               "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--labels", str(args.labels), "--dim", str(args.dim),
               "--batch", str(args.batch), "--width", str(args.width)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        env.pop("XMC_OPS_REFERENCE", None)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{backend} failed:\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["median_s"] = statistics.median(r["times_s"])
        results[backend] = r
        print(f"{backend:9s} fwd+bwd {r['median_s']:.3f} s  peak {r['peak_bytes'] / 2**20:.0f} MiB", flush=True)
    ref = results.get("reference")
    lines = [f"# Dynamic graph propagation, forward+backward ({args.device}, {args.threads} threads)", "",
             f"{args.labels:,} labels, dim {args.dim}, batch {args.batch}, Qa/Kb width {args.width}. Median of "
             f"{args.repeats} runs after a warm-up, each backend in its own process; peak memory above the inputs. "
             f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
             "| backend | fwd+bwd (s) | time / reference | peak memory | memory / reference |", "|---|---|---|---|---|"]
    for b, r in results.items():
        rel_t = f"{r['median_s'] / ref['median_s']:.2f}" if ref else ""
        rel_m = f"{r['peak_bytes'] / ref['peak_bytes']:.3f}" if ref else ""
        lines.append(f"| {b} | {r['median_s']:.3f} | {rel_t} | {r['peak_bytes'] / 2**20:.0f} MiB | {rel_m} |")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    stem = "dynamic_graph_cuda" if args.device == "cuda" else "dynamic_graph"
    (out / f"{stem}.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
