"""Label-wise attention backends: forward+backward time and peak memory.

Batch 32, 500 tokens (documents of 250-500 real tokens, the rest padding), dim 256,
4,000 labels; once with 200 candidate labels per document, once with all labels.
Every (case, backend) runs in a fresh process that builds the inputs (and the output
gradient), runs the backend once on tiny inputs, records its memory baseline, then runs one warm-up and --repeats timed
forward+backward passes. Peak memory is the resident-set high-water mark (VmHWM) minus
the baseline on the CPU, torch.cuda.max_memory_allocated minus the baseline on a GPU.
Writes benchmarks/results/label_attention.{md,json} (with --quick: label_attention_quick.*; --results: elsewhere).

  python benchmarks/label_attention.py --threads 2 --repeats 3
  python benchmarks/label_attention.py --quick          # smoke run, small sizes
  python benchmarks/label_attention.py --device cuda    # reference, chunked and cuda on the GPU
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

FULL = dict(batch=32, tokens=500, dim=256, labels=4000, candidates=200)
QUICK = dict(batch=4, tokens=64, dim=32, labels=300, candidates=20)


def worker(args: argparse.Namespace) -> None:
    """One (case, backend) measurement; prints a JSON line."""
    import torch

    from xmc.ops import label_attention
    from xmc.utils.resources import peak_rss_bytes

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    B, T, D, L = sizes["batch"], sizes["tokens"], sizes["dim"], sizes["labels"]
    C = sizes["candidates"] if args.case == "candidates" else L
    g = torch.Generator().manual_seed(0)
    H = (torch.randn(B, T, D, generator=g) / D**0.5).to(device).requires_grad_()
    Q = torch.randn(L, D, generator=g).to(device).requires_grad_()
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(device)
    cand = torch.randint(0, L, (B, C), generator=g).to(device) if args.case == "candidates" else None
    grad_out = torch.randn(B, C, D, generator=g).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    # One tiny call first, so one-time costs (thread pools, BLAS buffers, CUDA context) fall
    # before the baseline and the peak measures what the full-size passes add.
    h = H[:2, :8].detach().clone().requires_grad_()
    label_attention(h, mask[:2, :8], Q[:16], None, backend=args.backend).sum().backward()
    del h
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = peak_rss_bytes()
    times: List[float] = []
    for rep in range(args.repeats + 1):  # the first is the warm-up
        H.grad = None
        Q.grad = None
        sync()
        start = time.perf_counter()
        out = label_attention(H, mask, Q, cand, backend=args.backend)
        out.backward(grad_out)
        sync()
        if rep:
            times.append(time.perf_counter() - start)
        del out
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda" else peak_rss_bytes()) - baseline
    print(json.dumps({"times_s": times, "peak_bytes": peak}))


def measure(case: str, backend: str, args: argparse.Namespace) -> Dict:
    cmd = [sys.executable, __file__, "--worker", "--case", case, "--backend", backend, "--device", args.device,
           "--threads", str(args.threads), "--repeats", str(args.repeats)] + (["--quick"] if args.quick else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env.pop("XMC_OPS_REFERENCE", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{case}/{backend} failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["median_s"] = statistics.median(res["times_s"])
    return res


def fmt_mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--backends", default=None, help="comma list (default: reference,chunked,cpu or reference,chunked,cuda)")
    ap.add_argument("--cases", default="candidates,all")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder for the .md and .json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    default = "reference,chunked,cuda" if args.device == "cuda" else "reference,chunked,cpu"
    backends = (args.backends or default).split(",")
    sizes = QUICK if args.quick else FULL
    results: Dict[str, Dict[str, Dict]] = {}
    for case in args.cases.split(","):
        results[case] = {}
        for backend in backends:
            t0 = time.perf_counter()
            results[case][backend] = measure(case, backend, args)
            r = results[case][backend]
            print(f"{case:10s} {backend:9s} fwd+bwd {r['median_s']:.3f} s  peak {fmt_mib(r['peak_bytes'])}"
                  f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    for case in results:
        ref = results[case].get("reference")
        for r in results[case].values():
            if ref:
                r["time_vs_reference"] = r["median_s"] / ref["median_s"]
                r["memory_vs_reference"] = r["peak_bytes"] / max(ref["peak_bytes"], 1)

    meta = {
        "sizes": sizes, "device": args.device, "threads": args.threads, "repeats": args.repeats,
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
    }
    stem = "label_attention_quick" if args.quick else "label_attention"
    if args.device == "cuda":
        stem += "_cuda"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [
        f"# Label-wise attention, forward+backward ({args.device}, {args.threads} threads)",
        "",
        f"B={sizes['batch']}, T={sizes['tokens']} (250-500 real tokens per document when full size), "
        f"D={sizes['dim']}, L={sizes['labels']}; `candidates`: {sizes['candidates']} per document, "
        "`all`: every label. Median of "
        f"{args.repeats} runs after a warm-up, each backend in its own process; peak memory above the inputs. "
        f"Load average at the end: {', '.join(f'{x:.1f}' for x in meta['load_average_at_end'])} on {meta['cpus']} cores.",
        "",
        "| case | backend | fwd+bwd (s) | time / reference | peak memory | memory / reference |",
        "|---|---|---|---|---|---|",
    ]
    for case, per in results.items():
        for backend, r in per.items():
            lines.append(f"| {case} | {backend} | {r['median_s']:.3f} | {r.get('time_vs_reference', float('nan')):.2f} | "
                         f"{fmt_mib(r['peak_bytes'])} | {r.get('memory_vs_reference', float('nan')):.2f} |")
    (args.results / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.results / stem}.{{md,json}}")


if __name__ == "__main__":
    main()
