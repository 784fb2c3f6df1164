"""Thin command-line interface over the Python API (typer).

Every command parses its options, calls the library and writes files. Any
:class:`~alignkit.errors.AlignkitError` becomes a one-line ``error: ...`` on stderr and
exit code 2, with no traceback.
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
        try:
            importlib.import_module(f"alignkit.cli.{name}")
        except ModuleNotFoundError as e:  # a sub-CLI not written yet
            if e.name != f"alignkit.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alignkit`` console script."""
    _register()
    try:
        rc = app(args=argv, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except AlignkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing half-written was kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except SystemExit as e:  # typer.Exit
        return int(e.code or 0)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return 2
        if isinstance(e, click.exceptions.Abort):
            return 130
        raise


def run() -> None:
    sys.exit(main())
