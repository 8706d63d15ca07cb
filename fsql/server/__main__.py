"""``python -m fsql.server --store PATH [serve options]``."""

from __future__ import annotations

import sys

import click

from fsql.server.cli import serve


class _State:
    def __init__(self, store_path: str) -> None:
        self.store_path = store_path


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--store", "store_path", envvar="FSQL_STORE", default="./fsql-store")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def main(ctx: click.Context, store_path: str, args: tuple[str, ...]) -> None:
    ctx.obj = _State(store_path)
    rest = list(args)
    if rest[:1] == ["serve"]:  # `python -m fsql.server --store S serve --port P` reads as the CLI
        rest = rest[1:]
    with serve.make_context("serve", rest, parent=ctx) as sub:
        sub.obj = ctx.obj
        serve.invoke(sub)


if __name__ == "__main__":
    main(prog_name="python -m fsql.server", args=sys.argv[1:])
