"""The ``dataward`` command."""

import typer

app = typer.Typer(no_args_is_help=True, help="Keep poisoned data out of your models.")


@app.command()
def version() -> None:
    """Print the installed version."""
    from dataward import __version__

    typer.echo(__version__)


def main() -> None:
    app()
