"""The CSV shape of tasks, shared by the export and the import so that an export imports back.

Cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
carriage return) are exported behind an apostrophe, which the import removes again.
"""

from __future__ import annotations

import csv
import io

IMPORT_COLUMNS = ("title", "description", "status", "priority", "due_at", "tags")
# Written by the export and ignored by the import, so an exported file imports as is.
EXPORT_ONLY_COLUMNS = ("id", "created_at", "updated_at", "completed_at")
EXPORT_COLUMNS = ("id", *IMPORT_COLUMNS, "created_at", "updated_at", "completed_at")
TAG_SEPARATOR = ";"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: str) -> str:
    """``value`` made inert for spreadsheets (CSV injection)."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def unescape_cell(value: str) -> str:
    """The inverse of ``escape_cell``."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_STARTS):
        return value[1:]
    return value


def decode(data: bytes) -> str:
    """The file as text: UTF-8, with or without the byte-order mark spreadsheets write."""
    return data.decode("utf-8-sig")


def header_problems(text: str) -> list[str]:
    """What is wrong with the header row of ``text`` (empty when it is fine)."""
    header = next(csv.reader(io.StringIO(text, newline="")), None)
    if not header or not any(cell.strip() for cell in header):
        return ["The file is empty; the first row must name the columns (at least title)."]
    names = [cell.strip().lower() for cell in header]
    problems = []
    unknown = [name for name in names if name not in IMPORT_COLUMNS + EXPORT_ONLY_COLUMNS]
    if unknown:
        problems.append(f"Unknown columns: {', '.join(unknown)}. Use: {', '.join(IMPORT_COLUMNS)}.")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        problems.append(f"Columns named twice: {', '.join(duplicated)}.")
    if "title" not in names:
        problems.append("The title column is missing.")
    return problems
