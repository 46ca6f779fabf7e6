"""How `natsbank bench --soak` shows its report: the verdict per series, the restarts before and
after, and the samples over time as one PNG of stacked panels."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from benchmark.soak_series import JUDGED, Sample, Trend, chart_series, fitted_line
from eventsource.cli.common import console

# (title, series drawn, log scale); `server_rss_mb.*` stands for every node.
PANELS = (
    ("transfers/s", ("acked_per_s", "completed_per_s"), False),
    ("ACK → final (ms)", ("p50_ms", "p99_ms"), True),
    ("memory (MB RSS)", ("server_rss_mb.*", "server_rss_mb", "service_rss_mb"), False),
    ("live ledger", ("live_subjects", "live_messages"), False),
    ("archive (MB)", ("archive_mb",), False),
)


def print_soak_report(report: dict) -> None:
    soak, totals = report["soak"], report["totals"]
    console.print(
        f"soak: {soak['rate']:g} transfers/s offered for {soak['duration_s']:g} s, horizon "
        f"{soak['horizon']}, {soak['nodes']} node(s), {soak['processes']} service processes; "
        f"{totals['completed']:,} of {totals['acked']:,} ACKed final "
        f"({totals['in_flight_at_end']:,} left), {totals['completed_per_s']:,.1f}/s, "
        f"p50 {_ms(totals['p50_ms'])}, p99 {_ms(totals['p99_ms'])}",
        highlight=False,
    )
    console.print(_trend_table(report))
    console.print(_restart_table(report))
    if report.get("chart"):
        console.print(f"chart: {report['chart']}", highlight=False)
    if report.get("json"):
        console.print(f"samples and report: {report['json']}", highlight=False)
    console.print("commands:", highlight=False)
    for command in report["commands"]:
        console.print(f"  {command}", highlight=False, soft_wrap=True)


def _trend_table(report: dict) -> Table:
    table = Table(
        title=f"trends from {report['trend_from_s']:g} s to the end of the load",
        caption=f"least-squares slope, % of the mean per 10 minutes; flat: at most "
        f"{report['flat_pct_per_10min_max']:g}% (judged series only)",
    )
    for column in ("series", "mean", "% / 10 min", "verdict"):
        table.add_column(column, justify="left" if column == "series" else "right")
    for name, trend in report["trends"].items():
        pct = trend["pct_per_10min"]
        verdict = trend["verdict"] if trend["judged"] else f"({trend['verdict']}, not judged)"
        colour = "red" if trend["judged"] and trend["verdict"] == "rising" else "green"
        table.add_row(
            name,
            f"{trend['mean']:,.1f}" if trend["mean"] is not None else "-",
            f"{pct:+,.1f}" if pct is not None else "-",
            f"[{colour}]{verdict}[/]" if trend["judged"] else verdict,
        )
    return table


def _restart_table(report: dict) -> Table:
    restarts = report["restarts"]
    before, after, ratio = restarts["before"], restarts["after"], restarts["after_over_before"]
    empty = restarts.get("empty")
    table = Table(title="restarts and the audit (seconds)")
    columns = ("", *(("empty ledger", "before (horizon full)") if empty else ("before",)), "after")
    for column in (*columns, "after / before"):
        table.add_column(column, justify="left" if not column else "right")
    rows = (
        ("service instance restart (to /readyz)", "service_s"),
        (f"node restart (to current on every stream; {after['node']})", "node_s"),
        ("natsbank audit --expect-final", "audit_s"),
    )
    for label, key in rows:
        times = ratio[key]
        timed = [t[key] for t in (empty, before, after) if t]
        table.add_row(label, *(f"{t:.2f}" for t in timed), f"{times:.2f}x" if times else "-")
    clean = all(t["audit_ok"] for t in (empty, before, after) if t)
    table.caption = "audits clean" if clean else "[red]an audit found a violation[/]"
    return table


def write_soak_chart(report: dict, path: Path) -> Path:
    """The samples over time, one panel per kind of figure, the fitted trends dashed."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    from matplotlib import pyplot as plt

    samples = [Sample(**s) for s in report["samples"]]
    series = chart_series(samples)
    duration_s = report["soak"]["duration_s"]
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(11, 2.6 * len(PANELS)), sharex=True)
    for axis, (title, names, log) in zip(axes, PANELS, strict=True):
        for name in _expand(names, series):
            values = [float("nan") if v is None else v for v in series[name]]
            axis.plot(series["t_min"], values, "-", label=name, linewidth=1.2)
            line = _fit(report["trends"].get(name), duration_s) if name in JUDGED else None
            if line is not None:
                axis.plot(*line, "--", color="grey", linewidth=1)
        axis.axvspan(0, report["trend_from_s"] / 60, color="grey", alpha=0.08)
        axis.axvline(duration_s / 60, color="grey", linewidth=0.8)
        axis.set_ylabel(title, fontsize=9)
        axis.set_yscale("log" if log else "linear")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("minutes since the load began (shaded: warm-up, not in the trends)")
    soak = report["soak"]
    fig.suptitle(
        f"natsbank soak: {soak['rate']:g} transfers/s, horizon {soak['horizon']}, "
        f"{soak['nodes']} node(s)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _expand(names: tuple[str, ...], series: dict) -> list[str]:
    nodes = [n for n in series if n.startswith("server_rss_mb.")]
    return [n for name in names for n in (nodes if name == "server_rss_mb.*" else [name])]


def _fit(trend: dict | None, duration_s: float):
    return fitted_line(Trend(**trend), duration_s) if trend else None


def _ms(value: float | None) -> str:
    return f"{value:,.0f} ms" if value is not None else "-"
