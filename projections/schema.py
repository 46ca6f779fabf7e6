"""The projection schema, embedded in the package and applied at start: one list of migrations
per backend, each applied once, in order, and recorded in `schema_migrations`."""

from __future__ import annotations

POSTGRES_MIGRATIONS: list[str] = [
    """
    CREATE TABLE projection_position (
        stream text PRIMARY KEY,
        seq bigint NOT NULL,
        last_event_at timestamptz,
        applied_at timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE projection_position IS
        'Exactly-once: the last ledger stream sequence applied, written in the same transaction '
        'as the rows it produced; events at or below it are skipped.';
    COMMENT ON COLUMN projection_position.last_event_at IS
        'Time stamped on the last applied event by the service that decided it (the lag clock).';

    CREATE TABLE accounts (
        key text PRIMARY KEY,
        participant text NOT NULL,
        account text NOT NULL,
        currency text NOT NULL,
        balance numeric NOT NULL,
        pending_debits numeric NOT NULL,
        pending_credits numeric NOT NULL,
        closed boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL,
        stream text NOT NULL,
        seq bigint NOT NULL,
        UNIQUE (participant, account)
    );
    COMMENT ON TABLE accounts IS
        'One row per account: the snapshot of its last event in the ledger (KV <P>.acct.<A>).';
    COMMENT ON COLUMN accounts.balance IS 'Posted balance in major units, exact (never a float).';
    COMMENT ON COLUMN accounts.pending_debits IS 'Reserved for transfers not yet settled.';
    COMMENT ON COLUMN accounts.pending_credits IS
        'Accepted credits waiting for the submitter''s confirmation; not yet spendable.';
    COMMENT ON COLUMN accounts.seq IS 'Ledger stream sequence of the event this row reflects.';

    CREATE TABLE transfers (
        key text PRIMARY KEY,
        participant text NOT NULL,
        side text NOT NULL CHECK (side IN ('submitter', 'receiver')),
        transfer_id text NOT NULL,
        counterparty text NOT NULL,
        debtor text NOT NULL,
        creditor text NOT NULL,
        amount text NOT NULL,
        currency text NOT NULL,
        comment text NOT NULL DEFAULT '',
        phase text NOT NULL,
        outcome text,
        cause text,
        detail text NOT NULL DEFAULT '',
        reserved_at timestamptz,
        settled_at timestamptz,
        decided_at timestamptz,
        confirmed_at timestamptz,
        updated_at timestamptz NOT NULL,
        stream text NOT NULL,
        seq bigint NOT NULL
    );
    CREATE INDEX transfers_by_participant ON transfers (participant, side, transfer_id);
    CREATE INDEX transfers_open ON transfers (phase) WHERE phase IN ('RESERVED', 'DECIDED');
    COMMENT ON TABLE transfers IS
        'One row per side of a transfer: the submitter''s record (KV <N>.out.<ID>) and the '
        'receiver''s (KV <P>.in.<N>.<ID>).';
    COMMENT ON COLUMN transfers.counterparty IS
        'The other side: the receiver for a submitter row, the submitter for a receiver row.';
    COMMENT ON COLUMN transfers.amount IS
        'Exactly as recorded (text): a refused transfer may keep an invalid amount for the '
        'record; transfers_by_status sums the valid ones as numeric.';
    COMMENT ON COLUMN transfers.phase IS
        'RESERVED/SETTLED (submitter), DECIDED/CONFIRMED (receiver); '
        'SETTLED and CONFIRMED are final.';
    COMMENT ON COLUMN transfers.cause IS
        'Machine-readable rejection cause when outcome = REJECTED.';
    COMMENT ON COLUMN transfers.reserved_at IS 'When the submitter reserved the funds.';
    COMMENT ON COLUMN transfers.settled_at IS 'When the submitter recorded the outcome.';
    COMMENT ON COLUMN transfers.decided_at IS 'When the receiver accepted or declined.';
    COMMENT ON COLUMN transfers.confirmed_at IS 'When the receiver got the confirmation.';

    CREATE VIEW transfers_by_status AS
        SELECT participant, side, phase, outcome, cause, currency, count(*) AS transfers,
               sum(CASE WHEN amount ~ '^[0-9]+(\\.[0-9]+)?$' THEN amount::numeric END) AS amount
        FROM transfers GROUP BY participant, side, phase, outcome, cause, currency;
    COMMENT ON VIEW transfers_by_status IS 'Counts and sums per participant, side and status.';

    CREATE VIEW stuck_transfers AS
        SELECT key, participant, side, transfer_id, counterparty, amount, currency, phase,
               updated_at, now() - updated_at AS waiting
        FROM transfers
        WHERE phase IN ('RESERVED', 'DECIDED') AND updated_at < now() - interval '1 minute';
    COMMENT ON VIEW stuck_transfers IS
        'Records not final for over a minute: a peer down, or a message still being retried.';

    CREATE VIEW participant_summary AS
        SELECT p.participant,
               (SELECT count(*) FROM accounts a WHERE a.participant = p.participant) AS accounts,
               (SELECT count(*) FROM transfers t WHERE t.participant = p.participant
                   AND t.side = 'submitter') AS sent,
               (SELECT count(*) FROM transfers t WHERE t.participant = p.participant
                   AND t.side = 'receiver') AS received,
               (SELECT count(*) FROM transfers t WHERE t.participant = p.participant
                   AND t.phase IN ('RESERVED', 'DECIDED')) AS open
        FROM (SELECT participant FROM accounts UNION SELECT participant FROM transfers) p;
    COMMENT ON VIEW participant_summary IS
        'Per participant: accounts, transfers sent, received, and not yet final.';
    """,
]

SQLITE_MIGRATIONS: list[str] = [
    """
    CREATE TABLE projection_position (
        stream TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        last_event_at INTEGER,  -- unix ms
        applied_at INTEGER NOT NULL
    );
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        participant TEXT NOT NULL,
        account TEXT NOT NULL,
        currency TEXT NOT NULL,
        balance TEXT NOT NULL,  -- exact decimal text, never a float
        pending_debits TEXT NOT NULL,
        pending_credits TEXT NOT NULL,
        closed INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL,  -- unix ms
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        UNIQUE (participant, account)
    );
    CREATE TABLE transfers (
        key TEXT PRIMARY KEY,
        participant TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('submitter', 'receiver')),
        transfer_id TEXT NOT NULL,
        counterparty TEXT NOT NULL,
        debtor TEXT NOT NULL,
        creditor TEXT NOT NULL,
        amount TEXT NOT NULL,
        currency TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        phase TEXT NOT NULL,
        outcome TEXT,
        cause TEXT,
        detail TEXT NOT NULL DEFAULT '',
        reserved_at INTEGER,
        settled_at INTEGER,
        decided_at INTEGER,
        confirmed_at INTEGER,
        updated_at INTEGER NOT NULL,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX transfers_by_id ON transfers (side, transfer_id);
    CREATE VIEW transfers_by_status AS
        SELECT side, phase, outcome, cause, currency, count(*) AS transfers
        FROM transfers GROUP BY side, phase, outcome, cause, currency;
    CREATE VIEW stuck_transfers AS
        SELECT key, side, transfer_id, counterparty, amount, currency, phase, updated_at
        FROM transfers
        WHERE phase IN ('RESERVED', 'DECIDED')
          AND updated_at < (strftime('%s', 'now') - 60) * 1000;
    """,
]
