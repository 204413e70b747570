"""xmc.ops.dynamic_graph_propagate: the tiled backend against the materialised reference."""
import importlib

import pytest
import torch

from xmc.ops import dynamic_graph_propagate

dg = importlib.import_module("xmc.ops.dynamic_graph")


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
    monkeypatch.setattr(dg, "TILE", 5)  # several tiles and a short last one even on tiny inputs
    monkeypatch.delenv("XMC_OPS_REFERENCE", raising=False)


def inputs(dtype, B=3, L=13, d=4, D=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g, dtype=dtype) for shape in ((B, L, d), (B, L, d), (B, L, D)))


def grads(backend, Qa, Kb, H, dO):
    leaves = [t.detach().clone().requires_grad_() for t in (Qa, Kb, H)]
    out = dynamic_graph_propagate(*leaves, backend=backend)
    out.backward(dO)
    return [out.detach()] + [t.grad for t in leaves]


def test_chunked_equals_reference_in_float64():
    Qa, Kb, H = inputs(torch.float64)
    dO = torch.randn_like(H)
    for got, want in zip(grads("chunked", Qa, Kb, H, dO), grads("reference", Qa, Kb, H, dO)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64():
    Qa, Kb, H = (t.requires_grad_() for t in inputs(torch.float64, B=2, L=7, d=3, D=2))
    assert torch.autograd.gradcheck(lambda q, k, h: dynamic_graph_propagate(q, k, h, backend="chunked"),
                                     (Qa, Kb, H))


def test_float32_error_within_twice_plain_pytorch():
    Qa, Kb, H = inputs(torch.float64, B=2, L=300, d=16, D=32, seed=1)
    dO = torch.randn_like(H)
    truth = grads("reference", Qa, Kb, H, dO)
    f32 = [t.float() for t in (Qa, Kb, H, dO)]
    ref, chunked = grads("reference", *f32), grads("chunked", *f32)
    for c, r, t in zip(chunked, ref, truth):
        assert (c.double() - t).abs().max() <= 2 * (r.double() - t).abs().max() + 1e-7


def test_shapes_are_checked():
    Qa, Kb, H = inputs(torch.float32)
    with pytest.raises(ValueError, match="must be"):
        dynamic_graph_propagate(Qa, Kb[:, :5], H)
    with pytest.raises(ValueError, match="backend must be one of"):
        dynamic_graph_propagate(Qa, Kb, H, backend="fast")


@pytest.mark.parametrize("backend", ["reference", "chunked"])
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
