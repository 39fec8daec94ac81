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
