"""Money is exact: decimal strings on the wire, integers in minor units inside (DESIGN 2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.currencies import CURRENCY_EXPONENTS
from eventsource.core.errors import DomainError, InvalidAmount, RejectionCause, UnknownCurrency
from eventsource.core.money import (
    MAX_MINOR,
    exponent_of,
    format_amount,
    parse_amount,
    parse_balance,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
minor_units = st.integers(min_value=1, max_value=MAX_MINOR)


def test_iso_exponents_of_the_currencies_the_rules_name():
    assert (exponent_of("EUR"), exponent_of("JPY"), exponent_of("BHD"), exponent_of("CLF")) == (
        2,
        0,
        3,
        4,
    )


@settings(max_examples=300)
@given(currency=currencies, minor=minor_units)
def test_format_then_parse_gives_back_the_same_minor_units(currency, minor):
    text = format_amount(minor, currency)
    assert parse_amount(text, currency) == minor
    decimals = text.partition(".")[2]
    assert len(decimals) == CURRENCY_EXPONENTS[currency]


@settings(max_examples=300)
@given(
    currency=currencies,
    whole=st.integers(min_value=0, max_value=10**12),
    fraction=st.text(alphabet="0123456789", max_size=4),
)
def test_parse_then_format_gives_the_canonical_form_of_the_same_value(currency, whole, fraction):
    exponent = CURRENCY_EXPONENTS[currency]
    fraction = fraction[:exponent]
    text = f"{whole}.{fraction}" if fraction else str(whole)
    value = Decimal(text)
    if value == 0:
        with pytest.raises(InvalidAmount):
            parse_amount(text, currency)
        return
    minor = parse_amount(text, currency)
    assert minor == value * 10**exponent
    assert Decimal(format_amount(minor, currency)) == value


@settings(max_examples=200)
@given(currency=currencies, minor=st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR))
def test_balances_round_trip_including_zero_and_negative(currency, minor):
    assert parse_balance(format_amount(minor, currency), currency) == minor


def test_the_largest_amount_is_two_to_the_63_minus_one_minor_units():
    assert parse_amount("92233720368547758.07", "EUR") == MAX_MINOR == 2**63 - 1
    assert parse_amount(str(MAX_MINOR), "JPY") == MAX_MINOR


def test_a_forty_character_amount_is_still_read():
    assert parse_amount("0" * 37 + "1.5", "EUR") == 150


def test_leading_zeros_and_missing_decimals_are_read_exactly():
    assert parse_amount("010.5", "EUR") == 1050
    assert parse_amount("10", "EUR") == 1000
    assert parse_amount("0.001", "BHD") == 1


REFUSED_AMOUNTS = [
    pytest.param(10.5, "EUR", "a number", id="float"),
    pytest.param(10, "EUR", "a number", id="int"),
    pytest.param(True, "EUR", "a number", id="bool"),
    pytest.param(None, "EUR", "NoneType", id="null"),
    pytest.param("NaN", "EUR", "plain positive decimal", id="nan"),
    pytest.param("nan", "EUR", "plain positive decimal", id="nan-lower"),
    pytest.param("Infinity", "EUR", "plain positive decimal", id="infinity"),
    pytest.param("inf", "EUR", "plain positive decimal", id="inf"),
    pytest.param("-1.00", "EUR", "plain positive decimal", id="negative"),
    pytest.param("+1.00", "EUR", "plain positive decimal", id="plus-sign"),
    pytest.param("0", "EUR", "greater than zero", id="zero"),
    pytest.param("0.00", "EUR", "greater than zero", id="zero-with-decimals"),
    pytest.param("0.000", "BHD", "greater than zero", id="zero-bhd"),
    pytest.param("1.001", "EUR", "3 decimals; EUR allows 2", id="eur-3-decimals"),
    pytest.param("1.00", "JPY", "2 decimals; JPY allows 0", id="jpy-decimals"),
    pytest.param("1.0", "JPY", "1 decimals; JPY allows 0", id="jpy-one-decimal"),
    pytest.param("1.0001", "BHD", "4 decimals; BHD allows 3", id="bhd-4-decimals"),
    pytest.param("1e3", "EUR", "plain positive decimal", id="exponent"),
    pytest.param("1E3", "EUR", "plain positive decimal", id="exponent-upper"),
    pytest.param("1.5e-1", "EUR", "plain positive decimal", id="exponent-fraction"),
    pytest.param(" 1.00", "EUR", "plain positive decimal", id="leading-space"),
    pytest.param("1.00\n", "EUR", "plain positive decimal", id="trailing-newline"),
    pytest.param("1 000.00", "EUR", "plain positive decimal", id="inner-space"),
    pytest.param("1_000", "EUR", "plain positive decimal", id="underscore"),
    pytest.param("1,00", "EUR", "plain positive decimal", id="comma"),
    pytest.param(".5", "EUR", "plain positive decimal", id="no-whole-part"),
    pytest.param("5.", "EUR", "plain positive decimal", id="dangling-point"),
    pytest.param("", "EUR", "plain positive decimal", id="empty"),
    pytest.param("١٠", "EUR", "plain positive decimal", id="arabic-indic-digits"),
    pytest.param("１０", "EUR", "plain positive decimal", id="fullwidth-digits"),
    pytest.param("1.٥", "EUR", "plain positive decimal", id="unicode-decimal-digit"),
    pytest.param("92233720368547758.08", "EUR", "too large", id="2**63-minor-eur"),
    pytest.param(str(2**63), "JPY", "too large", id="2**63-minor-jpy"),
    pytest.param("9" * 40, "EUR", "too large", id="forty-nines"),
    pytest.param("0" * 38 + "1.5", "EUR", "too long", id="41-characters"),
    pytest.param("1" * 10_000, "EUR", "too long", id="huge-string"),
]


@pytest.mark.parametrize(("amount", "currency", "why"), REFUSED_AMOUNTS)
def test_refused_amounts_are_invalid_amount_with_a_clear_reason(amount, currency, why):
    with pytest.raises(InvalidAmount, match=why) as refused:
        parse_amount(amount, currency)
    assert refused.value.cause is RejectionCause.INVALID_AMOUNT


@pytest.mark.parametrize("currency", ["XXX", "eur", "EURO", "", "EU", None, 978])
def test_unknown_currencies_are_refused_as_unknown_currency(currency):
    with pytest.raises(UnknownCurrency) as refused:
        parse_amount("1.00", currency)
    assert refused.value.cause is RejectionCause.UNKNOWN_CURRENCY


def test_an_unknown_currency_is_named_before_the_amount_is_judged():
    with pytest.raises(UnknownCurrency):
        parse_amount(1.5, "XXX")


def test_money_refusals_are_domain_errors_so_they_become_rejected_outcomes():
    assert issubclass(InvalidAmount, DomainError)
    assert issubclass(UnknownCurrency, DomainError)


def test_format_amount_writes_exactly_the_currency_exponent():
    assert format_amount(1050, "EUR") == "10.50"
    assert format_amount(5, "EUR") == "0.05"
    assert format_amount(1050, "JPY") == "1050"
    assert format_amount(1, "BHD") == "0.001"
    assert format_amount(0, "EUR") == "0.00"
    assert format_amount(-5, "EUR") == "-0.05"
