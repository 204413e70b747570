"""xmc.ops.gcn_propagate: every backend against the torch.sparse reference."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmc.ops import SparseGraph, _native, gcn_propagate
from xmc.ops._reference import gcn_propagate_reference

BACKENDS = ["cpu"]
if torch.cuda.is_available() and _native.cuda_module_available():
    BACKENDS.append("cuda")


pytestmark = pytest.mark.usefixtures("ops_threads")  # conftest.py


def make_graph(rows=11, cols=11, density=0.3, seed=0):
    """A random sparse adjacency with an empty row and an empty column."""
    rng = np.random.default_rng(seed)
    A = sp.random(rows, cols, density=density, random_state=rng, format="csr", dtype=np.float64)
    A = A.tolil()
    A[3, :] = 0
    A[:, 5] = 0
    return sp.csr_matrix(A)


def run(graph, H, backend, grad_out):
    H = H.detach().clone().requires_grad_()
    out = gcn_propagate(graph, H, backend=backend) if backend != "reference-direct" else \
        gcn_propagate_reference(graph.coo(), H)
    out.backward(grad_out)
    return out.detach(), H.grad.detach()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(11, 11), (7, 13)])
def test_matches_dense_product_in_float64(backend, shape):
    A = make_graph(*shape)
    device = torch.device("cuda" if backend == "cuda" else "cpu")
    graph = SparseGraph.from_scipy(A, dtype=torch.float64, device=device)
    g = torch.Generator().manual_seed(1)
    H = torch.randn(4, shape[1], 5, generator=g, dtype=torch.float64).to(device)
    grad_out = torch.randn(4, shape[0], 5, generator=g, dtype=torch.float64).to(device)
    out, grad_H = run(graph, H, backend, grad_out)
    dense = torch.from_numpy(A.toarray()).to(device)
    torch.testing.assert_close(out, torch.einsum("ij,bjd->bid", dense, H), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_H, torch.einsum("ij,bid->bjd", dense, grad_out), rtol=1e-12, atol=1e-12)
    assert torch.all(out[:, 3] == 0)  # an empty row propagates nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend):
    device = torch.device("cuda" if backend == "cuda" else "cpu")
    graph = SparseGraph.from_scipy(make_graph(6, 6, 0.5), dtype=torch.float64, device=device)
    H = torch.randn(2, 6, 3, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h: gcn_propagate(graph, h, backend=backend), (H,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_error_within_twice_torch_sparse(backend):
    # Against a float64 truth, the kernel's float32 error is at most twice torch.sparse's float32 error.
    device = torch.device("cuda" if backend == "cuda" else "cpu")
    A = make_graph(300, 300, 0.05, seed=3)
    g = torch.Generator().manual_seed(2)
    H64 = torch.randn(8, 300, 64, generator=g, dtype=torch.float64)
    G64 = torch.randn(8, 300, 64, generator=g, dtype=torch.float64)
    truth_out, truth_grad = run(SparseGraph.from_scipy(A, dtype=torch.float64), H64, "reference-direct", G64)
    g32 = SparseGraph.from_scipy(A, dtype=torch.float32, device=device)
    H32, G32 = H64.float().to(device), G64.float().to(device)
    ref_out, ref_grad = run(g32, H32, "reference-direct", G32)
    out, grad = run(g32, H32, backend, G32)

    def err(x, truth):
        return (x.double().cpu() - truth).abs().max().item()

    assert err(out, truth_out) <= 2 * err(ref_out, truth_out) + 1e-7
    assert err(grad, truth_grad) <= 2 * err(ref_grad, truth_grad) + 1e-7


def test_auto_picks_the_fused_kernel_and_the_switch_forces_the_reference(monkeypatch):
    graph = SparseGraph.from_scipy(make_graph(), dtype=torch.float32)
    H = torch.randn(2, 11, 4)
    calls = []
    import xmc.ops.gcn as gcn_module

    original = gcn_module._apply
    monkeypatch.setattr(gcn_module, "_apply", lambda *a: calls.append(a[-1]) or original(*a))
    gcn_propagate(graph, H)
    assert calls == ["cpu"]
    monkeypatch.setenv("XMC_OPS_REFERENCE", "1")
    gcn_propagate(graph, H)
    assert calls == ["cpu"]


def test_clear_errors():
    graph = SparseGraph.from_scipy(make_graph(), dtype=torch.float32)
    with pytest.raises(ValueError, match=r"H must be \(B, 11, D\)"):
        gcn_propagate(graph, torch.randn(2, 10, 4))
    with pytest.raises(ValueError, match="use graph.to"):
        gcn_propagate(graph, torch.randn(2, 11, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="backend must be one of"):
        gcn_propagate(graph, torch.randn(2, 11, 4), backend="fast")
    with pytest.raises(ValueError, match="NaN or infinite"):
        SparseGraph.from_scipy(sp.csr_matrix(np.array([[np.nan]])))


def test_native_kernel_refuses_out_of_range_columns():
    from xmc import _core

    indptr = np.array([0, 1], dtype=np.int64)
    out = np.zeros((1, 1, 2), dtype=np.float32)
    with pytest.raises(IndexError, match="column 7 outside"):
        _core.ops_gcn_propagate(indptr, np.array([7], dtype=np.int64), np.ones(1, dtype=np.float32), 3,
                                np.zeros((1, 3, 2), dtype=np.float32), out, 1)
