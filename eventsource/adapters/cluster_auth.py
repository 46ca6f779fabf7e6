"""Authorization for a local cluster: the participants it knows, their nkeys generated in the
cluster's state directory, and the `accounts` block every node's config carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eventsource.adapters.auth_config import render_accounts
from eventsource.adapters.credentials import credentials_dir, ensure_seeds
from eventsource.core.errors import ConfigError
from eventsource.core.subjects import participant_problem


@dataclass(frozen=True)
class ClusterAuth:
    """Start the cluster with authorization on, for these participants and partitions.

    A participant added later needs a new config and two reloads (research note exp_11)."""

    participants: tuple[str, ...]
    partitions: int = 1

    def __post_init__(self) -> None:
        for participant in self.participants:
            if (problem := participant_problem(participant)) is not None:
                raise ConfigError(problem)
        if self.partitions < 1:
            raise ConfigError(f"{self.partitions} partitions: at least 1")


def authorization_block(state_dir: Path, auth: ClusterAuth) -> str:
    """Generate the seeds that are missing (0600), and render the accounts for their keys."""
    keys = ensure_seeds(credentials_dir(state_dir), list(auth.participants))
    return render_accounts(keys, auth.participants, auth.partitions)
