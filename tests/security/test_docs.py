"""docs/security.md names the tests that prove each risk; none of them may silently disappear."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
RISKS = [f"API{number} " for number in range(1, 11)]


def named_tests() -> set[tuple[str, str]]:
    """(file, test function) pairs named in the document."""
    return set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", DOC.read_text()))


def test_the_document_covers_the_ten_risks() -> None:
    text = DOC.read_text()

    assert all(f"**{risk}" in text for risk in RISKS)


def test_every_test_it_names_exists() -> None:
    missing = []
    for file, name in sorted(named_tests()):
        path = ROOT / file
        functions = (
            {
                node.name
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef)
            }
            if path.exists()
            else set()
        )
        if name not in functions:
            missing.append(f"{file}::{name}")

    assert len(named_tests()) > 60
    assert missing == []
