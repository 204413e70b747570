"""LazyAdam and clip_grad_norm against torch's Adam and clip_grad_norm_ (xmc.training.optim)."""
import pytest
import torch
from torch import nn

from xmc.training.optim import LazyAdam, clip_grad_norm


def _pair(sparse: bool, seed: int = 0):
    torch.manual_seed(seed)
    a = nn.Embedding(20, 4, sparse=sparse)
    b = nn.Embedding(20, 4)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_dense_gradients_follow_torch_adam(weight_decay):
    torch.manual_seed(0)
    ours, theirs = nn.Linear(5, 3), nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    opt_ours = LazyAdam(ours.parameters(), lr=0.01, weight_decay=weight_decay)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=0.01, weight_decay=weight_decay)
    for step in range(5):
        x = torch.randn(8, 5)
        for net, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_sparse_rows_follow_adam_and_other_rows_stay():
    """Steps that all use rows {1, 3, 3, 7}: those rows move as dense Adam moves them (the repeated row's
    gradients summed); every other row stays where it was, where dense Adam would leave it too (zero
    gradient, zero moments)."""
    sparse, dense = _pair(sparse=True)
    before = sparse.weight.detach().clone()
    opt_s, opt_d = LazyAdam(sparse.parameters(), lr=0.05), torch.optim.Adam(dense.parameters(), lr=0.05)
    ids = torch.tensor([1, 3, 3, 7])
    for _ in range(4):
        for emb, opt in ((sparse, opt_s), (dense, opt_d)):
            opt.zero_grad()
            emb(ids).sin().sum().backward()
            opt.step()
    assert sparse.weight.grad.is_sparse
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=1e-5, atol=1e-6)
    untouched = torch.ones(20, dtype=torch.bool)
    untouched[ids] = False
    assert torch.equal(sparse.weight.detach()[untouched], before[untouched])
    assert not torch.equal(sparse.weight.detach()[1], before[1])


def test_sparse_moments_only_decay_on_the_rows_used():
    """A row skipped by a step keeps its moments (lazy): dense Adam would keep moving it with momentum."""
    emb = nn.Embedding(6, 2, sparse=True)
    opt = LazyAdam(emb.parameters(), lr=0.1)
    emb(torch.tensor([2])).sum().backward()
    opt.step()
    after_first = emb.weight.detach().clone()
    opt.zero_grad()
    emb(torch.tensor([4])).sum().backward()
    opt.step()
    assert torch.equal(emb.weight.detach()[2], after_first[2])
    assert not torch.equal(emb.weight.detach()[4], after_first[4])


@pytest.mark.parametrize("max_norm", [0.1, 100.0])
def test_clip_grad_norm_matches_torch_on_dense_and_sparse(max_norm):
    sparse, dense = _pair(sparse=True)
    lin = nn.Linear(4, 1)
    lin_copy = nn.Linear(4, 1)
    lin_copy.load_state_dict(lin.state_dict())
    ids = torch.tensor([0, 5, 5, 9])
    lin(sparse(ids)).pow(2).sum().backward()
    lin_copy(dense(ids)).pow(2).sum().backward()
    ours = clip_grad_norm(list(sparse.parameters()) + list(lin.parameters()), max_norm)
    theirs = nn.utils.clip_grad_norm_(list(dense.parameters()) + list(lin_copy.parameters()), max_norm)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(lin.weight.grad, lin_copy.weight.grad)
