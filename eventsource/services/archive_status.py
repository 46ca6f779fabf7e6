"""Where each ledger stream's archive stands (`natsbank archive status`)."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client

from eventsource.adapters.archive_meta import existing_meta_bucket, read_head
from eventsource.adapters.archive_stream import consumer_floors, stream_state
from eventsource.adapters.registry import layout_of
from eventsource.core.archive_cut import group_ends
from eventsource.core.archive_head import Head
from eventsource.core.subjects import ledger_stream


@dataclass(frozen=True)
class ArchiveRow:
    stream: str
    periods: int  # archived periods
    archived_below: int  # every message below this sequence is in the archive
    chain: str
    archived_at_ms: int
    problems: int  # violations found in archived periods
    live_first: int
    live_last: int
    live_messages: int
    live_subjects: int
    held_back: dict[str, str]  # purge group -> consumer that has not acknowledged it

    def describe(self) -> str:
        held = "".join(f"; {g} held back by {c}" for g, c in self.held_back.items())
        return (
            f"{self.stream}: {self.periods} periods archived (below sequence "
            f"{self.archived_below}, chain {self.chain[:12]}), {self.problems} problems; live "
            f"{self.live_first}..{self.live_last}: {self.live_messages} messages on "
            f"{self.live_subjects} subjects{held}"
        )


async def archive_status(nc: Client) -> list[ArchiveRow]:
    layout = await layout_of(nc)
    kv = await existing_meta_bucket(nc)  # a status creates nothing (the audit role cannot)
    rows = []
    for k in range(layout.partitions):
        stream = ledger_stream(k)
        head = (await read_head(kv, stream))[0] if kv is not None else Head()
        state = await stream_state(nc, stream)
        groups, consumers = await consumer_floors(nc, stream)
        ends = group_ends(groups, consumers, head.end_seq)
        held = {g: c for g, (e, c) in ends.items() if c is not None and e < head.end_seq}
        rows.append(
            ArchiveRow(
                stream=stream,
                periods=head.period,
                archived_below=head.end_seq,
                chain=head.chain,
                archived_at_ms=head.archived_at_ms,
                problems=head.problems,
                live_first=state["first_seq"],
                live_last=state["last_seq"],
                live_messages=state["messages"],
                live_subjects=state.get("num_subjects", 0),
                held_back=held,
            )
        )
    return rows
