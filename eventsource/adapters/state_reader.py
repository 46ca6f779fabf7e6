"""Current state for decisions: read from the ledger itself (the last event on a key's subject),
remembered after our own commits. Staleness is safe: every commit is guarded by the subjects'
expected sequences, and a stale commit is refused as a whole.

What is remembered is bounded twice: at most STATE_CACHE_KEYS keys, and, with a bounded history,
no key left untouched for longer than the live horizon (so that a service's memory follows the
horizon, not the history; forgetting is always safe, the ledger is read again)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from nats.aio.client import Client

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.registry import REGISTRY_STREAM
from eventsource.adapters.snapshot_verify import refold_problem
from eventsource.core.account import Account, snapshot_problem
from eventsource.core.errors import ReplicaBehind
from eventsource.core.events import (
    TransferState,
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.limits import REFOLD_READS_MAX, STATE_CACHE_KEYS
from eventsource.core.model import is_token
from eventsource.core.quarantine import Quarantined, decode_stored
from eventsource.core.snapshot_check import apply_entry
from eventsource.core.subjects import (
    PARTICIPANTS_BUCKET,
    is_reserved,
    ledger_stream,
    state_subject,
)

State = TransferState | Account
REFOLD_DIFFERS = "is not what the account's entries fold to"
log = logging.getLogger("natsbank.state")
_READS_IN_FLIGHT = 64


def decode_state(key: str, data: bytes) -> State:
    """The state an event's snapshot says; ValueError for an account snapshot that no fold
    can produce (`decode_stored` quarantines it)."""
    if key.split(".", 2)[1] == "acct":
        return checked_account(key, account_event_decoder.decode(data).state.to_account())
    return transfer_event_decoder.decode(data).state


def checked_account(key: str, account: Account) -> Account:
    problem = snapshot_problem(account, key)
    if problem is not None:
        raise ValueError(f"its account snapshot {problem}")
    return account


class StateReader:
    """Reads state to decide on. An account's snapshot read from the ledger (a cache miss) is
    trusted only if the account's entries fold to it (adapters/snapshot_verify.py), folded from
    the last state this reader trusted for the key when it still has one; what the service
    wrote itself (`remember`) is its own fold."""

    decode = staticmethod(decode_state)  # key, bytes -> state; the shared store's has its own
    apply_entry = staticmethod(apply_entry)  # the store's account rules, for the re-fold

    def __init__(
        self,
        nc: Client,
        partition: int,
        *,
        capacity: int = STATE_CACHE_KEYS,
        keep_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nc = nc
        self._partition = partition
        self._stream = ledger_stream(partition)
        # key -> ((state, sequence), when it was last put), least recently put first
        self._cache: OrderedDict[str, tuple[tuple[State | None, int], float]] = OrderedDict()
        self._capacity = capacity
        self._keep_s = keep_s  # None: keep until the capacity pushes it out
        self._clock = clock
        self._known: set[str] = set()
        self.quarantined: set[str] = set()  # keys whose last event does not decode
        self._gate = asyncio.Semaphore(_READS_IN_FLIGHT)

    async def load(
        self,
        keys: set[str],
        *,
        fresh: bool = False,
        likely_new: set[str] = frozenset(),
        stale: set[str] = frozenset(),
    ) -> dict[str, tuple]:
        """State and sequence per key; `fresh` skips the cache and asks the stream leader,
        for every key or (with `stale`) for those keys only.

        Keys in `likely_new` that are not cached are taken as absent without a read (their
        commit expects an empty subject, which proves it), unless `fresh`.
        """
        found: dict[str, tuple] = {}
        missing = []
        for key in keys | likely_new:
            cached = None if fresh or key in stale else self._cache.get(key)
            if cached is not None:
                found[key] = cached[0]
            elif key in likely_new and not fresh:
                found[key] = (None, 0)
            else:
                missing.append(key)
        results = await asyncio.gather(*(self._read(key, fresh or key in stale) for key in missing))
        for key, result in zip(missing, results, strict=True):
            found[key] = result
            self._put(key, result)
        return found

    def subject(self, key: str) -> str:
        return state_subject(self._partition, key)

    async def _read(self, key: str, leader: bool) -> tuple[State | None, int]:
        for attempt in range(REFOLD_READS_MAX):
            async with self._gate:
                last = await read_last(self._nc, self._stream, self.subject(key), leader=leader)
            if last is None:
                return None, 0
            data, seq = last
            state = self.decoded(key, data, seq)
            if not isinstance(state, Account):
                return state, seq
            try:
                return await self._refolded(key, state, seq), seq
            except ReplicaBehind:
                if attempt + 1 == REFOLD_READS_MAX:
                    raise
                leader = True  # the key moved on (a carried copy, a purge): read it again
        raise AssertionError("unreachable")

    async def _refolded(self, key: str, state: Account, seq: int) -> State | Quarantined:
        """`state` if the account's entries fold to it, else the key quarantined. The fold
        starts from the state last trusted for the key, if this reader still has it; should
        that fold differ, it is done again from the key's first live event (an archive run
        may have purged events since the trusted one) before the key is quarantined."""
        cached = self._cache.get(key)
        trusted = cached[0] if cached and isinstance(cached[0][0], Account) else None
        problem = await self._refold(key, seq, trusted)
        if problem is not None and trusted is not None:
            problem = await self._refold(key, seq, None)
        if problem is None:
            return state
        return self._quarantine(Quarantined(key, seq, f"{REFOLD_DIFFERS}: {problem}"))

    async def _refold(self, key: str, seq: int, trusted: tuple | None) -> str | None:
        async with self._gate:
            return await refold_problem(
                self._nc,
                self._stream,
                self.subject(key),
                key,
                seq,
                trusted=trusted,
                apply=self.apply_entry,
            )

    def decoded(self, key: str, data: bytes, seq: int) -> State | Quarantined:
        state = decode_stored(key, data, seq, functools.partial(self.decode, key))
        return self._quarantine(state) if isinstance(state, Quarantined) else state

    def _quarantine(self, state: Quarantined) -> Quarantined:
        if state.key not in self.quarantined:
            self.quarantined.add(state.key)
            log.warning("%s", state.describe(), extra={"quarantined": state.key})
        return state

    def remember(self, states: dict[str, State | None], seqs: dict[str, int]) -> None:
        for key, seq in seqs.items():
            self._put(key, (states[key], seq))

    def forget(self, keys: set[str]) -> None:
        for key in keys:
            self._cache.pop(key, None)

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def _put(self, key: str, value: tuple[State | None, int]) -> None:
        now = self._clock()
        self._cache[key] = (value, now)
        self._cache.move_to_end(key)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        if self._keep_s is None:
            return
        while self._cache and now - next(iter(self._cache.values()))[1] > self._keep_s:
            self._cache.popitem(last=False)

    async def known_participants(self, names: set[str]) -> frozenset[str]:
        """Registered participants among `names`; a miss is re-checked every time. A miss
        refuses a transfer for good (UNKNOWN_PARTICIPANT), so names not yet known are read
        from the registry's stream leader: a replica that is catching up may not have a
        registration yet. Reads, retried through transient unavailability."""
        unknown = sorted(n for n in names - self._known if is_token(n) and not is_reserved(n))
        found = await asyncio.gather(
            *(
                read_last(
                    self._nc, REGISTRY_STREAM, f"$KV.{PARTICIPANTS_BUCKET}.{name}", leader=True
                )
                for name in unknown
            )
        )
        self._known |= {name for name, last in zip(unknown, found, strict=True) if last}
        return frozenset(names & self._known)
