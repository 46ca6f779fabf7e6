"""Every bound the write side puts on a message, a group, a batch, a wait or a retry, declared
once (TigerBeetle's "put a limit on everything"). Units are at the end of the names."""

from __future__ import annotations

# --- What one message, group and batch may hold --------------------------------------------
# Items (transfers, postings, results, confirms, CANCELs) one protocol message carries; a bigger
# message is decided in pieces of this size (PROTOCOL.md section 11).
MAX_ITEMS_PER_MESSAGE = 200
# Items one group commit decides; the pieces of a fetch are committed in groups of this size.
MAX_ITEMS_PER_GROUP = 300
# Messages in one atomic batch: nats-server refuses more (ADR-50). A group whose writes exceed
# it is split in halves and committed as two batches.
MAX_BATCH_MESSAGES = 1000

# --- Layout --------------------------------------------------------------------------------
PARTITIONS_MAX = 64  # ledger partitions streams.yaml may declare

# --- Fetching ------------------------------------------------------------------------------
FETCH_BATCH = 256  # inbox messages one instance takes per fetch (NATSBANK_FETCH_BATCH)
FETCH_BATCH_MAX = 10_000  # the most NATSBANK_FETCH_BATCH / --fetch-batch may ask for
FETCH_WAIT_S = 1.0  # how long a fetch waits for the first message
REBIND_PAUSE_S = 0.5  # after a failed fetch, before the consumer is bound again
WINDOW_PAUSE_S = 0.05  # core mode: between looks at a full window
GROUP_FAILURE_PAUSE_S = 1.0  # after a group failed on a bug; its messages come back unacked

# --- Committing ----------------------------------------------------------------------------
COMMIT_TIMEOUT_S = 10.0  # the commit request of an atomic batch (then: CommitUnknown)
READ_TIMEOUT_S = 5.0  # a direct get or a leader read of one subject
LEADER_PROBE_TIMEOUT_S = 2.0  # a service's look for its partition leader's node, per node
READS_IN_FLIGHT = 64  # concurrent state reads of one instance
STATE_CACHE_KEYS = 200_000  # states an instance remembers after its own commits
# Reads of one account key whose re-fold of the entries (core/snapshot_check.py) could not reach
# the snapshot read (the key moved on meanwhile: a carried copy, a purge) before giving up.
REFOLD_READS_MAX = 3
# A cold re-fold verifies at most this many of the account's last events: beyond it, the fold
# starts at the snapshot of the event this many back (docs/ARCHITECTURE.md, "A snapshot is
# trusted only if..."). Measured: 10,000 events re-fold in 0.3-0.4 s on one busy node.
REFOLD_EVENTS_MAX = 10_000
# An instance keeps a group it is retrying: an in-progress ack this often (below any ack wait).
KEEP_ALIVE_S = 0.8
# A message whose dead letter could not be stored comes back after this long (not acked).
DEAD_LETTER_RETRY_DELAY_S = 10.0
COMMIT_RETRY_PAUSE_STEP_S = 0.1  # the pause after failed attempt n is n steps...
COMMIT_RETRY_PAUSE_MAX_S = 2.0  # ...at most this
# Stale-state refusals after which an instance steps aside a random moment (a hot account
# that another instance moves too), growing with the attempt up to CONTENTION_STEPS_MAX steps.
CONTENTION_FREE_ATTEMPTS = 2
CONTENTION_PAUSE_STEP_S = 0.005
CONTENTION_STEPS_MAX = 20

# --- Submissions in ACK order (services/submission_gate.py) -------------------------------
SUBMISSION_GATE_WAIT_S = 1.0  # how long an instance waits for earlier submissions to be acked
SUBMISSION_GATE_POLL_S = 0.005  # between looks at the submission consumer's ack floor
SUBMISSION_GATE_RETURN_DELAY_S = 0.5  # submissions handed back come again after this long

# --- Core-NATS mode ------------------------------------------------------------------------
# No submission is taken from the inbox while this many records wait for an answer (the inbox
# keeps them). JetStream mode's counterpart is the consumers' max_ack_pending (20,000).
CORE_WINDOW = 20_000
# Incoming records of one sender that may wait for its confirmation (per instance); past it,
# that sender's new postings are shed undecided and its resend clock sends them again. Without
# it, a bank that never confirms would hold the receiver's memory and resend clock for ever.
# Twice the window: an honest sender's unconfirmed records are its own window's postings plus
# the confirms in flight, and the most any participant had waiting at all, in the 100x core run
# of 2,000,000 transfers at once, was 27,113 (docs/FINDINGS.md).
CORE_UNCONFIRMED_PER_PEER = 2 * CORE_WINDOW
# What a core-mode instance holds between its subscription and the engine; more is shed (and
# resent by its sender's clock). 64 MiB is 256 protocol messages of the largest size.
CORE_INBOX_MESSAGES_MAX = 10_000
CORE_INBOX_BYTES_MAX = 64 * 1024 * 1024
RESEND_TICK_S = 0.1  # between looks at the resend clock
RESEND_ITEMS_PER_TICK = 5000  # items resent per tick at most; the rest wait for the next tick
SWEEP_INTERVAL_S = 60.0  # between ledger sweeps (a dead sibling's records, give-up deadlines)

# --- Give-up clock -------------------------------------------------------------------------
GIVE_UP_TICK_S = 0.2  # between looks at the give-up clock

# --- Waiting for outcomes (clients) --------------------------------------------------------
WAIT_READS_PER_ROUND = 256  # records a client reads per polling round
WAIT_FIRST_PAUSE_S = 0.02  # the first pause between rounds, growing by half each round...
WAIT_PAUSE_MAX_S = 0.5  # ...to at most this
SUBMIT_TIMEOUT_S = 10.0  # the PubAck of a submission

# --- Provisioning -------------------------------------------------------------------------
INBOX_SYNC_ATTEMPTS_MAX = 20  # registrations racing to set the streams' inbox subjects

# --- What a command accepts -----------------------------------------------------------------
# The longest wait a command accepts (--timeout and the like): past the longest give-up
# deadline (a week, core/model.py) and the 30 s `submit --wait` adds to it.
WAIT_MAX_S = 8 * 24 * 3600.0
SUBMIT_RANDOM_MAX = 10_000_000  # `submit --random N`: transfers
SUBMIT_RATE_MAX = 1_000_000.0  # `submit --rate R`: transfers a second

# --- Exact reads of a stream (adapters/stream_reader.py) -----------------------------------
STREAM_READ_FETCH = 2000  # messages one fetch of a whole-stream read takes
STREAM_READ_FETCH_WAIT_S = 5.0  # how long such a fetch waits for messages the consumer promised
# A read's ephemeral consumer is removed by the server this long after the reader went away.
READ_CONSUMER_INACTIVE_S = 30.0
KV_CHECK_READS_IN_FLIGHT = 500  # the audit's per-key reads of KV (I5) in flight at a time

# --- Archiving (services/archiver.py) -----------------------------------------------------
ARCHIVE_LEASE_S = 30.0  # an archiver's lease on a stream lasts this long unless renewed
ARCHIVE_LEASE_MIN_S = 2.0  # `archive run --lease`: a run renews it between its steps
ARCHIVE_LEASE_MAX_S = 600.0
ARCHIVE_EVERY_S = 60.0  # `archive run`: between two looks at every stream
# Messages one archive run takes at most: what it holds per key while it folds them, and the
# size of one period's objects, stay bounded whatever the rate.
ARCHIVE_RUN_MESSAGES_MAX = 100_000
# Pacing (core/archive_pace.py): a round's work is spread over this share of `--every`
# (`archive run --pace`); the rest is the margin for what is not paced (writes, purges).
ARCHIVE_PACE_SHARE = 0.75
ARCHIVE_PACE_RATE_MIN = 2_000.0  # messages/s a paced run may always read: small work ends soon
# A paced run takes what it reads in this long at its rate (never fewer than RATE_MIN times
# this): each run's burst of writes, read-back and purge stays a few seconds' worth.
ARCHIVE_PACE_RUN_S = 5.0
ARCHIVE_PACE_STEP_MESSAGES = 500  # a paced read looks at the clock after this many messages
# Between two paced runs of one stream, its lease is free this long (longer than an audit's
# look at it), so that an audit gets in even while a long window is being paced.
ARCHIVE_LEASE_GAP_S = 0.5
ARCHIVE_CARRIES_IN_FLIGHT = 64  # carried-forward writes and leader reads in flight at a time
ARCHIVE_LOOKUPS_IN_FLIGHT = 16  # a decider's archive lookups of one group, at once

# --- Projections ---------------------------------------------------------------------------
PROJECTION_POLL_S = 0.5  # between looks at a projection that is catching up
# Batches a projector holds at once (projections/pipeline.py): one fetched and decoded while
# the one before it commits; 1 would fetch, then commit, then fetch again.
PROJECTOR_BATCHES_HELD = 2

# --- Ledger archive (core/archive_format.py, adapters/archive_store.py) ---------------------
ARCHIVE_BUCKET = "ledger_archive"  # the Object Store bucket of every partition's archive
ARCHIVE_META_BUCKET = "archive"  # the KV bucket of the archive heads and leases
ARCHIVE_PERIOD_MAX = 99_999_999  # object names carry the period in 8 digits
ARCHIVE_CHUNK_BYTES = 128 * 1024  # one Object Store chunk (nats-py's default)
# A period's compressed events stay in memory up to this size, then spill to a temporary file:
# nats-py's put reads a file, and a file can be read again when a put is retried.
ARCHIVE_SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
ARCHIVE_GZIP_LEVEL = 6
ARCHIVE_INFLATE_STEP_BYTES = 1024 * 1024  # output of one decompression step (a gzip bomb stops)
# One NDJSON line: a ledger message is at most 256 KiB (streams.yaml), and its JSON may grow
# when control characters are escaped; anything longer is a corrupt object.
ARCHIVE_LINE_BYTES_MAX = 8 * 1024 * 1024
ARCHIVE_IDS_BYTES_MAX = 512 * 1024 * 1024  # one ids shard, uncompressed
# A period's final records are split into ceil(records / ARCHIVE_IDS_PER_SHARD) shards, so that
# a lookup reads and decodes about this many records, whatever the period's size.
ARCHIVE_IDS_PER_SHARD = 1024
ARCHIVE_IDS_SHARDS_MAX = 10_000  # object names carry the shard in 4 digits
ARCHIVE_SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024  # a period's snapshot, uncompressed
ARCHIVE_PROBLEMS_KEPT = 100  # problems a manifest lists (problem_count counts them all)
ARCHIVE_PROBLEM_CHARS_MAX = 1000  # one problem as a manifest lists it, cut beyond that
ARCHIVE_SMALL_OBJECT_BYTES_MAX = 16 * 1024 * 1024  # a manifest or an hour of the id directory
# Hours of the id directory one period may add itself to (a month). Ids whose times spread
# wider (a client's clock, or chosen ids) are listed under "untimed" beyond the busiest hours.
ARCHIVE_DIRECTORY_HOURS_MAX = 720
ARCHIVE_IDS_CACHE_SHARDS = 32  # ids shards that lookups keep decoded (LRU)
ARCHIVE_REREADS_MAX = 3  # reads of a small object that another writer replaces meanwhile
# A period's key filter (core/archive_filter.py, a Bloom filter over its final records' keys):
# bits per key and hash functions. 10 bits and 7 functions answer "maybe" for about 0.82% of
# the keys a period does not hold ((1 - e^(-7/10))^7); such a miss reads the ids shard as
# before. Changing them changes only periods written afterwards: a filter says its own.
ARCHIVE_FILTER_BITS_PER_KEY = 10
ARCHIVE_FILTER_HASHES = 7
ARCHIVE_FILTER_BITS_MIN = 64  # the filter of a period with few or no final records
# One filter object: 10,000,000 final records (the most a period holds) take 12.5 MB.
ARCHIVE_FILTER_BYTES_MAX = 16 * 1024 * 1024
# The filters lookups keep (LRU, by their bytes): 64 MiB is about 50 million archived records.
ARCHIVE_FILTER_CACHE_BYTES = 64 * 1024 * 1024

# --- Signatures (core/signing.py, adapters/key_registry.py) ------------------------------------
# A receiver reads a sender's registered key again at most this often: a forged message with a
# bad signature costs at most one registry read per sender and interval.
SIGNING_KEY_REFRESH_S = 5.0
SENDER_KEYS_MAX = 10_000  # sender names a receiver remembers having looked up
AUDIT_SIGNATURE_PROBLEMS_KEPT = 20  # messages with a bad signature the audit lists (all counted)

# A participant as a proxy to a remote bank (core/remote.py, `serve --remote-bank`).
REMOTE_TIMEOUT_MS = 500  # how long one ask waits for the remote bank's answer before asking again
REMOTE_ROUNDS_MAX = 8  # asks of one exchange; then the group is retried by the engine
REMOTE_DELAY_MS_MAX = 600_000  # the longest --remote-delay a simulated remote bank takes
REMOTE_WAITING_KEYS_MAX = 100_000  # keys whose first ask a proxy remembers (--remote-decide-after)
