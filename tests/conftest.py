"""Shared test settings: where the real datasets live."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Real public datasets sit beside the checkout (../shared/data) or where XMC_DATA points; never in the repo.
DATA_ROOT = Path(os.environ.get("XMC_DATA", REPO / ".." / "shared" / "data"))


import pytest  # noqa: E402


@pytest.fixture
def ops_threads(monkeypatch):
    """Two torch threads and no XMC_OPS_REFERENCE for the kernel tests, restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.delenv("XMC_OPS_REFERENCE", raising=False)
    yield
    torch.set_num_threads(before)
