"""The linear model, the tree, the search, data and metrics never need torch or the deep models."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch.") or name == "gensim":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by this test)", name=name)
        return None
sys.meta_path.insert(0, BlockTorch())
"""

# The torch-free layers: importing them must not pull in torch or any deep model.
LEAN_MODULES = ["xmc.params", "xmc.registry", "xmc.inference", "xmc.linear", "xmc.linear.pipeline", "xmc.linear.plt",
                "xmc.tree", "xmc.search", "xmc.data", "xmc.data.predictions", "xmc.metrics", "xmc.datasets",
                "xmc.training.checkpoint", "xmc.training.distributed", "xmc.text.tokens", "xmc.cli.main"]


def run_blocked(body: str) -> None:
    script = BLOCK + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]


def test_lean_modules_import_neither_torch_nor_the_deep_models():
    run_blocked(f"""
        import importlib
        for name in {LEAN_MODULES!r}:
            importlib.import_module(name)
        assert "torch" not in sys.modules
        deep = [m for m in sys.modules if m.startswith(("xmc.models.", "xmc.layers", "xmc.training.loop"))]
        assert not deep, deep
        print("OK")
    """)


def test_linear_cli_trains_resumes_predicts_evaluates_without_torch(tmp_path):
    run_blocked(f"""
        from xmc.cli.main import cli
        d = {str(tmp_path)!r}
        for args in (["generate", "--out", d, "--labels", "50", "--train-docs", "300", "--test-docs", "50",
                      "--features", "500"],
                     ["train", "--train", d + "/train.txt", "--model-dir", d + "/m", "--threads", "1"],
                     ["train", "--train", d + "/train.txt", "--model-dir", d + "/m", "--threads", "1", "--resume"],
                     ["train", "--train", d + "/train.txt", "--model-dir", d + "/r", "--threads", "1", "--resume"],
                     ["predict", "--model-dir", d + "/m", "--input", d + "/test.txt", "--out", d + "/p.txt"],
                     ["evaluate", "--predictions", d + "/p.txt", "--truth", d + "/test.txt"]):
            try:
                cli.main(args=args, prog_name="xmc", standalone_mode=False)
            except SystemExit as e:
                assert not e.code, (args, e.code)
        assert "torch" not in sys.modules
        print("OK")
    """)


def test_linear_resume_from_a_checkpoint_without_torch(tmp_path):
    # A checkpoint left by an interrupted linear training is read back with torch blocked.
    run_blocked(f"""
        from pathlib import Path
        import numpy as np
        from xmc.datasets.synthetic import SyntheticParams, make_corpus
        from xmc.linear import PLTLinear, PLTParams
        from xmc.tree import TreeParams
        c = make_corpus(SyntheticParams(n_labels=40, n_train=300, n_test=30, n_features=300))
        params = PLTParams(threads=1, tree=TreeParams(branching_factor=2, max_leaf_size=2, threads=1))
        ck = Path({str(tmp_path)!r}) / "ck"
        a = PLTLinear(params).fit(c.X_train, c.Y_train, checkpoint_dir=ck)
        b = PLTLinear(params).fit(c.X_train, c.Y_train, checkpoint_dir=ck, resume=True)
        ia, sa = a.predict_topk(c.X_test, k=3)
        ib, sb = b.predict_topk(c.X_test, k=3)
        assert (ia == ib).all() and np.allclose(sa, sb)
        assert "torch" not in sys.modules
        print("OK")
    """)


DEEP_MODEL = Path(__file__).parent / "fixtures" / "models_0442351" / "attentionxml"
TEST_TEXTS = DEEP_MODEL.parent / "test.jsonl"


def test_deep_model_commands_without_torch_are_one_line_saying_what_to_install(tmp_path):
    """Training, predicting with and printing the params of a deep model: one error line, no traceback."""
    run_blocked(f"""
        from click.testing import CliRunner
        from xmc.cli.main import cli
        for args in (["train", "--model", "attentionxml", "--train", {str(TEST_TEXTS)!r},
                      "--model-dir", {str(tmp_path / "m")!r}],
                     ["predict", "--model-dir", {str(DEEP_MODEL)!r}, "--input", {str(TEST_TEXTS)!r},
                      "--out", {str(tmp_path / "p.txt")!r}],
                     ["params", "lwpt"]):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 2, (args, r.output)
            lines = r.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.output)
            assert "needs PyTorch" in lines[0] and "pip install 'xmc[deep]'" in lines[0], lines[0]
            assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in lines[0], lines[0]
        print("OK")
    """)


def test_the_deep_extra_brings_torch():
    """`pip install 'xmc[deep]'` installs torch; the README says so, with the CPU-only wheel."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    constants = {node.targets[0].id: node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)}
    setup_call = next(node.value for node in tree.body if isinstance(node, ast.Expr)
                      and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "setup")
    extras = next(k.value for k in setup_call.keywords if k.arg == "extras_require")
    deep = next(v for key, v in zip(extras.keys, extras.values) if key.value == "deep")
    requirements = [constants[e.id] if isinstance(e, ast.Name) else e.value for e in deep.elts]
    assert any(r.split(">")[0].split("=")[0].strip() == "torch" for r in requirements), requirements
    install = (ROOT / "README.md").read_text().split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in install
    assert "[deep]'" in install
