"""docs/PROTOCOL.md stays true: examples, digests, tables and names are checked against the code.

Every fenced block whose info string starts with `json` must be `json wire=<Type>`; each one is
decoded strictly with the code's own decoder, re-encoded, and compared with the document.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import re
import zlib
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from eventsource.adapters import (
    batch_commit,
    dead_letters,
    inbox_subjects,
    jetstream,
    key_registry,
    registry,
    topology,
)
from eventsource.adapters.shared.provision import shared_stream_configs
from eventsource.core import dispatch, events, limits, messages, model, subjects, workset
from eventsource.core.account import ENTRY_OF_EFFECT, EntryKind
from eventsource.core.errors import (
    ConfigError,
    DeadLetterReason,
    DomainError,
    RejectionCause,
    StaleState,
)
from eventsource.core.messages import Kind
from eventsource.core.model import AccountRef, Outcome, Side, Transfer, TransferRequest
from eventsource.core.money import MAX_MINOR
from eventsource.core.protocol import TRANSITIONS, Effect, Phase, Step
from eventsource.core.shared.layout import (
    SHARED_STREAM,
    shared_consumer,
    shared_subject,
    submit_filter,
    submit_subject,
    transfer_key,
)
from eventsource.services import client
from tests.subject_match import matches

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "PROTOCOL.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
FLAT = " ".join(DOC.split())  # the document with every line break and indent made one space

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_WIRE = re.compile(r"json wire=(\w+)")
_DIGEST = re.compile(r"\b[0-9a-f]{24}\b")
_CODE = re.compile(r"`([^`]+)`")
# The document writes a partition as <k>, or <k(P)> for "the partition of P".
_PARTITION = re.compile(r"<k(?:\([A-Za-z]+\))?>")
_K = 63  # a partition number that no name contains otherwise; `generic` writes it as <k>
EXAMPLE_ID = "01JD3F6N7ZK8R2W4Y5X9B0C1QH"

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


def table_after(heading: str, *, raw: bool = False) -> list[list[str]]:
    """The body rows of the first Markdown table after `heading`, cells stripped of backticks
    (unless `raw`)."""
    lines = DOC.splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows.append(cells if raw else [cell.strip("`") for cell in cells])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]  # header and separator dropped


def code(text: str) -> list[str]:
    """The `code spans` of a text, in order."""
    return _CODE.findall(text)


def mentioned(value: str) -> bool:
    return f"`{value}`" in DOC


def generic(name: str) -> str:
    """A name of partition _K as the document writes it in general: with <k>."""
    assert name.count(str(_K)) == 1, name
    return name.replace(str(_K), "<k>")


def as_written(name: str) -> str:
    """`generic` for a name of partition _K, any other name as it is."""
    return generic(name) if str(_K) in name else name


def of_owner(name: str, owner: str) -> str:
    """`KV_ledger_<k>` -> `KV_ledger_<k(P)>`: the partition of a given participant."""
    return name.replace("<k>", f"<k({owner})>")


def code_configs(partitions: int) -> list:
    """The streams that `natsbank streams init` creates from the shipped streams.yaml, with one
    registered participant, written `<P>` as the document does."""
    shipped = topology.load_topology(ROOT / "streams.yaml")
    layout = msgspec.structs.replace(shipped, partitions=partitions)
    return topology.stream_configs(layout, 1, ["<P>"])


def generic_configs() -> dict[str, object]:
    """The code's streams by the names the document uses: one generic ledger stream."""
    others = {subjects.ledger_stream(k) for k in range(_K)}
    return {
        generic(c.name) if c.name == subjects.ledger_stream(_K) else c.name: c
        for c in code_configs(_K + 1)
        if c.name not in others
    }


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
    generic = "nb.<k>.to.<Q>.<kind>.<S>.<token>"
    assert mentioned(generic)
    parsed = subjects.parse_inbox_subject(generic.replace("<k>", "0"))
    assert parsed == (0, "<Q>", "<kind>", "<S>", "<token>")


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


def test_the_streams_table_is_the_codes_streams() -> None:
    configs = generic_configs()
    rows = {code(row[0])[0]: row for row in table_after("### Streams", raw=True)}
    assert set(rows) == set(configs), "the streams table lists other streams than the code"
    for name, config in configs.items():
        documented = code(rows[name][1])
        wanted = [as_written(s) for s in config.subjects]
        assert documented == wanted, f"{name}: subjects"
    ledger_name = generic(subjects.ledger_stream(_K))
    ledger, settings = configs[ledger_name], rows[ledger_name][3]
    for flag in ("allow_atomic", "allow_direct", "deny_delete", "deny_purge"):
        assert getattr(ledger, flag) and f"`{flag}`" in settings, flag
    assert f"`max_msgs_per_subject` {ledger.max_msgs_per_subject}" in settings
    assert f"`discard` {ledger.discard.value}" in settings
    assert f"`max_msg_size` {ledger.max_msg_size} bytes" in settings
    assert f"`duplicate_window` {int(ledger.duplicate_window // 60)} min" in settings
    assert ledger.max_bytes == -1 and not ledger.max_age and "no size or age limit" in settings
    assert not ledger.sources and not ledger.mirror, "the document says nothing is sourced"
    assert f"the KV bucket `{generic(subjects.ledger_bucket(_K))}`" in rows[ledger_name][2]
    registry = configs[f"KV_{subjects.PARTICIPANTS_BUCKET}"]
    assert registry.max_msgs_per_subject == 1 and "one message per key" in rows[registry.name][3]
    dead = configs[subjects.DEAD_LETTER_STREAM]
    days = topology.seconds(topology.DeadLetterConfig().max_age) / 86400
    assert dead.max_age == days * 86400 and f"kept {days:g} days" in rows[dead.name][3]


def test_the_subjects_table_is_the_codes_layout() -> None:
    k, ledger = _K, generic(subjects.ledger_stream(_K))
    wanted = {
        generic(subjects.state_subject(k, subjects.account_key("<P>", "<A>"))): of_owner(
            ledger, "P"
        ),
        generic(subjects.state_subject(k, subjects.outgoing_key("<N>", "<ID>"))): of_owner(
            ledger, "N"
        ),
        generic(subjects.state_subject(k, subjects.incoming_key("<P>", "<N>", "<ID>"))): of_owner(
            ledger, "P"
        ),
        generic(subjects.inbox_subject(k, "<Q>", Kind.SUBMIT, "<S>", "<token>")).replace(
            f".{Kind.SUBMIT.value}.", ".<kind>."
        ): ledger,
        subjects.dead_letter_subject("<P>"): subjects.DEAD_LETTER_STREAM,
        subjects.dead_letter_retry_subject("<P>", "<seq>"): subjects.DEAD_LETTER_STREAM,
    }
    rows = table_after("### Subjects", raw=True)
    documented = {code(row[0])[0]: code(row[1])[0] for row in rows}
    assert documented == wanted
    configs = generic_configs()
    for subject, stream in documented.items():
        patterns = configs[_PARTITION.sub("<k>", stream)].subjects
        assert any(matches(subject, as_written(p)) for p in patterns), subject
    submission = subjects.submission_subject(0, "bank-a", "t")
    assert subjects.parse_inbox_subject(submission) == (0, "bank-a", "submit", "bank-a", "t")
    for name in (
        generic(subjects.inbox_filter(k, "<Q>")),
        generic(subjects.inbox_consumer("<Q>", k)),
        subjects.state_subject(0, subjects.outgoing_key("bank-a", EXAMPLE_ID)),
        subjects.state_subject(0, subjects.incoming_key("bank-b", "bank-a", EXAMPLE_ID)),
        subjects.outgoing_key("bank-a", EXAMPLE_ID),
        subjects.submission_subject(0, "bank-a", EXAMPLE_ID),
    ):
        assert name in DOC, f"{name} is not in the document"
    assert subjects.partition_of("bank-a", 1) == subjects.partition_of("bank-b", 1) == 0


def test_the_kv_buckets_table_is_the_codes_buckets() -> None:
    ledger = generic(subjects.ledger_bucket(_K))
    wanted = {
        (ledger, subjects.account_key("<P>", "<A>")),
        (ledger, subjects.outgoing_key("<N>", "<ID>")),
        (ledger, subjects.incoming_key("<P>", "<N>", "<ID>")),
        (subjects.PARTICIPANTS_BUCKET, registry.TOPOLOGY_KEY),
        (subjects.PARTICIPANTS_BUCKET, inbox_subjects.INBOXES_KEY),
        (subjects.PARTICIPANTS_BUCKET, key_registry.OPERATOR_KEY),
        (subjects.PARTICIPANTS_BUCKET, "<P>"),
    }
    rows = table_after("### KV buckets", raw=True)
    assert {(code(row[0])[0], key) for row in rows for key in code(row[1])} == wanted
    # Each bucket is a stream of the KV layout: KV_<bucket> on $KV.<bucket>.<key>.
    configs = generic_configs()
    for bucket in {b for b, _ in wanted}:
        assert f"KV_{bucket}" in configs, bucket
        layout = [as_written(s) for s in configs[f"KV_{bucket}"].subjects]
        assert f"$KV.{bucket}.>" in layout, bucket
    assert subjects.ledger_stream(_K) == f"KV_{subjects.ledger_bucket(_K)}"
    assert subjects.state_subject(_K, "<key>") == f"$KV.{subjects.ledger_bucket(_K)}.<key>"
    assert subjects.key_of_subject(subjects.state_subject(_K, "a.out.b")) == "a.out.b"


def test_what_the_document_says_about_kv_tools_holds() -> None:
    """nats.go (so `nats kv`) and nats-py open a KV bucket only if max_msgs_per_subject >= 1."""
    configs = generic_configs()
    ledger = configs[generic(subjects.ledger_stream(_K))]
    registry = configs[f"KV_{subjects.PARTICIPANTS_BUCKET}"]
    refused = "`nats kv get ledger_0 …` does not work"
    if ledger.max_msgs_per_subject < 1:
        assert refused in FLAT, "say that the nats kv tools refuse the ledger buckets"
    else:
        assert refused not in FLAT, "the nats kv tools now open the ledger buckets"
    assert registry.max_msgs_per_subject >= 1
    assert "`nats kv get participants <P>` works" in FLAT


def test_the_shared_store_table_is_the_codes_layout() -> None:
    rows = table_after("### The shared store (`--store shared`)", raw=True)
    assert [code(row[0])[0] for row in rows] == [
        shared_subject(subjects.account_key("<P>", "<A>")),
        shared_subject(transfer_key("<N>", "<ID>")),
        submit_subject("<N>", "<token>"),
    ]
    assert {code(row[1])[0] for row in rows} == {SHARED_STREAM}
    [config, *_] = shared_stream_configs(topology.load_topology(ROOT / "streams.yaml"), 1, ["<Q>"])
    assert all(f"`{s}`" in DOC for s in config.subjects)
    assert mentioned(shared_consumer("<N>")) and mentioned(submit_filter("<N>"))


def test_every_stream_and_bucket_named_in_the_document_is_the_codes() -> None:
    """No stale name anywhere: not in prose, recipes, PubAck examples or dead-letter sources."""
    shipped = topology.load_topology(ROOT / "streams.yaml")
    shared = shared_stream_configs(shipped, 1, ["<P>"])  # the shared store's section
    configs = [*generic_configs().values(), *code_configs(1), *shared]
    streams = {c.name for c in configs} | {generic(subjects.ledger_stream(_K)), "KV_<bucket>"}
    buckets = {s.split(".")[1] for c in configs for s in c.subjects if s.startswith("$KV.")}
    buckets |= {generic(subjects.ledger_bucket(_K)), "<bucket>"}
    named_streams = re.findall(r"\b(?:KV_|LEDGER_)[A-Za-z0-9_]*(?:<[^>]*>)?", DOC)
    named_streams += re.findall(r"nats stream \w+ ([^\s`]+)", DOC)
    named_streams += re.findall(r"\$JS\.API\.[A-Z.]+\.GET\.([A-Za-z0-9_]+)", DOC)
    assert named_streams
    for name in named_streams:
        assert _PARTITION.sub("<k>", name) in streams, f"no stream {name}"
    named_buckets = re.findall(r"\$KV\.([A-Za-z0-9_]*(?:<[^>]*>)?)\.", DOC)
    named_buckets += re.findall(r"nats kv \w+ ([^\s`]+)", DOC)
    assert named_buckets
    for name in named_buckets:
        assert _PARTITION.sub("<k>", name) in buckets, f"no bucket {name}"


async def test_the_raw_reads_are_what_the_code_sends() -> None:
    """Section 11's direct get and leader read, with the subjects natsbank's own reader uses."""
    k = subjects.partition_of("bank-a", 1)
    stream = subjects.ledger_stream(k)
    subject = subjects.state_subject(k, subjects.outgoing_key("bank-a", EXAMPLE_ID))
    sent: list[tuple[str, bytes]] = []
    event = b'{"type":"TransferSettled"}'

    class Recorder:
        async def request(self, subj: str, payload: bytes = b"", **_: object) -> object:
            sent.append((subj, payload))
            if subj.startswith("$JS.API.DIRECT.GET."):
                return SimpleNamespace(data=event, headers={"Nats-Sequence": "12"})
            message = {"subject": subject, "seq": 12, "data": base64.b64encode(event).decode()}
            return SimpleNamespace(data=json.dumps({"message": message}).encode(), headers=None)

    assert await jetstream.read_last(Recorder(), stream, subject) == (event, 12)
    assert await jetstream.read_last(Recorder(), stream, subject, leader=True) == (event, 12)
    (direct, _), (leader, body) = sent
    assert f"nats req --raw '{direct}' ''" in DOC
    assert f"nats req --raw '{leader}' '{body.decode().replace(' ', '')}'" in DOC
    assert f"--last-for '{subject}'" in DOC and f"--subject '{subject}'" in DOC


def test_reserved_names_are_the_codes() -> None:
    paragraph = next(
        " ".join(p.split()) for p in DOC.split("\n\n") if p.startswith("Reserved participant")
    )
    rule, _, _ = paragraph.partition(". ")
    assert rule.endswith("and every name that starts with `_`"), rule
    assert set(code(rule)) == set(subjects.RESERVED_NAMES) | {"_"}
    for name in [*subjects.RESERVED_NAMES, "_", "_topology", registry.TOPOLOGY_KEY, "_x"]:
        assert subjects.is_reserved(name), name
        with pytest.raises(ConfigError):
            registry.require_participant_name(name)
    for name in ("bank-a", "x_", "output", "in-bank", "TO"):
        assert not subjects.is_reserved(name), name
        registry.require_participant_name(name)
    assert "`UNKNOWN_PARTICIPANT`" in paragraph


def test_names_and_limits() -> None:
    assert model._TOKEN.pattern in DOC
    limits_table = " ".join(" ".join(row) for row in table_after("### Limits"))
    shipped = topology.load_topology(ROOT / "streams.yaml").ledger.max_msg_size
    assert shipped == topology.LedgerConfig().max_msg_size
    for number in (
        messages.MAX_ITEMS_PER_MESSAGE,
        model.MAX_COMMENT,
        MAX_MINOR,
        limits.MAX_BATCH_MESSAGES,
        shipped,
        messages.MAX_MESSAGE_BYTES,
        limits.CORE_UNCONFIRMED_PER_PEER,
    ):
        assert str(number) in limits_table, f"{number} is not in the limits table"
    assert f"{messages.MAX_MESSAGE_BYTES // 1024} KiB, `MAX_MESSAGE_BYTES`" in DOC
    assert shipped > messages.MAX_MESSAGE_BYTES
    piece = inspect.signature(dispatch.split_message).parameters["size"].default
    assert f"pieces of {piece} items" in limits_table
    # What a service does: a message of 2.5 pieces is decided in 3, each at most `piece` items.
    request = TransferRequest(
        id="T",
        debtor=AccountRef("a", "b"),
        creditor=AccountRef("c", "d"),
        amount="1",
        currency="EUR",
    )
    big = messages.SubmitTransfers(transfers=[request] * (piece * 5 // 2))
    assert [len(p.transfers) for p in dispatch.split_message(big)] == [piece, piece, piece // 2]


class FakeNats:
    """Records what the code sends; `request` answers with `reply`."""

    def __init__(self, reply: object = None) -> None:
        self.sent: list[tuple[str, bytes, dict | None]] = []
        self.reply = reply

    async def publish(self, subject: str, payload: bytes = b"", headers=None, **_: object):
        self.sent.append((subject, payload, headers))
        return SimpleNamespace(stream="DEADLETTER", seq=1)

    async def request(self, subject: str, payload: bytes = b"", headers=None, **_: object):
        self.sent.append((subject, payload, headers))
        return self.reply

    def jetstream(self) -> FakeNats:
        return self


async def test_stale_reads_are_the_documented_error_codes() -> None:
    row = next(
        r for r in table_after("## 10. Headers") if r[0] == "Nats-Expected-Last-Subject-Sequence"
    )
    writes = [workset.Write(subjects.state_subject(0, "a.out.T"), b"{}", 0, "a.out.T")]

    async def outcome(err_code: int) -> type[Exception]:
        error = {"code": 400, "err_code": err_code, "description": "wrong last sequence"}
        nc = FakeNats(SimpleNamespace(data=json.dumps({"error": error}).encode()))
        try:
            await batch_commit.commit(nc, writes)
        except Exception as exc:
            return type(exc)
        raise AssertionError("a refused commit passed")

    stale = {code for code in range(10000, 10200) if await outcome(code) is StaleState}
    assert stale == {jetstream.WRONG_LAST_SEQUENCE, jetstream.WRONG_LAST_SEQUENCE_IN_BATCH}
    documented = {int(n) for n in re.findall(r"`err_code` (\d+)", row[2])}
    assert documented == stale, "the row names other err_codes than the code treats as stale"


async def test_dead_letters_name_the_message_that_carried_them() -> None:
    row = next(r for r in table_after("## 10. Headers") if r[0] == "Natsbank-Source")
    assert "the inbox message that carried the poison message or item" in row[2]
    assert "`Natsbank-Source` equals the stream and sequence of your submission's PubAck" in FLAT
    nc = FakeNats()
    ack = SimpleNamespace(stream=subjects.ledger_stream(0), sequence=SimpleNamespace(stream=37))
    carrier = SimpleNamespace(
        data=b"{}", reply="$JS.ACK.x", subject="nb.0.to.bank-a.submit.t", metadata=ack
    )
    await dead_letters.dead_letter(nc, "bank-a", carrier, "ID_CONFLICT", "x", payload=b"{}")
    ((subject, _, headers),) = nc.sent
    assert subject == subjects.dead_letter_subject("bank-a")
    assert mentioned(headers["Natsbank-Source"]), "the example `<stream>:<sequence>` is stale"
    assert headers["Natsbank-Source-Subject"] == carrier.subject


def test_the_documented_refused_amounts_are_what_the_code_records() -> None:
    def recorded(amount: str | float, currency: str = "EUR") -> str:
        same = AccountRef("bank-a", "alice")  # refused as SAME_ACCOUNT when the amount is valid
        request = TransferRequest(
            id="T-1", debtor=same, creditor=same, amount=amount, currency=currency
        )
        with pytest.raises(DomainError):
            model.validate_transfer(request, "bank-a")
        return model.as_recorded(request).amount

    assert f'a refused `"10.5"` EUR is recorded as `"{recorded("10.5")}"`' in FLAT
    assert f'`"10.555"` EUR is recorded as `"{recorded("10.555")}"`' in FLAT
    assert f'(`10.5` becomes `"{recorded(10.5)}"`)' in FLAT
    assert recorded("10.5", "XXX") == "10.5", "an unknown currency keeps the amount as sent"


def test_headers_and_dead_letter_reasons_are_documented() -> None:
    header = re.compile(r'"((?:Nats|Natsbank)-[A-Za-z-]+)"')
    sources = [
        inspect.getsource(f) for f in (batch_commit.commit, dead_letters.dead_letter, client.submit)
    ]
    used = {name for source in sources for name in header.findall(source)}
    assert {"Nats-Msg-Id", "Nats-Batch-Commit", "Natsbank-Reason"} <= used
    rows = {row[0] for row in table_after("## 10. Headers")}
    assert used <= rows, f"headers not documented: {sorted(used - rows)}"
    documented = {row[0].strip("`") for row in table_after("### Dead-letter reasons")}
    assert documented == {reason.value for reason in DeadLetterReason}
