"""Exceptions raised by loyalty_rules.

They are defined here, in Python, and raised from the native module with
a payload dict: the core's error JSON (``kind``, ``message``, ``field``,
``diagnostics``) plus ``rendered`` (the same text as the Rust CLI) and,
for batch input, ``row``.

Offsets (``start``/``end``) are code-point offsets into the program
source, so ``source[d.start:d.end]`` is the span; ``line`` and ``column``
are 1-based, columns counted in code points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Diagnostic",
    "LoyaltyRulesError",
    "ProgramError",
    "EventError",
    "CustomerError",
]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a program's source."""

    severity: str
    kind: str
    message: str
    hint: str | None
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnostic:
        return cls(
            severity=d["severity"],
            kind=d["kind"],
            message=d["message"],
            hint=d.get("hint"),
            line=d["line"],
            column=d["column"],
            end_line=d["end_line"],
            end_column=d["end_column"],
            start=d["start"],
            end=d["end"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "message": self.message,
            "hint": self.hint,
            "start": self.start,
            "end": self.end,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


class LoyaltyRulesError(Exception):
    """Base class of every error from loyalty_rules.

    ``kind`` is the core's machine-readable kind (``syntax``,
    ``unknown_field``, ``invalid_event``, ...); ``payload`` is the full
    error as a dict (the core's ``Error::to_json()`` shape).
    """

    kind: str
    message: str
    payload: dict[str, Any]

    def __init__(self, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.payload = dict(payload or {})
        self.message = message
        self.kind = str(self.payload.get("kind", "error"))

    def to_dict(self) -> dict[str, Any]:
        """The core's error JSON shape (kind, message, field?, diagnostics)."""
        return {k: v for k, v in self.payload.items() if k not in ("rendered", "row")}


class ProgramError(LoyaltyRulesError, ValueError):
    """A program that does not parse or does not type-check.

    ``line``, ``column``, ``message``, ``hint`` describe the first error;
    ``diagnostics`` lists all of them. ``str(err)`` is the rendered
    snippet, as the Rust CLI prints it.
    """

    diagnostics: list[Diagnostic]
    line: int
    column: int
    end_line: int
    end_column: int
    hint: str | None
    rendered: str

    def __init__(self, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message, payload)
        self.diagnostics = [Diagnostic.from_dict(d) for d in self.payload.get("diagnostics", [])]
        first = next(
            (d for d in self.diagnostics if d.severity == "error"),
            self.diagnostics[0] if self.diagnostics else None,
        )
        self.rendered = str(self.payload.get("rendered", message))
        if first is not None:
            self.message = first.message
            self.line, self.column = first.line, first.column
            self.end_line, self.end_column = first.end_line, first.end_column
            self.hint = first.hint
        else:
            self.line = self.column = self.end_line = self.end_column = 0
            self.hint = None
        self.summary = message

    def __str__(self) -> str:
        return self.rendered.rstrip("\n")

    def render(self) -> str:
        """All diagnostics with source snippets (identical to the Rust CLI)."""
        return self.rendered


class EventError(LoyaltyRulesError, ValueError):
    """An event that does not match the program's schema.

    ``field`` is the path of the offending field (``items[2].price``);
    ``row`` is the 0-based input row for tables and lists (else None).
    """

    field: str | None
    row: int | None

    def __init__(self, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message, payload)
        field = self.payload.get("field")
        row = self.payload.get("row")
        self.field = None if field is None else str(field)
        self.row = None if row is None else int(row)
        if self.row is not None and not message.startswith("row "):
            self.message = message
            self.args = (f"row {self.row}: {message}",)


class CustomerError(LoyaltyRulesError, ValueError):
    """A customer profile or state that does not match the program."""

    field: str | None
    row: int | None

    def __init__(self, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message, payload)
        field = self.payload.get("field")
        row = self.payload.get("row")
        self.field = None if field is None else str(field)
        self.row = None if row is None else int(row)
