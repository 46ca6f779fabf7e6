"""The simulated remote bank over core NATS: it answers a proxy's asks and notes its finals
(core/remote_bank.py decides), after `--remote-delay`, losing an answer with probability
`--remote-loss` and sending it twice with `--remote-duplicate`. Run inside `serve
--remote-bank simulated`, or alone as `natsbank remote-bank P`. Responders of one participant
share the asks in a queue group."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.subscriptions import unsubscribe_quietly
from eventsource.core.remote import (
    REMOTE_QUEUE,
    Answers,
    Ask,
    RemotePlan,
    ask_subject,
    link_decoder,
)
from eventsource.core.remote_bank import AnswerFates, RemoteBook

log = logging.getLogger("natsbank.remote_bank")


class RemoteBankResponder:
    def __init__(self, nc: Client, participant: str, plan: RemotePlan, salt: str = "") -> None:
        self.nc = nc
        self.participant = participant
        self.book = RemoteBook(plan)
        self.fates = AnswerFates(plan, salt=f"{salt}:{participant}")
        self._sub = None
        self._sending: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(
            ask_subject(self.participant), queue=REMOTE_QUEUE, cb=self._on_request
        )

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = link_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("undecodable request to the remote bank: %s", exc)
            return
        if isinstance(request, Ask):
            answers = [self.book.answer(credit) for credit in request.credits]
        else:
            answers = [self.book.note(final) for final in request.finals]
        copies, delay_s = self.fates.next()
        if copies:
            payload = msgspec.json.encode(Answers(answers=answers))
            task = asyncio.create_task(self._send(msg.reply, payload, copies, delay_s))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, reply: str, payload: bytes, copies: int, delay_s: float) -> None:
        await asyncio.sleep(delay_s)  # the remote bank's latency, not a synchronization
        for _ in range(copies):
            try:
                await self.nc.publish(reply, payload)
            except Exception as exc:  # as good as a lost answer: the proxy asks again
                log.debug("answer not sent: %s", exc)

    def figures(self) -> dict:
        book = self.book
        return {
            "remote_decisions": book.decisions,
            "remote_asked_again_at_bank": book.asked_again,
            "remote_applied": book.applied,
            "remote_voided": book.voided,
            "remote_contradictions": book.contradictions,
            "remote_answers_lost": self.fates.counts["lost"],
            "remote_answers_duplicated": self.fates.counts["duplicated"],
        }

    async def stop(self) -> None:
        await unsubscribe_quietly(self._sub)
        self._sub = None
        for task in list(self._sending):
            task.cancel()
