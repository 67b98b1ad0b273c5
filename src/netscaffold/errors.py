"""One error hierarchy for the whole package.

Callers catch by meaning: :class:`ValidationError` (bad input: a file, a payload, a plan) carries where the
problem is and why; :class:`BackendError` is a failure of the machinery that applies plans. The CLI maps
every :class:`NetscaffoldError` to one readable line and the exit code in :attr:`exit_code`.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: any of file, line, element (node / link / item id) and field."""

    file: str | None = None
    line: int | None = None
    element: str | None = None
    field: str | None = None

    def merged(self, other: Location) -> Location:
        """This location with the gaps filled from ``other``."""
        return Location(
            file=self.file if self.file is not None else other.file,
            line=self.line if self.line is not None else other.line,
            element=self.element if self.element is not None else other.element,
            field=self.field if self.field is not None else other.field,
        )

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.element is not None:
            parts.append(self.element)
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts)


class NetscaffoldError(Exception):
    """Base of every error netscaffold raises on purpose."""

    exit_code = EXIT_FAILURE


class ValidationError(NetscaffoldError, ValueError):
    """Input that netscaffold refuses: says where (file, line, element, field) and why."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        element: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.location = Location(file=file, line=line, element=element, field=field)
        super().__init__(self._render())

    def _render(self) -> str:
        where = str(self.location)
        return f"{where}: {self.reason}" if where else self.reason

    def at(
        self,
        *,
        file: str | None = None,
        line: int | None = None,
        element: str | None = None,
        field: str | None = None,
    ) -> ValidationError:
        """Add location details the raiser did not know (for example the file); returns ``self``."""
        extra = Location(file=file, line=line, element=element, field=field)
        self.location = self.location.merged(extra)
        self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class TopologyError(ValidationError):
    """A topology (file or object) that is malformed or inconsistent."""


class TrafficError(ValidationError):
    """A traffic matrix series or workload input that is malformed."""


class ConfigError(ValidationError):
    """A configuration file, environment variable, scenario or option with a bad value."""


class PlanError(ValidationError):
    """A plan that would over-commit a link, break a confirmed item or exceed a budget."""


class CheckpointError(ValidationError):
    """A model checkpoint that is corrupt, truncated or incompatible."""


class BackendError(NetscaffoldError):
    """A backend failed to apply, read or tear down; ``item`` names the plan item when known."""

    def __init__(self, reason: str, *, item: str | None = None, backend: str | None = None) -> None:
        self.reason = reason
        self.item = item
        self.backend = backend
        prefix = ": ".join(p for p in (backend, item) if p)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


class BackendUnavailableError(BackendError):
    """The backend cannot be used here (missing facility, not root, not built yet)."""

    exit_code = EXIT_BAD_INPUT
