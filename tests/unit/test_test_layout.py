"""How the tests are laid out: what several tests share lives in a module of helpers (or a
conftest for fixtures), never in another test module, so that each test module can be read,
run and removed alone."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
IMPORT_OF_A_TEST_MODULE = re.compile(r"^\s*(from|import)\s+tests\.(\w+\.)*test_\w+", re.M)


def test_no_test_module_imports_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}: {match.group(0).strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        for match in IMPORT_OF_A_TEST_MODULE.finditer(path.read_text())
    ]
    assert offenders == []
