"""`serve --log-format json`: every record is one JSON object with ts, level, logger and msg, plus
the transfer and trace ids when the log call names them."""

from __future__ import annotations

import json
import logging
import sys

from eventsource.adapters.log_format import JsonFormatter


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "natsbank.service", logging.WARNING, __file__, 1, "dead %s", ("x",), None
    )
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_line() -> None:
    line = JsonFormatter().format(record())
    assert "\n" not in line
    decoded = json.loads(line)
    assert decoded["level"] == "WARNING" and decoded["logger"] == "natsbank.service"
    assert decoded["msg"] == "dead x" and decoded["ts"].endswith("+00:00")
    assert "transfer_id" not in decoded


def test_the_transfer_and_trace_ids_are_fields() -> None:
    decoded = json.loads(JsonFormatter().format(record(transfer_id="t-1", trace_id="ab" * 16)))
    assert decoded["transfer_id"] == "t-1" and decoded["trace_id"] == "ab" * 16


def test_an_exception_stays_on_the_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        made = record()
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line and "boom" in json.loads(line)["exc"]
