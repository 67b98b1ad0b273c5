"""Reading the workload CSV files with errors that name the file, the line and the column."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from netscaffold.errors import TrafficError


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    cells: dict[str, str]


class CsvReader:
    """A header line naming columns, then rows; comment lines start with ``#``; blank lines skipped."""

    def __init__(self, path: Path, *, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
        self.path = path
        self.required = required
        self.optional = optional
        self.columns: tuple[str, ...] = ()

    def fail(self, reason: str, line: int | None = None, column: str | None = None) -> TrafficError:
        return TrafficError(reason, file=str(self.path), line=line, field=column)

    def rows(self) -> Iterator[CsvRow]:
        try:
            handle = self.path.open(encoding="utf-8", newline="")
        except OSError as exc:
            raise self.fail(f"cannot read: {exc.strerror}") from None
        with handle:
            try:
                yield from self._rows(handle)
            except UnicodeDecodeError:
                raise self.fail("not a UTF-8 text file") from None
            except csv.Error as exc:
                raise self.fail(f"malformed CSV: {exc}") from None

    def _lines(self, handle: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(handle, skipinitialspace=True)
        for record in reader:
            if not record or all(not c.strip() for c in record) or record[0].lstrip().startswith("#"):
                continue
            yield reader.line_num, [c.strip() for c in record]

    def _rows(self, handle: Iterator[str]) -> Iterator[CsvRow]:
        lines = self._lines(handle)
        header = next(lines, None)
        if header is None:
            raise self.fail("empty file: a header line is needed")
        header_line, names = header
        self._check_header(header_line, names)
        self.columns = tuple(names)
        for line, values in lines:
            if len(values) > len(names):
                raise self.fail(f"{len(values)} values for {len(names)} columns", line)
            cells = dict(zip(names, values, strict=False))
            for name in self.required:
                if not cells.get(name):
                    raise self.fail("missing value", line, name)
            yield CsvRow(line, cells)

    def _check_header(self, line: int, names: list[str]) -> None:
        known = self.required + self.optional
        for name in names:
            if name not in known:
                raise self.fail(f"unknown column {name!r} (known: {', '.join(known)})", line, name)
        if len(set(names)) != len(names):
            raise self.fail("duplicate column", line)
        for name in self.required:
            if name not in names:
                raise self.fail(f"missing column {name!r} (header: {', '.join(names)})", line, name)

    def number(
        self, row: CsvRow, column: str, *, minimum: float | None = None, strict: bool = False
    ) -> float:
        """The cell as a finite float (NaN when the optional cell is empty); checks the lower bound."""
        text = row.cells.get(column, "")
        if not text:
            return math.nan
        try:
            value = float(text)
        except ValueError:
            raise self.fail(f"not a number: {text!r}", row.line, column) from None
        if not math.isfinite(value):
            raise self.fail(f"not a finite number: {text!r}", row.line, column)
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            relation = ">" if strict else ">="
            raise self.fail(f"must be {relation} {minimum:g}, got {text}", row.line, column)
        return value
