"""How cost grows with the label count: xmc's linear PLT and the peers on generated corpora.

For each label count (default 10^4, 10^5, 10^6, 3 x 10^6) a corpus of
``xmc.datasets.synthetic`` is written once as XC files (documents and features grow
with the labels: see ``corpus_size``). Every system then runs in its own process with
the runners of ``compare_linear.py`` (same files, same threads, same time limit):
tree build (xmc: timed apart), training, prediction throughput, peak memory, P@1/P@5.
A system that fails or passes ``--timeout`` at one size is not run at larger sizes.

Writes ``benchmarks/results/scale.{json,md}`` and ``scale.png`` (time and memory
against labels, log-log; needs matplotlib) and fits, between 10^5 and the largest size,
the log-log slope of xmc's tree-build time and prediction time per document, beside the
slope L log L would have over the same range.

    python benchmarks/scale.py --threads 2                       # every size, every system
    python benchmarks/scale.py --sizes 10000,100000 --systems xmc,napkinxc --repeats 3
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from statistics import median
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import common  # noqa: E402
import compare_linear  # noqa: E402  (its runners and its one evaluator)

SYSTEMS = ("xmc", "pecos", "napkinxc", "omikuji")
DEFAULT_SIZES = "10000,100000,1000000,3000000"


def corpus_size(n_labels: int) -> Dict[str, int]:
    """Documents and features for a label count: one training document per label (at least 20,000;
    4 labels a document on average), 10,000 test documents, features growing as the square root."""
    return {"n_train": max(20_000, n_labels), "n_test": 10_000,
            "n_features": max(50_000, int(100 * math.sqrt(n_labels)))}


def corpus_files(n_labels: int, args: argparse.Namespace) -> Tuple[Path, Path, Dict[str, int]]:
    size = corpus_size(n_labels)
    folder = Path(args.cache) / f"scale-L{n_labels}-s{args.seed}"
    train, test = folder / "train.txt", folder / "test.txt"
    if not (train.is_file() and test.is_file()):
        print(f"[scale] generating {n_labels:,} labels, {size['n_train']:,} documents -> {folder}", flush=True)
        # A separate process, so the generator's memory is gone before the systems run.
        subprocess.run([args.xmc_python, "-m", "xmc", "generate", "--out", str(folder), "--labels", str(n_labels),
                        "--train-docs", str(size["n_train"]), "--test-docs", str(size["n_test"]),
                        "--features", str(size["n_features"]), "--seed", str(args.seed)],
                       check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return train, test, size


def machine_description() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores"


def loglog_slope(xs: List[float], ys: List[float]) -> Optional[float]:
    """Least-squares slope of log y against log x (None with fewer than two points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def reference_slopes(xs: List[float], leaf: int = 100) -> Dict[str, float]:
    """Log-log slopes, fitted at the same label counts as the measurements, of the growth laws they
    are held to: L log L (the bound), and L log2(L / leaf), the labels times the depth of a binary
    k-means tree with at most ``leaf`` labels a leaf (what the tree build does, to show the gap)."""
    return {"L_log_L": loglog_slope(xs, [x * math.log(x) for x in xs]),
            "L_depth": loglog_slope(xs, [x * math.log2(x / leaf) for x in xs])}


def run_size(n_labels: int, systems: List[str], args: argparse.Namespace) -> dict:
    train, test, size = corpus_files(n_labels, args)
    _, Y_train = common.read_xc(str(train))
    _, Y_test = common.read_xc(str(test))
    inv_prop = compare_linear.xmc_metrics.inv_propensity(Y_train, A=compare_linear.PROP_A, B=compare_linear.PROP_B)
    del Y_train
    entry = {"n_labels": n_labels, **size, "systems": {}, "failed": [], "why": {}}
    for system in systems:
        runs = []
        for rep in range(args.repeats):
            print(f"[scale] L={n_labels:,} {system} run {rep + 1}/{args.repeats}", flush=True)
            out = Path(args.cache) / "runs" / f"scale-L{n_labels}" / system / str(rep)
            r, why = compare_linear.run_one(system, train, test, out, args)
            if r is None:
                entry["why"][system] = why
                break
            r["tree_seconds"] = r.get("settings", {}).get("tree_seconds")
            runs.append(r)
        if len(runs) < args.repeats:
            entry["failed"].append(system)
            continue
        summary = compare_linear.summarize(runs, Y_test, inv_prop)
        med = summary["median"]
        if system == "xmc":
            med["tree_seconds"] = float(median(r["tree_seconds"] for r in summary["runs"]))
        entry["systems"][system] = {"median": med, "runs": summary["runs"], "load": compare_linear._load()}
        print(f"[scale]   {system}: train {med['train_seconds']:.1f} s, {med['docs_per_second']:.0f} docs/s, "
              f"peak {med['peak_rss_bytes'] / 2**30:.2f} GiB, P@1 {med['P@1']:.2f}", flush=True)
    return entry


def slopes(sizes: Dict[int, dict], lo: int = 100_000) -> dict:
    xs, tree, per_doc = [], [], []
    for n, entry in sorted(sizes.items()):
        m = entry["systems"].get("xmc", {}).get("median")
        if n >= lo and m:
            xs.append(n)
            tree.append(m["tree_seconds"])
            per_doc.append(1.0 / m["docs_per_second"])
    if len(xs) < 2:
        return {}
    return {"from": xs[0], "to": xs[-1], "tree_build": loglog_slope(xs, tree),
            "predict_per_doc": loglog_slope(xs, per_doc), **reference_slopes(xs)}


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = ["# Scale: cost against the number of labels", "",
             f"{meta['machine']}; written {meta['date']} (the limits, threads and repeats of each size are "
             "listed under the table). Generated corpora "
             "(xmc.datasets.synthetic): one training document per label (at least 20,000), 10,000 test "
             "documents. Times are in-process (reading not timed) for every system alike.", "",
             "| labels | system | tree s | train s | predict docs/s | peak GiB | P@1 | P@5 | train / xmc | "
             "docs/s / xmc | peak / xmc |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, entry in sorted(report["sizes"].items(), key=lambda kv: int(kv[0])):
        x = entry["systems"].get("xmc", {}).get("median")
        for system, v in entry["systems"].items():
            m = v["median"]
            rel = ("", "", "") if not x or system == "xmc" else (
                f"{m['train_seconds'] / x['train_seconds']:.2f}", f"{m['docs_per_second'] / x['docs_per_second']:.2f}",
                f"{m['peak_rss_bytes'] / x['peak_rss_bytes']:.2f}")
            tree = f"{m['tree_seconds']:.1f}" if m.get("tree_seconds") is not None else "(in train)"
            lines.append(f"| {int(n):,} | {system} | {tree} | {m['train_seconds']:.1f} | {m['docs_per_second']:.0f} | "
                         f"{m['peak_rss_bytes'] / 2**30:.2f} | {m['P@1']:.2f} | {m['P@5']:.2f} | "
                         f"{rel[0]} | {rel[1]} | {rel[2]} |")
        for system in entry["failed"]:
            why = entry.get("why", {}).get(system, "failed or over a limit")
            lines.append(f"| {int(n):,} | {system} | {why} | | | | | | | | |")
        for system in SYSTEMS:
            if system in entry["systems"] or system in entry["failed"]:
                continue
            if stopped_before(report["sizes"], system, int(n)):
                lines.append(f"| {int(n):,} | {system} | not run: stopped at a smaller size | | | | | | | | |")
            elif system in entry.get("not_run", {}):
                lines.append(f"| {int(n):,} | {system} | not run: {entry['not_run'][system]} | | | | | | | | |")
    lines += ["", "Each size: wall-time limit and resident-memory limit per system run (a run past either "
              "is stopped, and that system is not run at larger sizes), threads, repeats (medians), xmc commit."]
    for n, entry in sorted(report["sizes"].items(), key=lambda kv: int(kv[0])):
        groups: Dict[str, List[str]] = {}
        for system, record in entry["systems"].items():
            lim = record.get("limits") or entry.get("limits")  # the size's own, in reports before per-system
            if lim:
                text = (f"{lim['timeout_s']} s, {lim['max_rss_gib']} GiB, {lim['threads']} threads, "
                        f"{lim['repeats']} repeats, xmc {lim['xmc_commit']}")
                groups.setdefault(text, []).append(system)
        if groups:
            lines.append(f"- {int(n):,} labels: " + "; ".join(f"{', '.join(g)}: {t}" for t, g in groups.items()))
    s = report.get("slopes")
    if s:
        lines += ["", f"Fitted log-log slopes of xmc between {s['from']:,} and {s['to']:,} labels (least squares over "
                  f"the sizes measured): tree build {s['tree_build']:.3f}, prediction time per document "
                  f"{s['predict_per_doc']:.3f}. The same fit of L log L: {s['L_log_L']:.3f}; of L log2(L/100), the "
                  f"labels times the depth of the binary k-means tree: {s.get('L_depth', float('nan')):.3f}."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[scale] matplotlib is not installed: no plot (pip install matplotlib)", flush=True)
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = (("train_seconds", "training time (s)"), ("seconds_per_doc", "prediction time per document (s)"),
              ("peak_gib", "peak memory (GiB)"))
    for system in SYSTEMS:
        pts = sorted((int(n), e["systems"][system]["median"]) for n, e in report["sizes"].items()
                     if system in e["systems"])
        if not pts:
            continue
        xs = [n for n, _ in pts]
        values = {"train_seconds": [m["train_seconds"] for _, m in pts],
                  "seconds_per_doc": [1.0 / m["docs_per_second"] for _, m in pts],
                  "peak_gib": [m["peak_rss_bytes"] / 2**30 for _, m in pts]}
        for ax, (key, _) in zip(axes, panels):
            ax.plot(xs, values[key], marker="o", label=system)
    for ax, (_, title) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("labels")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    """Options scale_cli.py shares with this script, so both find the same generated corpora."""
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--xmc-python", default=sys.executable)
    p.add_argument("--cache", default=str(HERE / ".cache"))
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--seed", type=int, default=0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="label counts, comma-separated")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    add_corpus_args(p)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--omikuji-trees", type=int, default=3)
    p.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per system run")
    p.add_argument("--max-rss-gib", type=float, default=20.0,
                   help="stop a run whose resident memory passes this (the issue's bound on a 24 GiB machine)")
    p.add_argument("--peers-python", default=common.default_peers_python())
    p.add_argument("--merge", action="store_true",
                   help="keep the sizes of an existing results/scale.json that this run does not redo")
    p.add_argument("--not-run-note", default="",
                   help="why the systems left out of --systems were not run; shown in their rows of the table")
    args = p.parse_args(argv)
    args.sizes = sorted(int(x) for x in args.sizes.split(",") if x)
    args.systems = [s for s in args.systems.split(",") if s]
    for s in args.systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s!r}; expected {', '.join(SYSTEMS)}")
    if any(s != "xmc" for s in args.systems) and not Path(args.peers_python).exists():
        p.error(f"--peers-python {args.peers_python} not found: create it with benchmarks/peers/setup_venv.sh")
    return args


def stopped_before(sizes: Dict, system: str, n: int) -> bool:
    """Whether ``system`` failed or was stopped at a label count below ``n``."""
    return any(system in e["failed"] for m, e in sizes.items() if int(m) < n)


def earlier_sizes(args: argparse.Namespace) -> Dict[int, dict]:
    """With --merge, the sizes of an existing scale.json (their systems this run does not redo are kept)."""
    path = Path(args.results) / "scale.json"
    if not (args.merge and path.is_file()):
        return {}
    return {int(n): e for n, e in json.loads(path.read_text())["sizes"].items()}


def merged(entry: dict, old: Optional[dict], ran: List[str]) -> dict:
    """``entry`` plus the systems of ``old`` (the same size, an earlier run) that this run did not run."""
    if old:
        for key in ("systems", "why", "not_run"):
            kept = {s: v for s, v in old.get(key, {}).items() if s not in ran}
            entry[key] = {**kept, **entry.get(key, {})}
        entry["failed"] = sorted(set(entry["failed"]) | {s for s in old.get("failed", []) if s not in ran})
        for s in list(entry["systems"]):  # an old record without per-system limits takes its size's
            entry["systems"][s].setdefault("limits", old.get("limits"))
    entry["systems"] = {s: entry["systems"][s] for s in SYSTEMS if s in entry["systems"]}
    return entry


def main(argv=None) -> dict:
    args = parse_args(argv)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    sizes = earlier_sizes(args)
    active = list(args.systems)
    limits = {"timeout_s": args.timeout, "max_rss_gib": args.max_rss_gib, "threads": args.threads,
              "repeats": args.repeats, "xmc_commit": compare_linear._git_commit()}
    for n in args.sizes:
        # A system that failed at a smaller size (in this run or a merged one) is not run at larger ones.
        active = [s for s in active if not stopped_before(sizes, s, n)]
        entry = run_size(n, active, args)
        for record in entry["systems"].values():
            record["limits"] = limits
        if args.not_run_note:  # systems left out of this size on purpose, said so in the table
            entry["not_run"] = {s: args.not_run_note for s in SYSTEMS if s not in args.systems
                                and not stopped_before(sizes, s, n)}
        sizes[n] = merged(entry, sizes.get(n), active)
    report = {"meta": {"date": utc_stamp(),
                       "machine": machine_description(), "threads": args.threads,
                       "repeats": args.repeats, "timeout": args.timeout, "max_rss_gib": args.max_rss_gib,
                       "xmc_commit": compare_linear._git_commit()},
              "sizes": {str(n): e for n, e in sorted(sizes.items())}, "slopes": slopes(sizes)}
    (results / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (results / "scale.md").write_text(md)
    plot(report, results / "scale.png")
    print(md)
    return report


if __name__ == "__main__":
    main()
