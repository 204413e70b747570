"""Shared test settings: where the real datasets live."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Real public datasets sit beside the checkout (../shared/data) or where XMC_DATA points; never in the repo.
DATA_ROOT = Path(os.environ.get("XMC_DATA", REPO / ".." / "shared" / "data"))
