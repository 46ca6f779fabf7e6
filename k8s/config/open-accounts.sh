#!/bin/sh
# Demo data for compose.yaml and k8s/accounts-job.yaml: open and fund the accounts that do not
# exist yet, so running it again changes nothing. Funding is the only way money enters the ledger.
# It lists as the audit identity and opens as the funding identity, each with its own seed
# (from `natsbank deploy keys`, mounted in NKEY_DIR).
set -eu
NKEY_DIR=${NKEY_DIR:-/run/secrets/natsbank}

open_account() {  # PARTICIPANT ACCOUNT AMOUNT
  if natsbank --identity audit --nkey "$NKEY_DIR/audit.nk" accounts list --participant "$1" --json | grep -q "\"account\":\"$2\""; then
    echo "$1/$2 already open"
  else
    natsbank --identity funding --nkey "$NKEY_DIR/funding.nk" accounts open "$1" "$2" --currency EUR --fund "$3"
  fi
}

open_account bank-a alice 1000000.00
open_account bank-a anna 1000000.00
open_account bank-b bob 1000000.00
open_account bank-b berta 1000000.00
