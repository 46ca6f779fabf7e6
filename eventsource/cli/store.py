"""`--store independent|shared` (env NATSBANK_STORE), for every command it applies to."""

from __future__ import annotations

import enum

import typer

from eventsource.core.errors import UsageError
from eventsource.settings import Settings


class Store(enum.StrEnum):
    INDEPENDENT = "independent"
    SHARED = "shared"


def store_option():
    return typer.Option(
        None,
        "--store",
        help="independent (default): each participant's own ledger and the three-phase "
        "protocol; shared: all accounts in one stream, one atomic step per transfer "
        "(env NATSBANK_STORE).",
    )


def chosen_store(config: Settings) -> Store:
    try:
        return Store(config.store)
    except ValueError:
        raise UsageError(f"unknown store {config.store!r:.40}: use independent or shared") from None


def is_shared(config: Settings) -> bool:
    return chosen_store(config) is Store.SHARED
