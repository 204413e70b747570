"""What the commands print: notes on what they do, which ``--quiet`` silences, and the final summary and the
errors, which it keeps. Progress bars and lines (:mod:`xmc.utils.progress`) follow ``--quiet`` too."""
from __future__ import annotations

import time
from typing import Optional

import click

QUIET = "xmc_quiet"  # key of the click context's meta, shared by the group and its commands


def _store_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[QUIET] = True


def quiet_option(command):
    """``--quiet`` / ``-q``: print only errors, warnings and the final summary."""
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_store_quiet,
                        help="Print only errors, warnings and the final summary: no progress, no notes.")(command)


def quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET))


def say(message: str = "", **kwargs) -> None:
    """A note on what the command is doing (dropped by --quiet)."""
    if not quiet():
        click.echo(message, **kwargs)


def echo_summary(start: float, extra: str = "", stages: Optional[dict] = None) -> None:
    """The last line of a command, printed even with --quiet: total time (and per stage), peak memory, metrics."""
    from xmc.utils.resources import format_bytes, peak_rss_bytes

    breakdown = f" ({stages})" if stages else ""
    click.echo(f"done in {time.perf_counter() - start:.2f} s{breakdown}, peak memory {format_bytes(peak_rss_bytes())}"
               + (f"; {extra}" if extra else ""))
