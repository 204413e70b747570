"""XC parser throughput: xmc.data.read_xc against scikit-learn's svmlight loader
and the plain-Python reference parser.

Generates (or reuses) a random XC file of at least --min-mb megabytes outside
the repository, times read_xc (median of --repeats runs), then the baselines,
prints a markdown line and writes benchmarks/results/parser_speed.json.

    python benchmarks/parser_speed.py [--path /tmp/xmc-bench/parser_speed_xc.txt]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xmc.data import read_xc, write_xc  # noqa: E402
from xmc.data._reference import reference_parse_xc  # noqa: E402

DEFAULT_PATH = Path("/tmp/xmc-bench/parser_speed_xc.txt")


def generate(path: Path, min_mb: float, seed: int = 0) -> None:
    """Random documents: ~100 features of 1M with float32 values, ~5 labels of 100k.
    About 1.8 KB per document, so the row count follows from the target size."""
    rng = np.random.default_rng(seed)
    n_docs = int(min_mb * 1e6 / 1700) + 1
    D, L = 1_000_000, 100_000
    f_per = rng.poisson(100, n_docs)
    l_per = rng.poisson(5, n_docs)
    fp = np.concatenate([[0], np.cumsum(f_per)])
    lp = np.concatenate([[0], np.cumsum(l_per)])
    X = sp.csr_matrix((rng.random(fp[-1], dtype=np.float32) + np.float32(1e-3),
                       rng.integers(0, D, fp[-1], dtype=np.int32), fp), shape=(n_docs, D))
    Y = sp.csr_matrix((np.ones(lp[-1], np.float32), rng.integers(0, L, lp[-1], dtype=np.int32), lp),
                      shape=(n_docs, L))
    X.sum_duplicates()
    Y.sum_duplicates()
    Y.data[:] = 1
    t = time.perf_counter()
    write_xc(path, X, Y)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, {n_docs} docs) in {time.perf_counter() - t:.1f} s",
          flush=True)


def median_time(fn, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", type=Path, default=DEFAULT_PATH, help="XC file to reuse or create")
    ap.add_argument("--min-mb", type=float, default=200.0, help="regenerate when the file is smaller")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-mb", type=float, default=8.0, help="prefix the Python reference parses")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parser_speed.json")
    args = ap.parse_args()

    if not args.path.is_file() or args.path.stat().st_size < args.min_mb * 1e6:
        t = time.perf_counter()
        generate(args.path, args.min_mb * 1.08)
        write_s = time.perf_counter() - t
    else:
        write_s = None
    size_mb = args.path.stat().st_size / 1e6
    load_before = os.getloadavg()[0]

    read_xc(args.path)  # warm the page cache so every timing reads from memory
    t_all = median_time(lambda: read_xc(args.path), args.repeats)
    t_one = median_time(lambda: read_xc(args.path, threads=1), args.repeats)
    # CPU seconds of the one-thread run: the figure least disturbed by other load on the machine.
    cpu_one = median_time(lambda: read_xc(args.path, threads=1), args.repeats, clock=time.process_time)
    data = read_xc(args.path)
    result = {
        "file": str(args.path), "file_mb": round(size_mb, 1), "docs": data.n_docs,
        "features_nnz": int(data.X.nnz), "labels_nnz": int(data.Y.nnz),
        "read_xc_s": round(t_all, 3), "read_xc_mb_s": round(size_mb / t_all, 1),
        "read_xc_1thread_s": round(t_one, 3), "read_xc_1thread_mb_s": round(size_mb / t_one, 1),
        "read_xc_1thread_cpu_s": round(cpu_one, 3), "read_xc_mb_per_cpu_s": round(size_mb / cpu_one, 1),
        "threads": __import__("xmc._core", fromlist=["max_threads"]).max_threads(),
        "repeats": args.repeats, "generate_and_write_s": None if write_s is None else round(write_s, 1),
    }
    del data

    with open(args.path, "rb") as f:
        prefix = f.read(int(args.reference_mb * 1e6))
    prefix = prefix[:prefix.rfind(b"\n") + 1]
    n_lines = prefix.count(b"\n") - 1
    head = f"{n_lines} ".encode() + prefix[prefix.find(b" ") + 1:]  # header's N fixed for the prefix
    t = time.perf_counter()
    reference_parse_xc(head)
    ref_s = time.perf_counter() - t
    result["python_reference_mb"] = round(len(head) / 1e6, 1)
    result["python_reference_mb_s"] = round(len(head) / 1e6 / ref_s, 2)

    if not args.skip_sklearn:
        from sklearn.datasets import load_svmlight_file

        t, c = time.perf_counter(), time.process_time()
        # offset=1 makes sklearn skip the rest of the header line.
        load_svmlight_file(str(args.path), multilabel=True, offset=1, n_features=1_000_000, dtype=np.float32)
        sk_s, sk_cpu = time.perf_counter() - t, time.process_time() - c
        result["sklearn_svmlight_s"] = round(sk_s, 2)
        result["sklearn_svmlight_mb_s"] = round(size_mb / sk_s, 1)
        result["sklearn_svmlight_mb_per_cpu_s"] = round(size_mb / sk_cpu, 1)

    result["loadavg_1min_before"] = round(load_before, 2)
    result["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    result["cpus"] = os.cpu_count()
    result["machine"] = platform.machine()
    line = (f"| read_xc {size_mb:.0f} MB | {result['read_xc_mb_s']} MB/s all threads "
            f"({result['threads']}) | {result['read_xc_1thread_mb_s']} MB/s 1 thread "
            f"({result['read_xc_mb_per_cpu_s']} MB per CPU-s) | "
            f"python ref {result['python_reference_mb_s']} MB/s")
    if "sklearn_svmlight_mb_s" in result:
        line += (f" | sklearn svmlight {result['sklearn_svmlight_mb_s']} MB/s "
                 f"({result['sklearn_svmlight_mb_per_cpu_s']} MB per CPU-s)")
    print(line + f" | load {load_before:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
