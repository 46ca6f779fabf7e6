"""What counts as a stored dead letter, and how many times storing one is tried. A fake plays
the server's answers; tests/integration/test_dead_letter_store.py uses a real one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from nats.js.errors import APIError, NoStreamResponseError

from eventsource.adapters import dead_letters
from eventsource.core.errors import DeadLetterFailed, InfrastructureError

IN_PROCESS = APIError(code=409, err_code=10158, description="duplicate message id is in process")


class ScriptedJetStream:
    """Answers each publish with the next scripted outcome: an exception or a PubAck."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.published: list[dict] = []

    def jetstream(self) -> ScriptedJetStream:
        return self

    async def publish(self, subject: str, payload: bytes, **options: object):
        self.published.append(options)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def core_message() -> SimpleNamespace:
    return SimpleNamespace(data=b"junk", reply="", subject="nb.core.bank-a.posting")


ACK = SimpleNamespace(stream="DEADLETTER", seq=1, duplicate=False)
DUPLICATE_ACK = SimpleNamespace(stream="DEADLETTER", seq=1, duplicate=True)


@pytest.mark.parametrize(
    "outcomes",
    [(ACK,), (DUPLICATE_ACK,), (IN_PROCESS, DUPLICATE_ACK), (IN_PROCESS,)],
    ids=["stored", "duplicate", "in-process-then-duplicate", "always-in-process"],
)
async def test_a_letter_stored_by_anyone_counts_as_stored(outcomes) -> None:
    nc = ScriptedJetStream(*outcomes)
    await dead_letters.dead_letter(nc, "bank-a", core_message(), "UNDECODABLE", "junk")
    assert nc.published[0]["stream"] == "DEADLETTER"


async def test_a_letter_that_cannot_be_stored_fails_after_the_bounded_attempts() -> None:
    nc = ScriptedJetStream(NoStreamResponseError())
    with pytest.raises(DeadLetterFailed) as failed:
        await dead_letters.dead_letter(nc, "bank-a", core_message(), "UNDECODABLE", "a\nb")
    assert len(nc.published) == dead_letters.DEAD_LETTER_ATTEMPTS_MAX
    assert isinstance(failed.value, InfrastructureError), "the service's retry loop catches it"
    assert (failed.value.reason, failed.value.source) == ("UNDECODABLE", "nb.core.bank-a.posting")
    assert all(o["timeout"] == dead_letters.DEAD_LETTER_TIMEOUT_S for o in nc.published)


def test_all_attempts_fit_in_the_inbox_ack_wait() -> None:
    pauses_s, pause_s = 0.0, dead_letters.DEAD_LETTER_PAUSE_S_MIN
    for _ in range(dead_letters.DEAD_LETTER_ATTEMPTS_MAX - 1):
        pauses_s += pause_s
        pause_s = min(2 * pause_s, dead_letters.DEAD_LETTER_PAUSE_S_MAX)
    worst_s = pauses_s + dead_letters.DEAD_LETTER_ATTEMPTS_MAX * dead_letters.DEAD_LETTER_TIMEOUT_S
    assert worst_s < 10.0  # streams.yaml inbox.ack_wait
