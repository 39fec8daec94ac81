"""The one error type users see for bad input.

Every problem with a user's file is raised as :class:`InputError`, naming the
file and the row or field at fault. The CLI prints it as a single line and
exits with status 2.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad user input: ``<path>: <where>: <message>``.

    ``where`` names the row (``row 12``), the field (``column 'time'``) or
    both; ``hint`` says how to fix it when that is not obvious.
    """

    def __init__(self, path, where: str | None, message: str, hint: str | None = None):
        self.path = str(path)
        self.where = where
        self.message = message
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        parts = [self.path]
        if self.where:
            parts.append(self.where)
        parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text += f" ({self.hint})"
        return text


def cli_errors(fn):
    """Decorate a click command: an InputError becomes one line on stderr and exit status 2."""
    import functools
    import sys

    import click

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            click.echo(f"error: {err.line()}", err=True)
            sys.exit(2)

    return wrapper
