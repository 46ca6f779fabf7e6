"""A proxy participant's link to its remote bank over core NATS (core/remote.py): ask for
verdicts, relay finals, wait for every key's answer, ask again for the keys whose answer was
lost, and ignore duplicate and late answers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.subscriptions import unsubscribe_quietly
from eventsource.core.errors import RemoteUnanswered
from eventsource.core.limits import REMOTE_ROUNDS_MAX, REMOTE_WAITING_KEYS_MAX
from eventsource.core.remote import (
    Ask,
    AskedCredit,
    Finals,
    RelayedFinal,
    RemoteAnswer,
    RemotePlan,
    TimedOut,
    Verdict,
    answer_subject,
    answers_decoder,
    ask_subject,
)

log = logging.getLogger("natsbank.remote")


@dataclass
class LinkStats:
    remote_asks: int = 0  # ask messages sent (a batch each), first asks and asks again
    remote_asked_again: int = 0  # keys asked again after their answer did not come in time
    remote_finals: int = 0  # final messages sent (a batch each)
    remote_answers_unawaited: int = 0  # duplicates, and answers after their wait ended (kept)
    remote_timeouts: int = 0  # keys the proxy declined itself (REMOTE_TIMEOUT), opt-in


class RemoteLink:
    def __init__(self, nc: Client, participant: str, plan: RemotePlan) -> None:
        self.nc = nc
        self.participant = participant
        self.plan = plan
        self.stats = LinkStats()
        self._reply = answer_subject(participant, uuid.uuid4().hex[:16])
        self._sub = None
        # (a receipt of a final?, key) -> the answer awaited
        self._waiting: dict[tuple[bool, str], asyncio.Future[RemoteAnswer]] = {}
        self._first_asked_ms: dict[str, float] = {}  # for decide_after_ms only
        # Answers that came after their wait ended: the remote bank answers a key alike every
        # time, so the next exchange of that key takes it at once. Without them a remote bank
        # slower than REMOTE_ROUNDS_MAX asks would never be heard.
        self._late: dict[tuple[bool, str], RemoteAnswer] = {}

    async def verdicts(self, credits: Sequence[AskedCredit]) -> dict[str, Verdict]:
        """The remote bank's verdict on every credit. Raises RemoteUnanswered after
        REMOTE_ROUNDS_MAX asks, unless the plan lets the proxy decline a key that has waited
        `decide_after_ms` since its first ask (then that key's verdict is TimedOut)."""
        now_ms = _now_ms()
        if len(self._first_asked_ms) > REMOTE_WAITING_KEYS_MAX:
            self._first_asked_ms.clear()  # abandoned keys: their wait starts again, no harm
        for credit in credits:
            self._first_asked_ms.setdefault(credit.key, now_ms)
        after = self.plan.decide_after_ms
        until_ms = min(self._first_asked_ms[c.key] for c in credits) + after if after else None
        answered, missing = await self._exchange(
            {c.key: c for c in credits}, lambda items: Ask(credits=items), until_ms
        )
        found: dict[str, Verdict] = dict(answered)
        now_ms = _now_ms()
        for key in answered:
            self._first_asked_ms.pop(key, None)
        for key in missing:
            waited = now_ms - self._first_asked_ms.get(key, now_ms)
            if after and waited >= after:
                found[key] = TimedOut(key=key, waited_ms=waited)
                self._first_asked_ms.pop(key, None)
                self.stats.remote_timeouts += 1
        if len(found) < len(credits):
            raise RemoteUnanswered(f"remote bank of {self.participant}: {len(missing)} unanswered")
        return found

    async def relay(self, finals: Sequence[RelayedFinal]) -> None:
        """Tell the remote bank every final, until it has noted each one (at least once)."""
        _, missing = await self._exchange(
            {f.key: f for f in finals}, lambda items: Finals(finals=items)
        )
        if missing:
            raise RemoteUnanswered(
                f"remote bank of {self.participant}: {len(missing)} finals not noted"
            )

    async def _exchange(
        self, items: dict, batch, until_ms: float | None = None
    ) -> tuple[dict[str, RemoteAnswer], list[str]]:
        """Send the items (one batch message), wait, send the unanswered again; the answers by
        key and the keys still unanswered after the last round (or once `until_ms`, monotonic,
        has passed: the proxy may then decide for the remote bank). Asks and finals wait apart: a
        late answer to an ask never passes for the receipt of a final."""
        await self._subscribe()
        receipt = any(isinstance(item, RelayedFinal) for item in items.values())
        answered = {k: a for k in items if (a := self._late.pop((receipt, k), None)) is not None}
        try:
            for round_number in range(REMOTE_ROUNDS_MAX):
                missing = [k for k in items if k not in answered]
                if not missing or (until_ms is not None and _now_ms() >= until_ms):
                    break
                if round_number:
                    self.stats.remote_asked_again += len(missing)
                futures = {k: self._future((receipt, k)) for k in missing}
                message = batch([items[k] for k in missing])
                if isinstance(message, Ask):
                    self.stats.remote_asks += 1
                else:
                    self.stats.remote_finals += 1
                await self.nc.publish(
                    ask_subject(self.participant),
                    msgspec.json.encode(message),
                    reply=self._reply,
                )
                done, _ = await asyncio.wait(futures.values(), timeout=self.plan.timeout_ms / 1000)
                for key, future in futures.items():
                    if future in done:
                        answered[key] = future.result()
        finally:
            for key in items:
                future = self._waiting.pop((receipt, key), None)
                if future is not None and not future.done():
                    future.cancel()
        return answered, [k for k in items if k not in answered]

    def _future(self, key: tuple[bool, str]) -> asyncio.Future[RemoteAnswer]:
        future = self._waiting.get(key)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._waiting[key] = future
        return future

    async def _subscribe(self) -> None:
        if self._sub is None:
            self._sub = await self.nc.subscribe(self._reply, cb=self._on_answers)

    async def _on_answers(self, msg: Msg) -> None:
        try:
            answers = answers_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("undecodable answer from the remote bank: %s", exc)
            return
        for answer in answers.answers:
            key = (answer.noted, answer.key)
            future = self._waiting.get(key)
            if future is None or future.done():
                self.stats.remote_answers_unawaited += 1  # a duplicate, or after its wait ended
                if len(self._late) >= REMOTE_WAITING_KEYS_MAX:
                    self._late.clear()  # at worst those keys are asked again
                self._late[key] = answer
                continue
            future.set_result(answer)

    async def close(self) -> None:
        await unsubscribe_quietly(self._sub)
        self._sub = None


def _now_ms() -> float:
    return time.monotonic() * 1000
