"""The public signing keys of a deployment (adapters/signing_key_file.py): what `deploy keys`
writes is what `streams init` reads back, and a file that would register the wrong thing (a
missing participant, a malformed key, a key of the wrong kind, another layout) is refused in one
line before anything is registered. Also the connect-nonce guard that lets one service nkey both
connect and sign."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nats.errors
import nkeys
import pytest

from eventsource.adapters.jetstream import LedgerClient
from eventsource.adapters.signing_key_file import (
    SigningKeys,
    given_signing_key,
    read_signing_keys,
    write_signing_keys,
)
from eventsource.core.errors import ConfigError
from eventsource.core.signing import (
    Signer,
    message_bytes,
    new_seed,
    public_key_problem,
    server_nonce_problem,
)

OPERATOR = Signer(new_seed(nkeys.PREFIX_BYTE_OPERATOR)).public_key
BANK_A, BANK_B = (Signer(new_seed()).public_key for _ in range(2))
KEYS = SigningKeys(OPERATOR, {"bank-b": BANK_B, "bank-a": BANK_A})
# One character of BANK_A changed, always to another one: a fixed "A" left the key valid, and
# the test failing, whenever the random key already ended in A (1 run in 32).
OTHER_LAST = "B" if BANK_A.endswith("A") else "A"


def written(tmp_path: Path, layout: object) -> Path:
    path = tmp_path / "signing-keys.json"
    path.write_text(json.dumps(layout))
    return path


def one_line_refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        read_signing_keys(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)
    return str(refused.value)


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    write_signing_keys(path, KEYS)
    read = read_signing_keys(path)
    assert (read.operator, dict(read.participants)) == (
        OPERATOR,
        {"bank-a": BANK_A, "bank-b": BANK_B},
    )
    assert json.loads(path.read_text()) == {
        "operator": OPERATOR,
        "participants": {"bank-a": BANK_A, "bank-b": BANK_B},
    }
    assert path.stat().st_mode & 0o777 == 0o644  # public keys: the containers read it
    write_signing_keys(path, SigningKeys(OPERATOR, {"bank-a": BANK_A}))  # replaced whole
    assert dict(read_signing_keys(path).participants) == {"bank-a": BANK_A}


def test_a_participant_the_file_lacks_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    write_signing_keys(path, KEYS)
    keys = read_signing_keys(path)
    assert keys.of("bank-a") == BANK_A
    keys.require(["bank-a", "bank-b"])
    with pytest.raises(ConfigError, match="has no key for bank-c") as refused:
        keys.require(["bank-a", "bank-c"])
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)
    assert given_signing_key(str(path), "bank-b") == BANK_B
    assert given_signing_key("", "bank-c") is None  # no file: the dev key


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        (
            {"operator": OPERATOR, "participants": {"bank-a": "UNOTAKEY"}},
            "bank-a: the public key is not an nkey",
        ),
        (
            {"operator": OPERATOR, "participants": {"bank-a": BANK_A[:-1] + OTHER_LAST}},
            "checksum|not an nkey",
        ),
        (
            {"operator": OPERATOR, "participants": {"bank-a": OPERATOR}},
            r"bank-a: not an nkey user \(U…\) key",
        ),
        (
            {"operator": BANK_A, "participants": {"bank-a": BANK_A}},
            r"operator key: not an nkey operator \(O…\) key",
        ),
        ({"operator": OPERATOR, "participants": {"bank-a": 7}}, "participants"),
        ({"operator": OPERATOR, "participants": {"_topology": BANK_A}}, "cannot be a participant"),
        ({"participants": {"bank-a": BANK_A}}, "operator"),
        ({"operator": OPERATOR, "participants": {}, "bank-a": BANK_A}, "bank-a"),
        ([OPERATOR, BANK_A], "participants"),
    ],
)
def test_a_malformed_file_is_refused_in_one_line(tmp_path: Path, layout: object, why: str) -> None:
    refusal = one_line_refusal(written(tmp_path, layout))
    assert re.search(why, refusal), refusal


def test_a_seed_in_place_of_a_public_key_is_refused(tmp_path: Path) -> None:
    seed = new_seed().decode()
    refusal = one_line_refusal(
        written(tmp_path, {"operator": OPERATOR, "participants": {"bank-a": seed}})
    )
    assert seed not in refusal  # a secret pasted by mistake is not echoed


def test_an_unreadable_or_non_json_file_is_refused_in_one_line(tmp_path: Path) -> None:
    assert "cannot read" in one_line_refusal(tmp_path / "absent.json")
    path = tmp_path / "signing-keys.json"
    path.write_text("operator: O...\n")
    assert "is not" in one_line_refusal(path)


def test_public_key_kinds() -> None:
    assert public_key_problem(BANK_A, nkeys.PREFIX_BYTE_USER) is None
    assert public_key_problem(OPERATOR, nkeys.PREFIX_BYTE_OPERATOR) is None
    assert public_key_problem(OPERATOR, nkeys.PREFIX_BYTE_USER) is not None
    assert public_key_problem(None, nkeys.PREFIX_BYTE_USER) == "not a string"


def test_only_a_server_made_nonce_is_signed_at_connect() -> None:
    """A bank's service nkey connects (it signs the server's nonce) and signs messages: a
    server that sent canonical message bytes as its nonce must not get them signed."""
    forged = message_bytes("bank-a", "bank-b", "result", b'{"results":[]}').decode()
    assert server_nonce_problem("Zk3_x-9AbCdEfGh") is None  # nats-server: 15 base64url chars
    assert server_nonce_problem(forged) is not None
    assert server_nonce_problem("") is not None
    client = LedgerClient()
    client._nkeys_seed_str = new_seed().decode()
    client._setup_nkeys_connect()  # what nats-py does on connect with an nkey seed
    assert client._signature_cb is not None
    assert client._signature_cb("Zk3_x-9AbCdEfGh")
    with pytest.raises(nats.errors.Error, match="not base64url"):
        client._signature_cb(forged)
