"""Which projection database a command means: the flags, NATSBANK_PG_DSN, or the dev one."""

from __future__ import annotations

from pathlib import Path

from eventsource.adapters import postgres as pg
from eventsource.adapters.cluster import dev_state_dir
from eventsource.core.errors import ConfigError
from eventsource.settings import Settings, load_settings
from projections.consumers import projection_name
from projections.store import ProjectionDb


def dev_postgres_dir(settings: Settings) -> Path:
    return dev_state_dir(settings) / "postgres"


def dev_postgres_dsn(settings: Settings) -> str | None:
    """The DSN of the dev PostgreSQL if `dev up --postgres` started one and it still runs."""
    server = pg.load(dev_postgres_dir(settings))
    return server.dsn if server is not None else None


def open_projection_db(
    dsn: str | None, sqlite: Path | None, participant: str | None, name: str | None
) -> tuple[ProjectionDb, str]:
    """The store and its projection name. On PostgreSQL the default projection lives in the
    `public` schema and any other (a participant's, or --name) in a schema of its own name."""
    if sqlite is None:  # flag, then NATSBANK_PG_DSN, then the PostgreSQL of `dev up --postgres`
        config = load_settings()
        dsn = dsn or config.pg_dsn or dev_postgres_dsn(config)
    if (dsn is None) == (sqlite is None):
        raise ConfigError("give exactly one of --dsn URL (or NATSBANK_PG_DSN) and --sqlite DIR")
    if sqlite is not None:
        from projections.sqlite import SqliteDb

        return SqliteDb(sqlite, participant), name or projection_name("sqlite", participant)
    from projections.postgres import PostgresDb

    projection = name or projection_name("postgres", participant)
    schema = "public" if projection == "postgres" else projection
    return PostgresDb(dsn, schema), projection  # type: ignore[arg-type]


async def open_projection(store: ProjectionDb) -> None:
    try:
        await store.open()
    except (OSError, ConnectionError) as exc:
        raise ConfigError(f"cannot open the projection database: {exc}") from None
