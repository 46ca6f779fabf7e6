"""How `natsbank bench` shows its report: a rich table per run, and the sweep as a PNG."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from eventsource.cli.bench_curve import curve_table, pairs_table
from eventsource.cli.common import console


def print_report(report: dict) -> None:
    console.print(pairs_table(report))
    table = Table(title="natsbank bench", caption=_machine_line(report["machine"]))
    for column in ("system", "loss", "TPS", "vs PG", "latency ms", "messages / transfer"):
        table.add_column(column, justify="left" if column == "system" else "right")
    table.add_column("checks")
    pg = report["baseline"]
    if pg:
        latency = f"avg {pg['latency_avg_ms']:.1f}"
        table.add_row(pg["name"], "-", f"{pg['tps']:,.0f}", "1.00x", latency, "-", "reference")
    for run in report["runs"]:
        table.add_row(
            run["name"]
            + (f" x{run['scale']}" if run.get("scale", 1) > 1 else "")
            + f"\nsync {run['sync_interval']}",
            f"{run['loss']:.0%}",
            f"{run['throughput_per_s']:,.0f}\n99%: {run['throughput_99_per_s']:,.0f}",
            f"{run['vs_postgres']:.2f}x" if run["vs_postgres"] is not None else "-",
            f"p50 {run['p50_ms']:,.0f}\np99 {run['p99_ms']:,.0f}\nmax {run['max_ms']:,.0f}",
            f"{run['protocol_messages_per_transfer']:.2f} sent\n"
            f"{run['redeliveries_per_transfer']:.2f} again\n"
            f"{run['server_messages_per_transfer']:.1f} servers",
            f"{_red_unless_zero(run['lost'])} lost\n"
            f"{_red_unless_zero(run['double_applied'])} applied 2x\n"
            + ("audit [green]clean[/]" if run["audit_ok"] else f"[red]{run['violations']}[/]"),
        )
    console.print(table)
    _print_notes(report)


def _print_notes(report: dict) -> None:
    pg = report["baseline"]
    console.print(
        "messages / transfer: protocol messages the endpoints sent (one carries up to 200 "
        "transfers), messages sent again (JetStream: server redeliveries; core: endpoint "
        "resends), and every message in and out of the nats-servers (clients, routes, "
        "replication; /varz). TPS: all transfers final; 99%: until 99% were final",
        highlight=False,
    )
    if pg:
        console.print(
            f"PostgreSQL: scale {pg['scale']}, {pg['clients']} clients, {pg['threads']} threads, "
            f"fsync {pg['fsync']}, synchronous_commit {pg['synchronous_commit']}; "
            f"{pg['transactions']:,} transactions in {pg['seconds']} s, "
            f"{pg['failed_transactions']} failed; vs PG: each run against pgbench at its "
            "durability (the table above)",
            highlight=False,
        )
    _print_signatures(report.get("signatures"))
    first = report["runs"][0]
    console.print(
        f"natsbank: {first['nodes']} node(s), {first['processes']} service processes, "
        f"{first['instances']} instance(s) per participant, {len(first['participants'])} "
        f"participants, sync interval {first['sync_interval']}, a fresh cluster per run; "
        "latency is ACK to confirmed on both sides",
        highlight=False,
    )
    _print_runs(report)
    if any(run.get("store") == "shared" for run in report["runs"]):
        for table in _store_tables(report):
            console.print(table)
    for run in report["runs"]:
        if run.get("projectors"):
            console.print(_projector_table(run))
    if report.get("scales"):
        console.print(_scale_table(report["scales"]))
    if report.get("latency_curve"):
        console.print(curve_table(report["latency_curve"]))
        if report["latency_curve"].get("chart"):
            console.print(f"latency chart: {report['latency_curve']['chart']}", highlight=False)
    if report.get("chart"):
        console.print(f"chart: {report['chart']}", highlight=False)
    console.print("commands:", highlight=False)
    for command in report["commands"]:
        console.print(f"  {command}", highlight=False, soft_wrap=True)


def _print_signatures(figures: dict | None) -> None:
    """The micro-measure of one ed25519 signature per protocol message (PROTOCOL.md section 12);
    the runs' throughput is with signing and verifying on."""
    if not figures:
        return
    parts = [
        f"{name.split('_')[0]} transfer(s), {f['message_bytes']:,} B: "
        f"{f['signs_per_s']:,} signs/s, {f['verifies_per_s']:,} verifies/s"
        for name, f in figures.items()
    ]
    console.print(
        "signatures (one per protocol message, measured on one core): " + "; ".join(parts),
        highlight=False,
    )


def _print_runs(report: dict) -> None:
    for run in report["runs"]:
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(run["outcomes"].items()))
        kills = run["service_kills"] + run["node_kills"]
        console.print(
            f"  {run['mode']} at {run['loss']:.0%} loss: {run['completed']:,} of "
            f"{run['transfers']:,} final in {run['seconds']:.1f} s ({outcomes}); "
            f"faults {run['faults_injected']}; peak memory: servers "
            f"{run['peak_server_rss_mb']:,.0f} MB, services {run['peak_service_rss_mb']:,.0f} MB"
            + (
                f"; {run['service_kills']} service and {run['node_kills']} node kills"
                if kills
                else ""
            )
            + (f"; remote bank {run['remote']}" if run.get("remote") else ""),
            highlight=False,
        )


def write_chart(report: dict, path: Path) -> Path:
    """Messages per transfer (through the servers; sent by the endpoints) and latency against
    the loss rate, one line per mode."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    from matplotlib import pyplot as plt

    fig, (servers, endpoints, latency) = plt.subplots(1, 3, figsize=(15, 4.2))
    headline = [r for r in report["runs"] if r["durability"] == report["durability"][0]]
    for mode in dict.fromkeys(run["mode"] for run in headline):
        runs = sorted(
            (r for r in headline if r["mode"] == mode and r.get("scale", 1) == 1),
            key=lambda r: r["loss"],
        )
        loss = [100 * r["loss"] for r in runs]
        servers.plot(loss, [r["server_messages_per_transfer"] for r in runs], "o-", label=mode)
        sent = [r["protocol_messages_per_transfer"] for r in runs]
        again = [r["redeliveries_per_transfer"] for r in runs]
        endpoints.plot(loss, sent, "o-", label=f"{mode}: sent (first + again)")
        endpoints.plot(loss, again, "s--", label=f"{mode}: sent again")
        latency.plot(loss, [r["p50_ms"] for r in runs], "o-", label=f"{mode} p50")
        latency.plot(loss, [r["p99_ms"] for r in runs], "s--", label=f"{mode} p99")
    servers.set(xlabel="protocol messages lost (%)", ylabel="server messages per transfer")
    servers.set_title("in + out of the nats-servers (/varz)", fontsize=9)
    endpoints.set(xlabel="protocol messages lost (%)", ylabel="protocol messages per transfer")
    endpoints.set_title("posting/result/confirm messages (up to 200 transfers each)", fontsize=9)
    latency.set(xlabel="protocol messages lost (%)", ylabel="ACK to final (ms)", yscale="log")
    latency.set_title("latency, ACK to confirmed on both sides", fontsize=9)
    for axis in (servers, endpoints, latency):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("natsbank: JetStream vs core NATS under message loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _red_unless_zero(count: int) -> str:
    return f"[red]{count:,}[/]" if count else "[green]0[/]"


def _machine_line(machine: dict) -> str:
    return (
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), nats-server {machine['nats_server']}, "
        f"pgbench {machine['pgbench'] or '-'}, Python {machine['python']}"
    )


def _projector_table(run: dict) -> Table:
    table = Table(
        title="projector, measured after the run above (which ran without it)",
        caption="catch-up: the run's ledger as a backlog; live: as many transfers again at "
        "full speed while it follows; lag in events not applied and seconds behind",
    )
    for column in ("into", "catch-up", "live TPS", "lag p99", "lag max", "after final"):
        table.add_column(column, justify="left" if column == "into" else "right")
    table.add_column("checks")
    for p in run["projectors"]:
        live, rate = p["live"], p["catch_up"]["events_per_s"]
        table.add_row(
            p["backend"],
            f"{rate:,.0f} ev/s" if rate else "-",
            f"{live['transfers_per_s']:,.0f}",
            f"{live['lag_events_p99']:,} ev\n{live['lag_seconds_p99']:.2f} s",
            f"{live['lag_events_max']:,} ev\n{live['lag_seconds_max']:.2f} s",
            f"{live['catch_up_after_final_s']:.2f} s",
            f"{p['events_applied']:,}/{p['ledger_state_events']:,} events\n"
            + ("I6 [green]clean[/]" if p["i6_ok"] else f"[red]{p['i6_differences']}[/]"),
        )
    return table


def _store_tables(report: dict) -> list[Table]:
    """Independent against shared store at 0% loss: the figures, and the code each needs."""
    figures = Table(title="independent vs shared store, 0% loss (per transfer: messages)")
    for column in ("store", "TPS", "p50/p99 ms", "protocol", "ledger", "servers", "conflicts"):
        figures.add_column(column, justify="left" if column == "store" else "right")
    figures.add_column("checks")
    code = Table(
        title="lines of code (no comments, docstrings or blanks)",
        caption="own: modules only this store runs (JetStream mode), of which the give-up "
        "saga; + common: with those both run; audit: its checker",
    )
    for column in ("store", "own", "give-up", "+ common", "audit"):
        code.add_column(column, justify="left" if column == "store" else "right")
    lines = report["protocol_lines"]
    for run in report["runs"]:
        if run["loss"] or run.get("scale", 1) != 1 or run["mode"] == "core":
            continue
        store = run.get("store", "independent")
        figures.add_row(
            store,
            f"{run['throughput_per_s']:,.0f}",
            f"{run['p50_ms']:,.0f}/{run['p99_ms']:,.0f}",
            f"{run['protocol_messages_per_transfer']:.3f}",
            f"{run['ledger_messages_per_transfer']:.2f}",
            f"{run['server_messages_per_transfer']:.1f}",
            f"{run['conflicts']:,}",
            "[green]clean[/]"
            if run["audit_ok"] and not run["lost"] and not run["double_applied"]
            else "[red]failed[/]",
        )
        count = lines[store]
        code.add_row(
            store,
            f"{count['own']:,}",
            f"{count['of_which_give_up']:,}",
            f"{count['with_common']:,}",
            f"{count['audit']:,}",
        )
    return [figures, code]


def _unfilled_note(rows: list[dict]) -> str:
    short = [f"{row['scale']}x" for row in rows if row.get("horizon_filled") is False]
    if not short:
        return ""
    return (
        f"\n[yellow]{', '.join(short)} ended before the horizon filled: raise --transfers, or the"
        " ratios compare a ledger that never archived with ones that did[/]"
    )


def _scale_table(rows: list[dict]) -> Table:
    """Each scale against 1x: throughput, latency, and peak memory (servers, services)."""
    rate = rows[0]["offered_per_s"]
    table = Table(
        title="scale: each run against the 1x run of its store and mode (0% loss)",
        caption=f"every run offered {rate:g} transfers/s, so a run at N x lasts N times longer;"
        f" live horizon {rows[0]['horizon']}; subjects: live at the end" + _unfilled_note(rows)
        if rate
        else "every run pushed at once (no --rate): latency and memory include the backlog",
    )
    for column in (
        "run",
        "transfers",
        "TPS",
        "p50/p99 ms",
        "servers MB",
        "services MB",
        "subjects",
    ):
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in rows:
        table.add_row(
            f"{row['store']} {row['mode']} x{row['scale']}",
            _transfers(row),
            f"{row['throughput_per_s']:,.0f}{_times(row['throughput_per_s_vs_1x'])}",
            f"{row['p50_ms']:,.0f}/{row['p99_ms']:,.0f}{_times(row['p99_ms_vs_1x'])}",
            f"{row['peak_server_rss_mb']:,.0f}{_times(row['peak_server_rss_mb_vs_1x'])}",
            f"{row['peak_service_rss_mb']:,.0f}{_times(row['peak_service_rss_mb_vs_1x'])}",
            f"{row['live_subjects']:,}{_times(row['live_subjects_vs_1x'])}",
        )
    return table


def _transfers(row: dict) -> str:
    """Measured, and with --warmup the history they ran on (warm-up included)."""
    if not row.get("warmup_transfers"):
        return f"{row['transfers']:,}"
    return f"{row['transfers']:,}\nhistory {row['history_transfers']:,}"


def _times(ratio: float | None) -> str:
    return f"\n{ratio:.2f}x" if ratio is not None else ""
