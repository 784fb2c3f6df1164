"""Thin command-line interface over the Python API (typer).

Every command parses its options, calls the library and writes files. Any
:class:`~alignkit.errors.AlignkitError` becomes a one-line ``error: ...`` on stderr and
exit code 2, with no traceback; so does a usage error (unknown option or command, missing
argument, a value of the wrong type or outside its choices), after click's usage line.
"""
from __future__ import annotations

import sys

import typer

from alignkit.errors import AlignkitError

app = typer.Typer(
    name="alignkit",
    help="Measure and improve cross-lingual alignment of multilingual encoders and decoder-only LLMs, layer by layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Import the command modules; each adds its commands to ``app``."""
    import importlib

    for name in ("core", "lexicon", "score", "train", "study"):
        importlib.import_module(f"alignkit.cli.{name}")


def _click_exceptions():
    """The exceptions module of the click that typer runs on.

    typer up to 0.2x drives the ``click`` package; newer typer vendors it as
    ``typer._click``, whose ``UsageError`` is not ``click.UsageError``. ``typer.BadParameter``
    is that click's own class in every typer the pyproject allows (>=0.12), so its module is
    the one whose exceptions the parser raises.
    """
    return sys.modules[typer.BadParameter.__module__]


def _usage_error(e, out=sys.stderr) -> None:
    """A usage error as click's usage line plus one ``error: ...`` line (no traceback)."""
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        print(ctx.get_usage().splitlines()[0], file=out)
    message = " ".join(e.format_message().split())  # click may wrap a hint onto a second line
    print(f"error: {message}", file=out)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alignkit`` console script: the exit code (0 success, 2 an
    alignkit error or a usage error, 130 an interrupt)."""
    _register()
    exceptions = _click_exceptions()
    aborts = tuple({typer.Abort, getattr(exceptions, "Abort", typer.Abort)})  # typer 0.29 has its own Abort
    try:
        rc = app(args=argv, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except AlignkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except exceptions.UsageError as e:  # unknown option/command, missing argument, bad value
        _usage_error(e)
        return 2
    except exceptions.ClickException as e:  # other click errors (e.g. a file option it cannot open)
        print(f"error: {' '.join(e.format_message().split())}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, *aborts):
        print("error: interrupted; nothing half-written was kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except SystemExit as e:
        return int(e.code or 0)


def run() -> None:
    sys.exit(main())
