"""What every command shares: the two consoles, the one way to fail, and the options defined once."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from evostreaming.models.flags import HELP as PLACEMENT_HELP
from evostreaming.models.flags import MODEL_HELP

console = Console()
err = Console(stderr=True, soft_wrap=True)
DEBUG = {"on": False}  # set by the root --debug option


def user_errors(command):
    """Run ``command`` so that an error the user can fix (``UserError``, ``ValueError``, ``OSError``:
    a bad file, a wrong path, a folder in use, a dead server) ends as one line and exit code 2 (or
    the error's ``exit_code``), never a traceback; ``--debug`` shows the traceback instead."""
    from evostreaming.utils.errors import UserError

    @functools.wraps(command)
    def guarded(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (UserError, ValueError, OSError) as exc:
            if DEBUG["on"]:
                raise
            text = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.filename}: {exc.strerror}"
            fail(f"{text} (--debug shows the traceback)", code=getattr(exc, "exit_code", 2))

    return guarded


class App(typer.Typer):
    """A ``typer.Typer`` whose commands report user errors as one line (``user_errors``)."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda f: register(user_errors(f))


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """A user error: one line on stderr, exit code 2 (1: the job ran but failed, e.g. too many failures)."""
    # the message is the user's text (file names, JSON like "[start, end]"): printed as is, never as markup
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


# -- options shared by several commands (help written once) --------------------------------------
ModelArg = Annotated[str, typer.Argument(help=MODEL_HELP)]
ModelOpt = Annotated[str, typer.Option(help=MODEL_HELP)]
AdapterOpt = Annotated[Path | None, typer.Option(help="a PEFT LoRA adapter folder to apply on the model")]
JudgeOpt = Annotated[str, typer.Option(help="rule | embedding | openai:URL,model=NAME")]
DeviceOpt = Annotated[str, typer.Option(help=PLACEMENT_HELP["device"])]
DtypeOpt = Annotated[str, typer.Option(help=PLACEMENT_HELP["dtype"])]
AttnOpt = Annotated[str, typer.Option(help=PLACEMENT_HELP["attn"])]
DeviceMapOpt = Annotated[str | None, typer.Option(help=PLACEMENT_HELP["device_map"])]
VisualTokensOpt = Annotated[
    int, typer.Option(help="visual tokens per frame (the paper trains at ~128); fixed-count families ignore it")
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="discard what the output folder holds from another job and start anew")
]
TimelinesOpt = Annotated[int, typer.Option(min=-1, help="timeline PNGs to draw (-1 = all, 0 = none)")]
SilenceThresholdOpt = Annotated[
    float | None,
    typer.Option(help="silent iff P(marker) >= this (higher = more talkative); default: greedy decision"),
]


def config_options(config_cls: type, into: str):
    """Give a command one option per field of the dataclass ``config_cls`` whose metadata has a
    ``help`` (default from the field, flag from ``metadata['flag']`` or the field name, or all of the
    option's declarations from ``metadata['decls']``; ``metadata['envvar']`` too) and pass them
    to it as one ``config_cls(...)`` in its parameter ``into``. The help lives on the config field,
    so commands sharing a config share its flags; a ValueError from the config's own checks ends the
    command as a user error, before any work."""
    hints = typing.get_type_hints(config_cls)
    fields = [f for f in dataclasses.fields(config_cls) if "help" in f.metadata]

    def decorate(command):
        extra = []
        for f in fields:
            flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
            decls = f.metadata.get("decls") or ((f"{flag}/--no-{flag[2:]}",) if hints[f.name] is bool else (flag,))
            option = typer.Option(*decls, help=f.metadata["help"], envvar=f.metadata.get("envvar"))
            annotation = Annotated[hints[f.name], option]
            default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty  # required
            extra.append(
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            )

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f in fields}
            try:
                config = config_cls(**values)
            except ValueError as exc:
                fail(str(exc))
            return command(*args, **kwargs, **{into: config})

        signature = inspect.signature(command, eval_str=True)  # typer takes these annotations as they are
        kept = [p for p in signature.parameters.values() if p.name != into]
        wrapper.__signature__ = signature.replace(parameters=kept + extra)
        wrapper.__annotations__ = {k: v for k, v in command.__annotations__.items() if k != into}
        return wrapper

    return decorate


def check_json_out(json_out: Path) -> None:
    """The results file's folder takes files, before minutes of measuring (results are written at the end)."""
    from evostreaming.utils.jobs import ensure_writable

    if json_out.is_dir():
        raise typer.BadParameter(f"--json {json_out} is a folder; give a file name in it ({json_out / 'out.json'})")
    try:
        ensure_writable(json_out.parent, "--json")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
