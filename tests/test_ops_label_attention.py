"""xmc.ops.label_attention: every backend against the plain PyTorch reference."""
import importlib
import shutil
from pathlib import Path

import pytest
import torch

from xmc.ops import _native, label_attention, resolve_backend
from xmc.ops._reference import label_attention_reference

# xmc.ops re-exports the function under the module's name, so fetch the module itself.
la = importlib.import_module("xmc.ops.label_attention")

BACKENDS = ["chunked", "cpu"]
if torch.cuda.is_available() and _native.cuda_module_available():
    BACKENDS.append("cuda")


pytestmark = pytest.mark.usefixtures("ops_threads")  # conftest.py


@pytest.fixture
def small_tiles(monkeypatch):
    # Several label tiles even on tiny inputs, so the chunked loop's seams are exercised.
    monkeypatch.setattr(la, "CHUNK_BYTES", 64)


def device_of(backend):
    return torch.device("cuda" if backend == "cuda" else "cpu")


def make_inputs(dtype, device, B=5, T=9, D=6, L=13, C=7, seed=0):
    """Padded documents, a one-token document (row 2), an all-padding document (row 3),
    and candidates with repeated ids (in a row and across rows)."""
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(B, T, D, generator=g, dtype=dtype)
    Q = torch.randn(L, D, generator=g, dtype=dtype)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    lengths[2] = 1
    lengths[3] = 0
    mask = torch.arange(T)[None, :] < lengths[:, None]
    cand = torch.randint(0, L, (B, C), generator=g)
    cand[0, 1] = cand[0, 0]
    cand[1, :3] = 4
    cand[B - 1, 0] = cand[0, 0]
    to = dict(device=device)
    return H.to(**to), mask.to(**to), Q.to(**to), cand.to(**to)


def run(fn, H, mask, Q, cand, grad_out=None):
    H = H.detach().clone().requires_grad_()
    Q = Q.detach().clone().requires_grad_()
    out = fn(H, mask, Q, cand)
    if grad_out is None:
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype).to(out.device)
    gH, gQ = torch.autograd.grad(out, (H, Q), grad_out)
    return out.detach(), gH, gQ, grad_out


def backend_fn(backend):
    return lambda H, mask, Q, cand: label_attention(H, mask, Q, cand, backend=backend)


# "past the vector width": D = 37 is whole SIMD vectors plus a tail at any width; 23 labels and 11
# candidates give label tiles that end in groups of four, a pair and a single label.
@pytest.mark.parametrize("sizes", [{}, dict(B=5, T=70, D=37, L=23, C=11, seed=4)],
                         ids=["small", "past-the-vector-width"])
@pytest.mark.parametrize("use_candidates", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_in_float64(backend, use_candidates, sizes, small_tiles):
    H, mask, Q, cand = make_inputs(torch.float64, device_of(backend), **sizes)
    cand = cand if use_candidates else None
    ref = run(label_attention_reference, H, mask, Q, cand)
    got = run(backend_fn(backend), H, mask, Q, cand, grad_out=ref[3])
    for name, r, x in zip(("out", "grad_H", "grad_Q"), ref[:3], got[:3]):
        assert x.shape == r.shape, name
        torch.testing.assert_close(x, r, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("use_candidates", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend, use_candidates, small_tiles):
    H, mask, Q, cand = make_inputs(torch.float64, device_of(backend), B=4, T=5, D=3, L=6, C=4, seed=3)
    cand = cand if use_candidates else None
    H.requires_grad_()
    Q.requires_grad_()
    assert torch.autograd.gradcheck(lambda h, q: label_attention(h, mask, q, cand, backend=backend), (H, Q))


@pytest.mark.parametrize("use_candidates", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_error_at_most_twice_the_reference(backend, use_candidates):
    # flash-attention's rule: against a float64 truth, the kernel may be at most twice as far
    # off as plain PyTorch in float32 (plus a tiny floor for results that are exact).
    H, mask, Q, cand = make_inputs(torch.float64, device_of(backend), B=6, T=40, D=32, L=50, C=20, seed=5)
    cand = cand if use_candidates else None
    truth = run(label_attention_reference, H, mask, Q, cand)
    f32 = [t.float() for t in (H, mask, Q)]
    f32[1] = mask
    g32 = truth[3].float()
    ref32 = run(label_attention_reference, f32[0], mask, f32[2], cand, grad_out=g32)
    got32 = run(backend_fn(backend), f32[0], mask, f32[2], cand, grad_out=g32)
    for name, t, r, x in zip(("out", "grad_H", "grad_Q"), truth[:3], ref32[:3], got32[:3]):
        ref_err = (r.double() - t).abs().max().item()
        err = (x.double() - t).abs().max().item()
        assert err <= 2 * ref_err + 1e-6, f"{name}: {backend} error {err:.3g}, reference float32 error {ref_err:.3g}"


@pytest.mark.parametrize("backend", ["reference"] + BACKENDS)
def test_all_padding_document_gets_zeros_and_no_nan(backend):
    H, mask, Q, cand = make_inputs(torch.float32, device_of(backend))
    for c in (None, cand):
        out, gH, gQ, _ = run(backend_fn(backend), H, mask, Q, c)
        assert not any(torch.isnan(t).any() for t in (out, gH, gQ))
        assert torch.count_nonzero(out[3]) == 0
        assert torch.count_nonzero(gH[3]) == 0
        # padding positions of the other documents get no gradient either
        assert torch.count_nonzero(gH[~mask]) == 0


@pytest.mark.parametrize("backend", ["reference"] + BACKENDS)
def test_one_token_document_returns_that_token(backend):
    H, mask, Q, cand = make_inputs(torch.float64, device_of(backend))
    out = label_attention(H, mask, Q, cand, backend=backend)
    # a softmax over one token is 1: every candidate's output is that token's state
    torch.testing.assert_close(out[2], H[2, 0].expand_as(out[2]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_candidates_share_outputs_and_add_gradients(backend):
    H, mask, Q, _ = make_inputs(torch.float64, device_of(backend))
    cand = torch.full((H.shape[0], 3), 4, dtype=torch.int64, device=H.device)
    single = cand[:, :1].contiguous()
    out3, _, gQ3, _ = run(backend_fn(backend), H, mask, Q, cand, grad_out=torch.ones(5, 3, 6, dtype=H.dtype, device=H.device))
    out1, _, gQ1, _ = run(backend_fn(backend), H, mask, Q, single, grad_out=torch.ones(5, 1, 6, dtype=H.dtype, device=H.device))
    torch.testing.assert_close(out3, out1.expand_as(out3), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gQ3, 3 * gQ1, rtol=1e-10, atol=1e-12)
    assert torch.count_nonzero(gQ3[torch.arange(Q.shape[0], device=H.device) != 4]) == 0


def test_auto_picks_a_cpu_fast_path_and_the_switch_forces_the_reference(monkeypatch):
    H, mask, Q, cand = make_inputs(torch.float32, torch.device("cpu"))
    assert resolve_backend(H, "auto") == la.CPU_AUTO_BACKEND
    assert la.CPU_AUTO_BACKEND in ("chunked", "cpu")
    monkeypatch.setenv("XMC_OPS_REFERENCE", "1")
    for backend in ("auto", "chunked", "cpu", "cuda"):
        assert resolve_backend(H, backend) == "reference"
    # "cuda" on CPU tensors would fail; under the switch it runs the reference
    out = label_attention(H, mask, Q, cand, backend="cuda")
    torch.testing.assert_close(out, label_attention_reference(H, mask, Q, cand), rtol=0, atol=0)


def test_errors_name_the_argument_and_what_was_expected():
    H, mask, Q, cand = make_inputs(torch.float32, torch.device("cpu"))
    bad = cand.clone()
    bad[1, 2] = 13
    with pytest.raises(IndexError, match=r"candidates\[1, 2\] = 13 is outside \[0, 13\)"):
        label_attention(H, mask, Q, bad)
    with pytest.raises(ValueError, match=r"Q must be \(L, D\) with D = 6 like H; found \(13, 5\)"):
        label_attention(H, mask, Q[:, :5], cand)
    with pytest.raises(ValueError, match=r"mask must be \(B, T\) = \(5, 9\) like H; found \(5, 8\)"):
        label_attention(H, mask[:, :8], Q)
    with pytest.raises(TypeError, match="Q must have H's dtype torch.float32; found torch.float64"):
        label_attention(H, mask, Q.double())
    with pytest.raises(ValueError, match="backend must be one of"):
        label_attention(H, mask, Q, backend="gpu")
    if not _native.cuda_module_available():
        with pytest.raises(RuntimeError, match="needs the xmc._cuda module"):
            label_attention(H, mask, Q, backend="cuda")
    else:
        with pytest.raises(ValueError, match="backend='cuda' needs CUDA tensors; H is on cpu"):
            label_attention(H, mask, Q, backend="cuda")


def test_native_cpu_kernel_rejects_a_wrong_layout():
    from xmc import _core

    H, mask, Q, _ = make_inputs(torch.float32, torch.device("cpu"))
    out = torch.empty(5, 13, 6)
    lse = torch.empty(5, 12)
    with pytest.raises(ValueError, match=r"lse has shape \(5, 12\), expected \(5, 13\)"):
        _core.ops_label_attention_forward(H.numpy(), mask.view(torch.uint8).numpy(), Q.numpy(), None,
                                          out.numpy(), lse.numpy(), 1)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH: xmc._cuda is not built")
def test_cuda_module_is_built_and_imports_without_a_gpu():
    assert _native.cuda_module_available(), f"xmc._cuda failed to import: {_native.CUDA_IMPORT_ERROR}"
    from xmc import _cuda

    binary = Path(_cuda.__file__).read_bytes()
    for kernel in (b"forward_kernel", b"dq_kernel", b"dh_kernel"):
        assert kernel in binary, f"{kernel.decode()} is not compiled into {_cuda.__file__}"
    assert _cuda.architectures, "the module does not record its CUDA architectures"
    n = _cuda.device_count()
    assert n >= 0
    if not torch.cuda.is_available():
        assert n == 0
