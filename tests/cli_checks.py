"""The command-line tests' way of running xmc: in-process through click's runner, the exit code checked."""
from click.testing import CliRunner

from xmc.cli.main import cli


def invoke(*args, code: int = 0):
    """Run ``xmc ARGS`` (every argument turned into a string) and return the result; fail with its output
    unless it exits with ``code``."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result
