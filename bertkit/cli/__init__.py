"""The `bertkit` command line.

Commands are thin: parse options, load the recipe, call one domain function, render
its result. Heavy libraries (torch, transformers, datasets, accelerate) are imported
inside command bodies only, so `bertkit --help` starts in a blink; a test guards it.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from bertkit import __version__
from bertkit.errors import BertkitError

_DEBUG_ENV = "BERTKIT_DEBUG"


class _Group(TyperGroup):
    """Turns a BertkitError raised anywhere below into one clear message and exit code."""

    def invoke(self, ctx: typer.Context):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except BertkitError as exc:
            if _debug_enabled():
                raise
            if os.environ.get("RANK", "0") == "0":  # every process of a launched run meets it
                _report(exc)
            raise typer.Exit(exc.exit_code) from None

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # noqa: D102 - click API
        # `--debug` works after the command too (`bertkit finetune ... --debug`), where a
        # user adds it on rerunning a failed command; arguments after `--` are left alone.
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[:end]:
            os.environ[_DEBUG_ENV] = "1"
            args = [a for a in args[:end] if a != "--debug"] + args[end:]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        # Commands in the order a user meets them, not alphabetical.
        return list(self.commands)


def _debug_enabled() -> bool:
    return os.environ.get(_DEBUG_ENV, "") not in ("", "0", "false", "no")


def _report(exc: BertkitError) -> None:
    from rich.markup import escape

    from bertkit.console import err

    err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
    if exc.hint:
        err.print(f"[dim]hint:[/dim] {escape(exc.hint)}")
    err.print(f"[dim](run with --debug or {_DEBUG_ENV}=1 for the traceback)[/dim]")


app = typer.Typer(
    name="bertkit",
    cls=_Group,
    help="Pretrain, fine-tune, evaluate and serve BERT models, each run described by a YAML recipe.",
    epilog=(
        "\b\nExamples:\n"
        "  bertkit finetune --recipe quickstart\n"
        "  bertkit eval\n"
        '  bertkit predict "what a wonderful film"\n'
        "  bertkit recipes list\n\n"
        "Run `bertkit COMMAND --help` for a command's options and examples."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bertkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show tracebacks (same as {_DEBUG_ENV}=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if debug:
        os.environ[_DEBUG_ENV] = "1"


def _register() -> None:
    # Each module adds its command(s) to `app` when imported; help lists them in this
    # order, the order of the workflow. None of them imports heavy libraries.
    for name in (
        "train",
        "evaluate",
        "predict",
        "embed",
        "export",
        "serve",
        "check",
        "tokenizer",
        "recipes",
        "env",
    ):
        importlib.import_module(f"bertkit.cli.{name}")


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    finally:
        if "torch.distributed" in sys.modules:  # only a command that trained has a group to leave
            from bertkit.training.distributed import leave_processes

            leave_processes()
