"""Exact money: decimal strings on the wire, integers in minor units inside.

Floats never enter: a JSON number, NaN, an exponent or a sign is refused with a clear cause.
"""

from __future__ import annotations

import re

from eventsource.core.currencies import CURRENCY_EXPONENTS
from eventsource.core.errors import InvalidAmount, UnknownCurrency

# Amounts must stay below 2**63 minor units so every language can hold them in a signed int64.
MAX_MINOR = 2**63 - 1
_MAX_TEXT = 40
_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


def exponent_of(currency: object) -> int:
    if not isinstance(currency, str) or currency not in CURRENCY_EXPONENTS:
        raise UnknownCurrency(
            f"unknown currency {str(currency)[:16]!r} (expected an ISO 4217 code)"
        )
    return CURRENCY_EXPONENTS[currency]


def parse_amount(text: object, currency: str) -> int:
    """Turn a positive decimal string like "10.50" into minor units (1050 for EUR)."""
    exponent = exponent_of(currency)
    if not isinstance(text, str):
        kind = "a number" if isinstance(text, int | float) else type(text).__name__
        raise InvalidAmount(f'amount must be a decimal string like "10.50", got {kind}')
    if len(text) > _MAX_TEXT:
        raise InvalidAmount(f"amount is too long ({len(text)} characters)")
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidAmount(f'amount {text!r} is not a plain positive decimal like "10.50"')
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise InvalidAmount(
            f"amount {text!r} has {len(fraction)} decimals; {currency} allows {exponent}"
        )
    minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    if minor <= 0:
        raise InvalidAmount(f"amount {text!r} must be greater than zero")
    if minor > MAX_MINOR:
        raise InvalidAmount(f"amount {text!r} is too large (limit is 2^63-1 minor units)")
    return minor


def format_amount(minor: int, currency: str) -> str:
    """The canonical decimal string: exactly `exponent` decimals, a minus sign only if negative."""
    exponent = exponent_of(currency)
    sign, value = ("-", -minor) if minor < 0 else ("", minor)
    if exponent == 0:
        return f"{sign}{value}"
    whole, fraction = divmod(value, 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}"


def parse_balance(text: str, currency: str) -> int:
    """Parse a canonical (possibly zero or negative) balance written by format_amount."""
    exponent = exponent_of(currency)
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    whole, _, fraction = digits.partition(".")
    value = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return -value if negative else value
