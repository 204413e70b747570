"""The linear workflow (the README's main command) must run where torch is not installed."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def test_linear_cli_runs_without_torch(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch.") or name == "gensim":
                    raise ImportError(f"{{name}} is blocked by this test")
                return None
        sys.meta_path.insert(0, BlockTorch())
        from xmc.cli.main import cli
        d = {str(tmp_path)!r}
        for args in (["generate", "--out", d, "--labels", "50", "--train-docs", "300", "--test-docs", "50",
                      "--features", "500"],
                     ["train", "--train", d + "/train.txt", "--model-dir", d + "/m", "--threads", "1"],
                     ["predict", "--model-dir", d + "/m", "--input", d + "/test.txt", "--out", d + "/p.txt"],
                     ["evaluate", "--predictions", d + "/p.txt", "--truth", d + "/test.txt"]):
            try:
                cli.main(args=args, prog_name="xmc", standalone_mode=False)
            except SystemExit as e:
                assert not e.code, (args, e.code)
        assert "torch" not in sys.modules
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
