#!/bin/sh
# The load injector of compose.yaml: batches of 1.00 EUR transfers between the demo accounts.
# A bank's client credential submits for that bank only, so each batch is submitted by its
# debtor's bank with that bank's seed (from `natsbank deploy keys`, mounted in NKEY_DIR).
set -eu
NKEY_DIR=${NKEY_DIR:-/run/secrets/natsbank}
BATCHES=${LOAD_BATCHES:-100}
SIZE=${LOAD_BATCH_SIZE:-100}

batch() {  # BATCH-NUMBER DEBTOR-BANK DEBTOR CREDITOR-BANK CREDITOR
  file=/tmp/load-$2.ndjson
  # Ids are ULIDs: with a live horizon (k8s/config/streams.yaml) an id must carry its time.
  python3 - "$file" "$SIZE" "$2" "$3" "$4" "$5" <<'PY'
import json
import sys

from ulid import ULID

path, size, debtor_bank, debtor, creditor_bank, creditor = sys.argv[1:]
with open(path, "w") as out:
    for _ in range(int(size)):
        line = {
            "id": str(ULID()),
            "debtor": {"participant": debtor_bank, "account": debtor},
            "creditor": {"participant": creditor_bank, "account": creditor},
            "amount": "1.00",
            "currency": "EUR",
        }
        out.write(json.dumps(line) + "\n")
PY
  # Spelled out per bank, so that tests/deploy can check each credential against its identity.
  if [ "$2" = bank-a ]; then
    natsbank --identity client.bank-a --nkey "$NKEY_DIR/client.bank-a.nk" submit --file "$file" --json >/dev/null
  else
    natsbank --identity client.bank-b --nkey "$NKEY_DIR/client.bank-b.nk" submit --file "$file" --json >/dev/null
  fi
}

n=0
while [ "$n" -lt "$BATCHES" ]; do
  batch "$n" bank-a alice bank-b bob
  batch "$n" bank-b berta bank-a anna
  n=$((n + 1))
  echo "submitted $((n * SIZE * 2)) transfers"
done
