"""Helpers shared by the benchmark runners.

Imported by the peer runners under the peers' own interpreter (numpy 1.26,
xmc not installed) and by the orchestrator under xmc's (numpy 2): so only
numpy, scipy, the standard library and xmc's standard-library-only
``xmc.utils.resources`` here, never xmc's native core.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

# xmc.utils.resources is standard-library only, so the peers' venv can import it without xmc's native core.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xmc.utils.resources import peak_rss_bytes  # noqa: E402

# Thread-count variables every runner process gets, so OpenMP (xmc, PECOS,
# napkinXC's liblinear), rayon (omikuji) and BLAS all see the same budget.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


class XCFormatError(ValueError):
    """An Extreme Classification Repository file that does not parse."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")


def read_xc(path: str) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
    """Read an XC-repository file into (X float32 CSR, Y float32 CSR).

    Header ``N D L``, then one line per document: ``l1,l2 f:v f:v``; a
    document without labels starts with a space. Ids are 0-based.
    """
    with open(path, "r", encoding="utf-8") as f:
        header = f.readline().split()
        if len(header) != 3:
            raise XCFormatError(path, 1, f"expected header 'N D L', found {' '.join(header)!r}")
        n, d, n_labels = (int(v) for v in header)
        x_ptr = [0]
        x_idx: List[int] = []
        x_val: List[float] = []
        y_ptr = [0]
        y_idx: List[int] = []
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line.strip() and lineno - 1 > n:
                continue
            tokens = line.split(" ")
            labels = tokens[0]
            try:
                if labels:
                    y_idx.extend(int(l) for l in labels.split(","))
                for tok in tokens[1:]:
                    if not tok:
                        continue
                    fid, _, val = tok.partition(":")
                    x_idx.append(int(fid))
                    x_val.append(float(val) if val else 1.0)
            except ValueError as err:
                raise XCFormatError(path, lineno, f"expected 'l1,l2 f:v ...', {err}") from None
            x_ptr.append(len(x_idx))
            y_ptr.append(len(y_idx))
    if len(x_ptr) - 1 != n:
        raise XCFormatError(path, 1, f"header says {n} documents, found {len(x_ptr) - 1}")
    X = sp.csr_matrix(
        (np.asarray(x_val, dtype=np.float32), np.asarray(x_idx, dtype=np.int32), np.asarray(x_ptr, dtype=np.int64)),
        shape=(n, d),
    )
    Y = sp.csr_matrix(
        (np.ones(len(y_idx), dtype=np.float32), np.asarray(y_idx, dtype=np.int32), np.asarray(y_ptr, dtype=np.int64)),
        shape=(n, n_labels),
    )
    X.sum_duplicates()
    X.sort_indices()
    Y.sum_duplicates()
    Y.data[:] = 1.0
    Y.sort_indices()
    return X, Y


def write_xc(path: str, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
    """Write (X, Y) in XC-repository format, atomically (temp file + rename)."""
    X = sp.csr_matrix(X)
    Y = sp.csr_matrix(Y)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labels = ",".join(str(int(l)) for l in Y.indices[Y.indptr[i] : Y.indptr[i + 1]])
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{int(j)}:{float(v):.6g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi]))
            f.write(f"{labels} {feats}\n" if feats else f"{labels}\n")  # omikuji refuses a trailing space
    os.replace(tmp, path)


def l2_normalize_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    X.data *= np.repeat(scale, np.diff(X.indptr)).astype(np.float32)
    return X


def default_peers_python() -> str:
    """The peers' interpreter: $XMC_PEERS_PYTHON, else the venv benchmarks/peers/setup_venv.sh makes.
    Absolute, since runners may start in another working directory."""
    return os.path.abspath(os.environ.get("XMC_PEERS_PYTHON") or
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), ".peers-venv", "bin", "python"))


def runner_args(description: str, extra: Optional[Sequence[Tuple[str, dict]]] = None) -> argparse.Namespace:
    """The command line every runner shares (see benchmarks/README.md)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--train", required=True, help="training file, XC-repository format")
    p.add_argument("--test", required=True, help="test file, XC-repository format")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--k", type=int, default=5, help="labels predicted per document")
    p.add_argument("--beam", type=int, default=10, help="beam width at prediction")
    p.add_argument("--out", required=True, help="directory for model/, predictions.npz, result.json")
    p.add_argument("--dev", help="a validation file (XC format): also predicted, untimed, into dev_predictions.npz "
                                 "(for choosing a threshold on it)")
    for name, kwargs in extra or ():
        p.add_argument(name, **kwargs)
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return args


def fit_linear_plt(train, threads: int, seed: int):
    """xmc's linear PLT (default parameters) fitted on a TextData split: the deep benchmarks' baseline and the
    model that proposes LDGN's candidates. xmc is imported here, not above: the peers' interpreter never calls it."""
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline

    return Pipeline(PLTParams(threads=threads, seed=seed)).fit(train)


def set_thread_env(threads: int) -> None:
    """Set before the peer library is imported, so its pools start at this size."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)


def dir_bytes(path: str) -> int:
    """Bytes of every regular file under ``path`` (the model's size on disk)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if os.path.isfile(full) and not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def topk_from_rows(rows: Sequence[Sequence[Tuple[int, float]]], k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(ids int32 (n,k), scores float32 (n,k)) from per-row (label, score) lists, best first.

    Rows with fewer than k predictions are padded with id -1 and score -inf.
    """
    n = len(rows)
    ids = np.full((n, k), -1, dtype=np.int32)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    for i, row in enumerate(rows):
        row = sorted(row, key=lambda p: -p[1])[:k]
        for j, (label, score) in enumerate(row):
            ids[i, j] = label
            scores[i, j] = score
    return ids, scores


def topk_from_csr(P: sp.csr_matrix, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Same as topk_from_rows for a sparse score matrix (one row per document)."""
    P = sp.csr_matrix(P)
    rows = []
    for i in range(P.shape[0]):
        lo, hi = P.indptr[i], P.indptr[i + 1]
        rows.append(list(zip(P.indices[lo:hi].tolist(), P.data[lo:hi].tolist())))
    return topk_from_rows(rows, k)


def write_outputs(
    out: str,
    ids: np.ndarray,
    scores: np.ndarray,
    train_seconds: float,
    predict_seconds: float,
    model_dir: str,
    settings: Dict[str, object],
) -> Dict[str, object]:
    """Write DIR/predictions.npz and DIR/result.json; return the result dict."""
    n = int(ids.shape[0])
    np.savez(
        os.path.join(out, "predictions.npz"),
        ids=np.ascontiguousarray(ids, dtype=np.int32),
        scores=np.ascontiguousarray(scores, dtype=np.float32),
    )
    result = {
        "train_seconds": float(train_seconds),
        "predict_seconds": float(predict_seconds),
        "n_test": n,
        "docs_per_second": float(n / predict_seconds) if predict_seconds > 0 else float("inf"),
        "peak_rss_bytes": peak_rss_bytes(),
        "model_bytes": dir_bytes(model_dir),
        "settings": settings,
    }
    tmp = os.path.join(out, "result.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(out, "result.json"))
    return result


def runner_env(threads: int, xmc: bool, repo) -> Dict[str, str]:
    """The environment of one runner process: every thread pool at ``threads``; xmc's runners see ``repo``
    on PYTHONPATH, the peers' interpreter none of it (it must not import xmc or numpy 2)."""
    env = dict(os.environ)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    if xmc:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    else:
        env.pop("PYTHONPATH", None)
    return env


def write_dev_predictions(out: str, ids: np.ndarray, scores: np.ndarray) -> None:
    """DIR/dev_predictions.npz: the top-k of the --dev file, as predictions.npz holds the test file's."""
    np.savez(os.path.join(out, "dev_predictions.npz"), ids=np.ascontiguousarray(ids, dtype=np.int32),
             scores=np.ascontiguousarray(scores, dtype=np.float32))


def git_commit(repo) -> str:
    """The short commit of ``repo`` ("unknown" outside git)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start



def _rss_bytes(pid: int) -> int:
    """Resident memory of one process from /proc (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_bounded(cmd: List[str], log, env: Dict[str, str], timeout: float,
                max_rss_bytes: Optional[int] = None, poll_seconds: float = 0.5) -> Tuple[Optional[int], str]:
    """Run ``cmd`` with a wall-time and a resident-memory bound; (exit code, '') or (None, why it was stopped).

    The memory bound is enforced by polling rather than RLIMIT_AS, because runtimes such as
    OpenMP, rayon and torch reserve far more address space than they ever touch.
    """
    import subprocess

    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    start = time.monotonic()
    while True:
        try:
            return proc.wait(timeout=poll_seconds), ""
        except subprocess.TimeoutExpired:
            pass
        why = ""
        if time.monotonic() - start > timeout:
            why = f"over the time limit of {timeout:.0f} s"
        elif max_rss_bytes and _rss_bytes(proc.pid) > max_rss_bytes:
            why = f"over the memory limit of {max_rss_bytes / 2**30:.1f} GiB"
        if why:
            proc.kill()
            proc.wait()
            return None, why
