"""xmc.ops.dynamic_graph_propagate: the tiled and native backends against the materialised reference."""
import importlib

import numpy as np
import pytest
import torch

from xmc import _core
from xmc.ops import _native, dynamic_graph_propagate

dg = importlib.import_module("xmc.ops.dynamic_graph")

CUDA = torch.cuda.is_available() and _native.cuda_module_available()
BACKENDS = ["chunked", "cpu"] + (["cuda"] if CUDA else [])
# Shapes: one partial tile of everything; then several row tiles and column blocks of the native
# kernel (96 x 128) with a short last one, and widths that are not whole vectors.
SHAPES = [dict(B=3, L=13, d=4, D=6), dict(B=2, L=200, d=5, D=19)]


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
    monkeypatch.setattr(dg, "TILE", 5)  # several tiles and a short last one even on tiny inputs
    monkeypatch.delenv("XMC_OPS_REFERENCE", raising=False)


def inputs(dtype, B=3, L=13, d=4, D=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g, dtype=dtype) for shape in ((B, L, d), (B, L, d), (B, L, D)))


def device_of(backend):
    return torch.device("cuda" if backend == "cuda" else "cpu")


def grads(backend, Qa, Kb, H, dO):
    """(out, dQa, dKb, dH) on the CPU, computed on the backend's device."""
    device = device_of(backend)
    leaves = [t.detach().to(device).clone().requires_grad_() for t in (Qa, Kb, H)]
    out = dynamic_graph_propagate(*leaves, backend=backend)
    out.backward(dO.to(device))
    return [t.cpu() for t in [out.detach()] + [t.grad for t in leaves]]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "L{L}-d{d}-D{D}".format(**s))
@pytest.mark.parametrize("backend", BACKENDS)
def test_equals_reference_in_float64(backend, shape):
    Qa, Kb, H = inputs(torch.float64, **shape)
    dO = torch.randn_like(H)
    for got, want in zip(grads(backend, Qa, Kb, H, dO), grads("reference", Qa, Kb, H, dO)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend):
    device = device_of(backend)
    Qa, Kb, H = (t.to(device).requires_grad_() for t in inputs(torch.float64, B=2, L=7, d=3, D=2))
    assert torch.autograd.gradcheck(lambda q, k, h: dynamic_graph_propagate(q, k, h, backend=backend),
                                     (Qa, Kb, H))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_error_within_twice_plain_pytorch(backend):
    Qa, Kb, H = inputs(torch.float64, B=2, L=300, d=16, D=32, seed=1)
    dO = torch.randn_like(H)
    truth = grads("reference", Qa, Kb, H, dO)
    f32 = [t.float() for t in (Qa, Kb, H, dO)]
    plain = _reference_on_cuda(*f32) if backend == "cuda" else grads("reference", *f32)  # the same device
    for c, r, t in zip(grads(backend, *f32), plain, truth):
        assert (c.double() - t).abs().max() <= 2 * (r.double() - t).abs().max() + 1e-7


def _reference_on_cuda(Qa, Kb, H, dO):
    leaves = [t.cuda().requires_grad_() for t in (Qa, Kb, H)]
    out = dg.dynamic_graph_propagate_reference(*leaves)
    out.backward(dO.cuda())
    return [t.cpu() for t in [out.detach()] + [t.grad for t in leaves]]


def test_shapes_are_checked():
    Qa, Kb, H = inputs(torch.float32)
    with pytest.raises(ValueError, match="must be"):
        dynamic_graph_propagate(Qa, Kb[:, :5], H)
    with pytest.raises(ValueError, match="backend must be one of"):
        dynamic_graph_propagate(Qa, Kb, H, backend="fast")
    with pytest.raises(TypeError, match="needs Qa, Kb and H of one dtype, float32 or float64"):
        dynamic_graph_propagate(Qa.half(), Kb.half(), H.half(), backend="cpu")
    with pytest.raises(TypeError, match="float32, torch.float64, torch.float32"):
        dynamic_graph_propagate(Qa, Kb.double(), H, backend="cpu")
    if _native.cuda_module_available():
        with pytest.raises(ValueError, match="backend='cuda' needs CUDA tensors; H is on cpu"):
            dynamic_graph_propagate(Qa, Kb, H, backend="cuda")


@pytest.mark.parametrize("backend", ["reference"] + BACKENDS)
def test_rows_whose_scores_underflow_stay_finite(backend):
    # Found training LDGN: one label's scores below -88 underflow sigmoid to 0 in float32, its degree
    # is 0 and d^-1/2 was infinite (NaN loss from then on). The degree is clamped at MIN_DEGREE.
    Qa, Kb, H = inputs(torch.float32, B=2, L=9)
    Qa = Qa.clone()
    Kb = Kb.abs() + 1.0  # positive keys, so a very negative query pushes every score of its row down
    Qa[0, 4] = -1000.0
    out, dQa, dKb, dH = grads(backend, Qa, Kb, H, torch.randn_like(H))
    assert all(torch.isfinite(t).all() for t in (out, dQa, dKb, dH))
    assert torch.all(out[0, 4] == 0)  # a node with no edges receives nothing


def test_auto_picks_the_fused_kernel_and_the_variable_forces_the_reference(monkeypatch):
    calls = []

    def spy(name, fn):
        def wrapped(*args):
            calls.append(name)
            return fn(*args)
        return wrapped

    monkeypatch.setattr(_native, "cpu_dynamic_graph_forward", spy("cpu", _native.cpu_dynamic_graph_forward))
    monkeypatch.setattr(dg, "dynamic_graph_propagate_reference",
                        spy("reference", dg.dynamic_graph_propagate_reference))
    Qa, Kb, H = inputs(torch.float32)
    dynamic_graph_propagate(Qa, Kb, H)
    assert calls == ["cpu"]
    dynamic_graph_propagate(Qa.half(), Kb.half(), H.half())  # not a native dtype: the torch tiles
    assert calls == ["cpu"]
    monkeypatch.setenv("XMC_OPS_REFERENCE", "1")
    dynamic_graph_propagate(Qa, Kb, H)
    dynamic_graph_propagate(Qa, Kb, H, backend="cpu")
    assert calls == ["cpu", "reference", "reference"]


def test_binding_rejects_bad_dtypes_shapes_and_layouts():
    Qa, Kb, H = (t.numpy() for t in inputs(torch.float32, B=2, L=7, d=3, D=4))
    out, degrees = np.empty((2, 7, 4), np.float32), np.empty((2, 7), np.float32)
    forward = _core.ops_dynamic_graph_forward
    with pytest.raises(ValueError, match="dynamic_graph_propagate: Qa has dtype float16, expected float32"):
        forward(Qa.astype(np.float16), Kb, H, out, degrees, 1e-6)
    with pytest.raises(ValueError, match=r"Kb has shape \(2, 6, 3\), expected \(2, 7, 3\)"):
        forward(Qa, np.ascontiguousarray(Kb[:, :6]), H, out, degrees, 1e-6)
    with pytest.raises(ValueError, match="H has dtype float64, expected float32"):
        forward(Qa, Kb, H.astype(np.float64), out, degrees, 1e-6)
    with pytest.raises(ValueError, match="H must be C-contiguous"):
        forward(Qa, Kb, np.asfortranarray(H), out, degrees, 1e-6)
    with pytest.raises(ValueError, match=r"degrees has shape \(2, 6\), expected \(2, 7\)"):
        forward(Qa, Kb, H, out, np.empty((2, 6), np.float32), 1e-6)
    with pytest.raises(ValueError, match="min_degree must be > 0"):
        forward(Qa, Kb, H, out, degrees, 0.0)
    forward(Qa, Kb, H, out, degrees, 1e-6)
    grads_out = [np.empty_like(Qa), np.empty_like(Kb), np.empty_like(H)]
    with pytest.raises(ValueError, match=r"grad_out has shape \(2, 7, 3\), expected \(2, 7, 4\)"):
        _core.ops_dynamic_graph_backward(Qa, Kb, H, degrees, out, Qa, *grads_out, 1e-6)


@pytest.mark.skipif(not _native.cuda_module_available(), reason="xmc._cuda not built")
def test_cuda_module_exports_the_kernels():
    from xmc import _cuda

    assert callable(_cuda.dynamic_graph_forward) and callable(_cuda.dynamic_graph_backward)
