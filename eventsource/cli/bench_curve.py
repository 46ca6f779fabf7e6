"""`natsbank bench`'s comparisons at equal durability, and its latency curve (table and PNG)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table


def pairs_table(report: dict) -> Table:
    """natsbank against pgbench, one row per durability; the first row is the headline."""
    table = Table(
        title="at equal durability: natsbank against PostgreSQL pgbench TPC-B",
        caption="the first row is the headline; each row's commands are in the report (--json)",
    )
    for column in ("durability", "natsbank", "TPS", "PostgreSQL", "TPS", "ratio"):
        table.add_column(column, justify="right" if column in ("TPS", "ratio") else "left")
    for pair in report["pairs"]:
        nats, pg = pair["natsbank"], pair["postgres"]
        table.add_row(
            pair["durability"],
            f"{nats['name']}\n{nats['fsync']}",
            f"{nats['throughput_per_s']:,.0f}",
            f"pgbench TPC-B\nsynchronous_commit\n={pg['synchronous_commit']}, fsync={pg['fsync']}"
            if pg
            else "- (--skip-postgres)",
            f"{pg['tps']:,.0f}" if pg else "-",
            f"{pair['ratio']:.2f}x" if pair["ratio"] is not None else "-",
        )
    return table


def curve_table(curve: dict) -> Table:
    table = Table(
        title=f"latency under load, durability {curve['durability']} "
        f"(sync interval {curve['sync_interval']})",
        caption=f"each rate a share of the peak {curve['peak_per_s']:,.0f}/s ({curve['peak_from']}"
        f" at full speed), offered for about {curve['point_seconds']:g} s on a fresh cluster; "
        "latency is ACK to final on both sides",
    )
    for column in ("offered", "/s", "completed /s", "p50 ms", "p99 ms", "p99.9 ms", "checks"):
        table.add_column(column, justify="left" if column == "checks" else "right")
    for p in curve["points"]:
        table.add_row(
            f"{p['percent']:g}%",
            f"{p['offered_per_s']:,.0f}",
            f"{p['completed_per_s']:,.0f}",
            f"{p['p50_ms']:,.0f}",
            f"{p['p99_ms']:,.0f}",
            f"{p['p999_ms']:,.0f}",
            "[green]clean[/]" if p["valid"] else f"[red]{p['lost']} lost, audit {p['audit_ok']}[/]",
        )
    return table


def write_curve_chart(report: dict, path: Path) -> Path:
    """p50/p99/p99.9 ACK-to-final latency against the offered rate, and the completed rate on
    a second axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    from matplotlib import pyplot as plt

    curve = report["latency_curve"]
    points = sorted(curve["points"], key=lambda p: p["offered_per_s"])
    offered = [p["offered_per_s"] for p in points]
    fig, latency = plt.subplots(figsize=(8, 4.8))
    for key, label, style in (
        ("p50_ms", "p50", "o-"),
        ("p99_ms", "p99", "s-"),
        ("p999_ms", "p99.9", "^-"),
    ):
        latency.plot(offered, [max(p[key], 0.5) for p in points], style, label=label)
    latency.set(xlabel="offered transfers/s", ylabel="ACK to final (ms)", yscale="log")
    latency.grid(alpha=0.3)
    completed = latency.twinx()
    completed.plot(
        offered, [p["completed_per_s"] for p in points], "k--", alpha=0.6, label="completed /s"
    )
    completed.plot(offered, offered, ":", color="grey", alpha=0.6, label="offered /s")
    completed.set_ylabel("transfers/s")
    lines = latency.get_legend_handles_labels()
    more = completed.get_legend_handles_labels()
    latency.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    fig.suptitle(
        f"natsbank: latency against offered rate (durability {curve['durability']}, "
        f"peak {curve['peak_per_s']:,.0f}/s)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
