"""Spreadsheets (.xlsx) and delimited text (.csv, .tsv) as text sections.

One page per sheet (a CSV file is one sheet). Each row is written with its header, as in
"Region: North; Quarter: Q3; Revenue: 1200", so that a cell is found by what its column means
and every chunk stands on its own; long sheets are cut into sections of ROWS_PER_SECTION rows.
Workbooks are streamed (openpyxl's read-only mode) and refused past the cell limit.
"""

from __future__ import annotations

import csv
import datetime
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator
from io import BytesIO
from pathlib import PureWindowsPath

import openpyxl
from openpyxl.utils import get_column_letter

from retrieval.errors import CorruptDocumentError, EmptyDocumentError, ParseError, TooLargeError
from retrieval.limits import ParseLimits, guard_archive
from retrieval.markup import labelled_row
from retrieval.parsing import _clean_text, _title
from retrieval.types import ParsedDocument, Section

logger = logging.getLogger(__name__)

ROWS_PER_SECTION = 50
_CSV_SUFFIXES = (".csv", ".tsv")


def looks_like_csv(text: str, filename: str) -> bool:
    """Tell whether text named .csv or .tsv holds delimited rows (the name alone is not enough)."""
    if PureWindowsPath(filename).suffix.lower() not in _CSV_SUFFIXES:
        return False
    lines = [line for line in text[:8192].splitlines()[:20] if line.strip()]
    return bool(lines) and not lines[0].lstrip().startswith("<")


def parse_csv(text: str, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Read delimited text (the delimiter is sniffed) as one sheet; page 1."""
    sample = text[:16384]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if filename.lower().endswith(".tsv") else csv.excel
    try:
        rows = csv.reader(text.splitlines(), dialect)
        sections = list(_sheet_sections(rows, 1, (), _counter(limits), _column_number))
    except csv.Error as error:
        raise CorruptDocumentError(f"The CSV file could not be read: {error}.") from error
    if not sections:
        raise EmptyDocumentError("The CSV file holds no values.")
    return ParsedDocument("csv", _title(filename), sections, 1)


def parse_xlsx(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Read every worksheet of a workbook as one page; raise TooLargeError past the limits."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            guard_archive(archive, limits, "Excel workbook")
        workbook = openpyxl.load_workbook(BytesIO(data), read_only=True, data_only=True)
        try:
            return _workbook_document(workbook, filename, limits)
        finally:
            workbook.close()
    except ParseError:
        raise
    except Exception as error:
        logger.warning("Unreadable workbook %r: %r", filename, error)
        raise CorruptDocumentError(
            "The Excel workbook is damaged and could not be read."
        ) from error


def _workbook_document(workbook, filename: str, limits: ParseLimits) -> ParsedDocument:
    sections: list[Section] = []
    count = _counter(limits)
    for number, sheet in enumerate(workbook.worksheets, start=1):
        if (sheet.max_row or 0) * (sheet.max_column or 0) > limits.sheet_cells:
            raise _too_many_cells(limits)  # as the sheet's own dimensions say
        rows = sheet.iter_rows(values_only=True)
        sections += _sheet_sections(rows, number, (sheet.title,), count, get_column_letter)
    if not sections:
        raise EmptyDocumentError("The workbook holds no values.")
    title = _title(filename, workbook.properties.title)
    return ParsedDocument("xlsx", title, sections, len(workbook.worksheets))


def _sheet_sections(
    rows: Iterable[Iterable[object]],
    page: int,
    heading_path: tuple[str, ...],
    count: Iterator[None],
    column_name: Callable[[int], str],
) -> Iterator[Section]:
    """Write rows under the first non-empty row's headers, ROWS_PER_SECTION rows a section."""
    header: list[str] | None = None
    lines: list[str] = []
    for row in rows:
        cells = []
        for value in row:
            next(count)
            cells.append(_cell_text(value))
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        lines.append(_row_text(header, cells, column_name))
        if len(lines) == ROWS_PER_SECTION:
            yield Section(_clean_text("\n".join(lines)), page, heading_path)
            lines = []
    if lines:
        yield Section(_clean_text("\n".join(lines)), page, heading_path)
    elif header:  # a sheet of one row
        yield Section(_clean_text("; ".join(cell for cell in header if cell)), page, heading_path)


def _row_text(header: list[str], cells: list[str], column_name: Callable[[int], str]) -> str:
    """ "Header: value; Header: value" for the row's non-empty cells; a column without a header
    is named by column_name (its letter in a workbook)."""
    names = [name or column_name(n + 1) for n, name in enumerate(header)]
    names += [column_name(n + 1) for n in range(len(names), len(cells))]
    return labelled_row(names, cells)


def _cell_text(value: object) -> str:
    """A cell's value as a user would read it: 25 rather than 25.0, dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return " ".join(str(value).split())


def _column_number(number: int) -> str:
    return f"Column {number}"


def _counter(limits: ParseLimits) -> Iterator[None]:
    """Yields once per cell read; raises TooLargeError past the cell limit."""
    for _ in range(limits.sheet_cells):
        yield None
    raise _too_many_cells(limits)


def _too_many_cells(limits: ParseLimits) -> TooLargeError:
    return TooLargeError(
        f"The spreadsheet has more than {limits.sheet_cells:,} cells; split it into smaller files."
    )
