#!/bin/sh
# Demo data for compose.yaml and k8s/accounts-job.yaml: open and fund the accounts that do not
# exist yet, so running it again changes nothing. Funding is the only way money enters the ledger.
set -eu

open_account() {  # PARTICIPANT ACCOUNT AMOUNT
  if natsbank accounts list --participant "$1" --json | grep -q "\"account\":\"$2\""; then
    echo "$1/$2 already open"
  else
    natsbank accounts open "$1" "$2" --currency EUR --fund "$3"
  fi
}

open_account bank-a alice 1000000.00
open_account bank-a anna 1000000.00
open_account bank-b bob 1000000.00
open_account bank-b berta 1000000.00
