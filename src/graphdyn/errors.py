"""User-facing errors.

Every problem a user can cause (a missing file, a bad field, an unknown config key) is a
:class:`GraphdynError`. The CLI prints its message on one line and exits with code 2; the
library lets it propagate. The message names the file, the field and the problem.
"""

from __future__ import annotations

from pathlib import Path


class GraphdynError(Exception):
    """A problem with the user's input, reported as one line."""

    exit_code = 2

    def __init__(self, problem: str, *, path: str | Path | None = None, field: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.field = field
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)
