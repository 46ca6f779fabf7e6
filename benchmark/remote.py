"""`natsbank bench --remote-bank simulated`: every receiver a proxy to a remote bank that its
`serve` process simulates (eventsource/core/remote.py)."""

from __future__ import annotations

from eventsource.core.remote import RemotePlan


def remote_args(remote: RemotePlan) -> list[str]:
    """`serve`'s flags for a receiving side that is a proxy to a simulated remote bank."""
    if not remote.active:
        return []
    return [
        "--remote-bank",
        str(remote.mode),
        "--remote-delay",
        f"{remote.delay_ms_min:g}-{remote.delay_ms_max:g}",
        "--remote-loss",
        f"{remote.loss:g}",
        "--remote-duplicate",
        f"{remote.duplicate:g}",
        "--remote-reject",
        f"{remote.reject:g}",
        "--remote-timeout",
        f"{remote.timeout_ms:g}",
        "--remote-decide-after",
        f"{remote.decide_after_ms:g}",
    ]
