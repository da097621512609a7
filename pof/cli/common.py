"""What every ``pof`` command shares: exit statuses, error handling, and the options of pof's
settings, made from their declarations in ``pof.settings``."""
from __future__ import annotations

import functools
import os
import sys

import click

from pof.errors import PofError

# exit statuses (docs/cli.md, "Exit status"); 75, a dataset busy, is pof.dataset.lock.EXIT_BUSY
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_HELP = """\b
Exit status:
  0    everything done
  1    internal error (a bug: POF_DEBUG=1 shows the traceback)
  2    usage or user error (bad arguments, missing dataset, a folder that is not a dataset)
  3    some inputs failed, each reported; the rest was done
  4    every input failed
  75   the dataset is being written by another pof process; run again when it is done
  130  interrupted (Ctrl-C); run the same command again to resume"""


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"pof: {message}", err=True)
    sys.exit(code)


def finish(done: int, failed: int) -> None:
    """Exit with the status of a run over many inputs: 0, 3 (some failed) or 4 (all did)."""
    if failed:
        sys.exit(EXIT_SOME_FAILED if done else EXIT_ALL_FAILED)


def friendly(fn):
    """Run a command with the settings its options gave in force for the whole process
    (pof.settings.command_line); turn PofError into a one-line message, Ctrl-C into a resumable
    stop, and any other exception into a short report (set POF_DEBUG=1 for the traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pof.settings import command_line
        try:
            with command_line(**given_settings()):
                return fn(*args, **kwargs)
        except PofError as exc:
            fail(str(exc), getattr(exc, "exit_code", EXIT_USAGE))
        except KeyboardInterrupt:
            fail("interrupted; nothing committed was lost; run the same command again to resume",
                 EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001
            if disk_full(exc):
                fail(f"no space left on the disk ({exc}); free some and run the same command again "
                     "(a build resumes where it stopped; `pof fsck` checks a dataset)")
            if os.environ.get("POF_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (POF_DEBUG=1 shows details)", EXIT_INTERNAL)
    return wrapper


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    import errno
    import sqlite3
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc))


def given_settings() -> dict[str, object]:
    """The settings the running command's options gave (setting name -> value; None where
    left out)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    return {p.setting: ctx.params.get(p.name) for p in ctx.command.params if isinstance(p, SettingOption)}


def setting_type(name: str) -> click.ParamType | None:
    """The click type of setting ``name``, from its declaration: its choices, or the range of
    a number; None (text) otherwise."""
    from pof.settings import get
    decl = get(name)
    if decl.choices:
        return click.Choice(decl.choices)
    if isinstance(decl.default, bool):
        return click.BOOL
    if isinstance(decl.default, int):
        return click.IntRange(int(decl.low), None if decl.high is None else int(decl.high))
    if isinstance(decl.default, float):
        return click.FloatRange(decl.low, decl.high, min_open=decl.open, max_open=decl.open)
    return None


class SettingOption(click.Option):
    """An option that sets one of pof's settings, made from its declaration (help, type,
    choices, range). It has no default of its own (None: not given), so the value resolves in
    pof.settings: default < POF_<NAME> < the option. Its help shows the value it takes when
    left out, from the environment where set there, and the variable that sets it."""

    def __init__(self, param_decls, setting: str, **attrs) -> None:
        from pof.settings import get
        attrs.setdefault("help", get(setting).help)
        kind = setting_type(setting)
        if kind is not None:
            attrs.setdefault("type", kind)
        super().__init__(param_decls, default=None, show_default=False, **attrs)
        self.setting = setting

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None:
            return None
        from pof.settings import current, get
        env = get(self.setting).env
        try:
            shown = f"{current(self.setting)}; {'from' if env in os.environ else 'or set'} {env}"
        except PofError:
            shown = f"{env} is not valid"
        return record[0], f"{record[1]}  [default: {shown}]"


def setting(name: str, **attrs):
    """A click option ``--NAME`` for setting ``name``: its value is None when left out, and what
    it gives beats the environment wherever the command's code resolves the setting
    (``friendly``; ``pof.settings.value(name, option)`` gives the value in effect)."""
    from pof.settings import get
    get(name)                                   # an unknown setting fails here, at import
    return click.option(f"--{name.replace('_', '-')}", name, cls=SettingOption, setting=name, **attrs)


def probe_workers(requested: int, n_images: int) -> int:
    """Worker processes for probes: none for a few images (start-up costs ~1 s each)."""
    if n_images < 4:
        return 1
    return requested if requested > 0 else min(os.cpu_count() or 1, n_images // 2)
