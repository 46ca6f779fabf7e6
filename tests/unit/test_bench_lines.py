"""Counting code lines for the bench's store comparison: comments, docstrings and blank lines
do not count; a module's own code does."""

from __future__ import annotations

import pytest

from benchmark.lines import code_lines, protocol_lines

SOURCE = '''"""Module docstring,
on two lines."""

import os  # a comment


def f(x):
    """One-line docstring."""
    # a comment line
    y = (x +
         1)
    return """not a docstring"""
'''


def test_code_lines_skip_comments_docstrings_and_blanks():
    assert code_lines(SOURCE) == 5  # import, def, y = ( two lines ), return


def test_protocol_lines_count_every_listed_module_once():
    lines = protocol_lines()
    common = set(lines["common"]["modules"])
    for store in ("independent", "shared"):
        own = lines[store]["modules"]
        assert own and not set(own) & common
        assert lines[store]["own"] == sum(own.values()) > 0
        assert lines[store]["with_common"] == lines[store]["own"] + lines["common"]["total"]
        assert lines[store]["audit"] > 0


def test_protocol_lines_fail_loudly_on_a_module_that_is_gone(monkeypatch):
    from benchmark import lines

    monkeypatch.setattr(lines, "COMMON", (*lines.COMMON, "services/no_such_module.py"))
    with pytest.raises(FileNotFoundError, match="no_such_module"):
        lines.protocol_lines()
