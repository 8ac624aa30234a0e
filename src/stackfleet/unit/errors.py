"""Errors of unit parsing: each one names the file, the line and, when we know it, the fix."""
from __future__ import annotations


class UnitError(Exception):
    """One problem in one unit file.

    line is 1-based; 0 means the problem is not tied to one line (a missing
    file, a missing setting, a bad unit name).
    """

    def __init__(self, path: str, line: int, message: str, hint: str | None = None) -> None:
        self.path = path
        self.line = line
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def __repr__(self) -> str:
        return f"UnitError({self.path!r}, {self.line}, {self.message!r}, {self.hint!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitError):
            return NotImplemented
        return (self.path, self.line, self.message, self.hint) == (
            other.path, other.line, other.message, other.hint)

    def __hash__(self) -> int:
        return hash((self.path, self.line, self.message, self.hint))


class UnitInvalid(Exception):
    """Every problem found in one unit, so the user can fix them in one pass."""

    def __init__(self, errors: list[UnitError]) -> None:
        if not errors:
            raise ValueError("UnitInvalid needs at least one error")
        self.errors = list(errors)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class Problem(Exception):
    """A finding of a pure check, before it is placed at a path and line."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def at(self, path: str, line: int) -> UnitError:
        return UnitError(path, line, self.message, self.hint)
