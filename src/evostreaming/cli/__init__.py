"""The ``evostreaming`` command line: a thin root over one module per command group."""

from __future__ import annotations

import sys

import typer

from evostreaming.cli import bench, eval, evolve, train, world
from evostreaming.cli.common import DEBUG, App
from evostreaming.cli.demo import demo
from evostreaming.cli.models import models
from evostreaming.cli.serve import connect, serve
from evostreaming.cli.stream import stream

app = App(
    help="EvoStreaming: offline VideoLLMs as streaming assistants, and RealStreamEval to measure them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(debug: bool = typer.Option(False, "--debug", help="show the full traceback of an error")) -> None:
    DEBUG["on"] = debug


app.command()(stream)
app.command()(demo)
app.command()(models)
app.command()(serve)
app.command()(connect)
app.add_typer(eval.app, name="eval")
app.add_typer(world.app, name="world")
app.add_typer(evolve.app, name="evolve")
app.add_typer(train.app, name="train")
app.add_typer(bench.app, name="bench")


def main() -> None:  # pragma: no cover
    sys.exit(app())
