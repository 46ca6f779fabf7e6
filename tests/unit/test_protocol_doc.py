"""docs/PROTOCOL.md stays true: examples, digests, tables and names are checked against the code.

Every fenced block whose info string starts with `json` must be `json wire=<Type>`; each one is
decoded strictly with the code's own decoder, re-encoded, and compared with the document.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import zlib
from pathlib import Path

import msgspec
import pytest

from eventsource.adapters import dead_letters, jetstream, topology
from eventsource.core import dispatch, events, messages, model, subjects
from eventsource.core.account import ENTRY_OF_EFFECT, EntryKind
from eventsource.core.errors import RejectionCause
from eventsource.core.messages import Kind
from eventsource.core.model import AccountRef, Outcome, Side, Transfer, TransferRequest
from eventsource.core.money import MAX_MINOR
from eventsource.core.protocol import TRANSITIONS, Effect, Phase, Step
from eventsource.services import client

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
DOC = DOC_PATH.read_text(encoding="utf-8")

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_WIRE = re.compile(r"json wire=(\w+)")
_DIGEST = re.compile(r"\b[0-9a-f]{24}\b")

INBOX_TYPES = {"SubmitTransfers", "Postings", "Results", "Confirms"}
WIRE_TYPES = INBOX_TYPES | {"TransferEvent", "AccountEvent", "TransferRequest"}


def fenced_blocks() -> list[tuple[str, str]]:
    return [(info.strip(), body) for info, body in _FENCE.findall(DOC)]


def wire_blocks() -> list[tuple[str, str]]:
    found = []
    for info, body in fenced_blocks():
        match = _WIRE.fullmatch(info)
        if match:
            found.append((match.group(1), body))
    return found


def decode(type_name: str, body: str) -> object:
    """Strict decoding with the decoder the services themselves use for that type."""
    data = body.encode()
    if type_name in INBOX_TYPES:
        decoded = messages.inbox_decoder.decode(data)
        assert type(decoded).__name__ == type_name, (
            f"a {type(decoded).__name__} example is labelled {type_name}"
        )
        return decoded
    if type_name == "TransferEvent":
        return events.transfer_event_decoder.decode(data)
    if type_name == "AccountEvent":
        return events.account_event_decoder.decode(data)
    if type_name == "TransferRequest":
        return msgspec.json.decode(data, type=TransferRequest)
    raise AssertionError(f"unknown wire type {type_name!r}")


def decoded_examples() -> list[tuple[str, object]]:
    return [(name, decode(name, body)) for name, body in wire_blocks()]


def table_after(heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after `heading`, cells stripped of backticks."""
    lines = DOC.splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]  # header and separator dropped


def mentioned(value: str) -> bool:
    return f"`{value}`" in DOC


# --- the examples ------------------------------------------------------------------------------


def test_every_json_block_is_a_labelled_wire_example() -> None:
    for info, _ in fenced_blocks():
        if info.startswith("json"):
            match = _WIRE.fullmatch(info)
            assert match, f"JSON block labelled {info!r}: use `json wire=<Type>`"
            assert match.group(1) in WIRE_TYPES, f"unknown wire type in {info!r}"


@pytest.mark.parametrize(
    ("type_name", "body"),
    wire_blocks(),
    ids=[f"{i}-{name}" for i, (name, _) in enumerate(wire_blocks())],
)
def test_wire_example_decodes_and_round_trips(type_name: str, body: str) -> None:
    decoded = decode(type_name, body)
    again = json.loads(events.encoder.encode(decoded))
    assert again == json.loads(body), "the example is not what the code encodes"


def test_there_is_an_example_of_every_wire_type() -> None:
    assert {name for name, _ in wire_blocks()} == WIRE_TYPES


def test_every_event_variant_has_an_example() -> None:
    shown = {type(event).__name__ for _, event in decoded_examples()}
    wanted = {cls.__name__ for cls in events.EVENT_OF_STEP.values()}
    wanted |= {"AccountOpened", "AccountChanged", "AccountClosed"}
    assert wanted <= shown, f"no example of {sorted(wanted - shown)}"


# --- digests -----------------------------------------------------------------------------------


def _known_transfers() -> dict[str, Transfer]:
    """Every Transfer that an example shows, by id; each must carry its own true digest."""
    transfers: dict[str, Transfer] = {}

    def add(transfer: Transfer, digest: str) -> None:
        assert digest == transfer.digest, f"{transfer.id}: shown {digest}, real {transfer.digest}"
        assert transfers.setdefault(transfer.id, transfer) == transfer, f"two {transfer.id}"

    for _, example in decoded_examples():
        if isinstance(example, messages.Postings):
            for posting in example.postings:
                add(posting.transfer, posting.digest)
        elif isinstance(example, events.TransferEvent):
            add(example.state.transfer, example.state.digest)
    return transfers


def test_digests_in_examples_are_the_digests_of_their_transfers() -> None:
    transfers = _known_transfers()
    assert transfers, "no example shows a transfer with its digest"
    for _, example in decoded_examples():
        if isinstance(example, messages.Results | messages.Confirms):
            for item in messages.items_of(example):
                assert item.id in transfers, f"{item.id} has no transfer example"
                assert item.digest == transfers[item.id].digest, f"{item.id}: wrong digest"


def test_every_digest_in_the_document_belongs_to_a_documented_transfer() -> None:
    digests = {t.digest for t in _known_transfers().values()}
    for text in set(_DIGEST.findall(DOC)):
        assert text in digests, f"{text} is not the digest of any transfer in the document"


def test_the_canonical_bytes_example_is_exact_and_its_digest_is_stated() -> None:
    compact = [b for name, b in wire_blocks() if name == "TransferRequest" and "\n" not in b[:-1]]
    assert compact, "no one-line canonical Transfer example"
    for body in compact:
        data = body.rstrip("\n").encode()
        request = msgspec.json.decode(data, type=TransferRequest)
        transfer = model.validate_transfer(request, request.debtor.participant)
        assert data == msgspec.json.encode(transfer), "not the canonical encoding"
        stated = hashlib.blake2b(data, digest_size=12).hexdigest()
        assert stated == transfer.digest
        assert f"`{stated}`" in DOC, "the worked example does not state its digest"


@pytest.mark.parametrize(
    "comment",
    [
        "",
        "invoice 42",
        'quote " backslash \\ slash /',
        "café \u2028 \x7f 😀",
        "\x00\x01\x1f\b\t\n\f\r",
    ],
)
def test_the_documented_canonical_json_rule_is_what_the_code_hashes(comment: str) -> None:
    """Section 7 in other words: compact JSON, fixed field order, UTF-8, minimal escaping."""
    transfer = Transfer(
        id="T-1",
        debtor=AccountRef("bank-a", "alice"),
        creditor=AccountRef("bank-b", "bob"),
        amount="10.50",
        currency="EUR",
        comment=comment,
    )
    fields = {
        "id": transfer.id,
        "debtor": {"participant": "bank-a", "account": "alice"},
        "creditor": {"participant": "bank-b", "account": "bob"},
        "amount": transfer.amount,
        "currency": transfer.currency,
        "comment": transfer.comment,
    }
    documented = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    assert documented == msgspec.json.encode(transfer)
    assert hashlib.blake2b(documented, digest_size=12).hexdigest() == transfer.digest


# --- names and tables --------------------------------------------------------------------------


def test_every_rejection_cause_is_documented() -> None:
    rows = {row[0] for row in table_after("## 8. Rejection causes")}
    assert rows == {cause.value for cause in RejectionCause}


def test_every_inbox_kind_is_documented() -> None:
    rows = {row[0] for row in table_after("## 5. Inbox messages")}
    assert rows == {kind.value for kind in Kind}
    tags = {cls.__struct_config__.tag: kind.value for cls, kind in messages.KIND_OF.items()}
    assert all(tag == kind for tag, kind in tags.items()), "a message type differs from its kind"
    generic = "nb.<k>.to.<Q>.<kind>.<token>"
    assert mentioned(generic)
    assert subjects.parse_inbox_subject(generic.replace("<k>", "0")) == (0, "<Q>", "<kind>")


def test_every_step_and_enum_value_is_mentioned() -> None:
    values = [*Step, *Phase, *Side, *Outcome, *EntryKind, *Effect]
    missing = [v.value for v in values if not mentioned(v.value)]
    assert not missing, f"not mentioned: {missing}"


def test_the_transition_table_is_the_codes_table() -> None:
    def none_if_dash(cell: str) -> str | None:
        return None if cell in ("–", "-", "(new)") else cell

    documented = {}
    for side, before, step, outcome, after, effect, entry in table_after("### Transition table"):
        key = (Side(side), none_if_dash(before), Step(step), none_if_dash(outcome))
        documented[key] = (Phase(after), Effect(effect))
        wanted = ENTRY_OF_EFFECT.get(Effect(effect))
        assert none_if_dash(entry) == (wanted.value if wanted else None), f"entry for {effect}"
    expected = {
        (side, phase.value if phase else None, step, outcome.value if outcome else None): result
        for (side, phase, step, outcome), result in TRANSITIONS.items()
    }
    assert documented == expected


def test_partition_test_vectors() -> None:
    lines = DOC.splitlines()
    header = lines[lines.index("### Partition test vectors") + 2]
    sizes = [int(k) for k in re.findall(r"K=(\d+)", header)]
    rows = table_after("### Partition test vectors")
    assert rows
    for name, decimal, hexadecimal, *partitions in rows:
        crc = zlib.crc32(name.encode())
        assert int(decimal) == crc and int(hexadecimal, 16) == crc, name
        assert [int(p) for p in partitions] == [subjects.partition_of(name, k) for k in sizes]
    assert mentioned(f"0x{zlib.crc32(b'123456789'):08X}")


def test_documented_subjects_streams_and_buckets_are_the_codes() -> None:
    transfer_id = "01JD3F6N7ZK8R2W4Y5X9B0C1QH"
    names = [
        subjects.ledger_stream(0).replace("0", "<k>"),
        subjects.ledger_subjects(0).replace("0", "<k>"),
        subjects.state_subject(0, subjects.account_key("<P>", "<A>")).replace(".0.", ".<k>."),
        subjects.state_subject(0, subjects.outgoing_key("<N>", "<ID>")).replace(".0.", ".<k>."),
        subjects.state_subject(0, subjects.incoming_key("<P>", "<N>", "<ID>")).replace(
            ".0.", ".<k>."
        ),
        subjects.inbox_filter(0, "<Q>").replace(".0.", ".<k>."),
        subjects.inbox_consumer("<Q>", 0).replace("_0", "_<k>"),
        subjects.dead_letter_subject("<P>"),
        subjects.DEAD_LETTER_STREAM,
        subjects.ACCOUNTS_BUCKET,
        subjects.TRANSFERS_BUCKET,
        subjects.PARTICIPANTS_BUCKET,
        subjects.state_subject(0, subjects.outgoing_key("bank-a", transfer_id)),
        subjects.state_subject(0, subjects.incoming_key("bank-b", "bank-a", transfer_id)),
        subjects.inbox_subject(0, "bank-a", Kind.SUBMIT, transfer_id),
    ]
    missing = [name for name in names if name not in DOC]
    assert not missing, f"not in the document: {missing}"
    for bucket, sources in subjects.kv_sources(0).items():
        for source, dest in sources:
            assert source.replace(".0.", ".<k>.") in DOC, source
            assert dest in DOC.replace("`", ""), f"{bucket}: {dest}"


def test_names_and_limits() -> None:
    assert model._TOKEN.pattern in DOC
    for name in subjects.RESERVED_NAMES:
        assert mentioned(name), f"reserved name {name} not documented"
    limits = " ".join(" ".join(row) for row in table_after("### Limits"))
    for number in (
        messages.MAX_ITEMS_PER_MESSAGE,
        model.MAX_COMMENT,
        MAX_MINOR,
        jetstream.MAX_BATCH,
        topology.LedgerConfig().max_msg_size,
    ):
        assert str(number) in limits, f"{number} is not in the limits table"


def test_headers_and_dead_letter_reasons_are_documented() -> None:
    header = re.compile(r'"((?:Nats|Natsbank)-[A-Za-z-]+)"')
    sources = [
        inspect.getsource(f) for f in (jetstream.commit, dead_letters.dead_letter, client.submit)
    ]
    used = {name for source in sources for name in header.findall(source)}
    assert {"Nats-Msg-Id", "Nats-Batch-Commit", "Natsbank-Reason"} <= used
    rows = {row[0] for row in table_after("## 10. Headers")}
    assert used <= rows, f"headers not documented: {sorted(used - rows)}"
    for reason in ("UNDECODABLE", dispatch.PROTOCOL_REASON, RejectionCause.ID_CONFLICT.value):
        assert mentioned(reason)
