"""The benchmark's rows, and the markdown tables printed from them."""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Row:
    """One server x scenario line of the table; None prints as a dash."""

    server: str
    scenario: str
    count: int
    init_ms: float | None = None
    first_ms: float | None = None
    start_cpu_ms: float | None = None
    calls_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_ms_per_call: float | None = None
    client_cpu_ms_per_call: float | None = None
    rss_mib: float | None = None
    cpu_range: tuple[float, float] | None = None
    """Lowest and highest server CPU ms/call over repeated rounds."""
    init_min_ms: float | None = None
    first_min_ms: float | None = None
    start_cpu_min_ms: float | None = None
    """Cold start: the fastest spawn, next to the median (noise on a shared machine only adds)."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0..1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cpu_cell(row: Row) -> str:
    """Server CPU ms/call, with its range over rounds when there were several."""
    if row.cpu_range is None:
        return fmt(row.cpu_ms_per_call, 3)
    low, high = row.cpu_range
    return f"{fmt(row.cpu_ms_per_call, 3)} ({low:.3f}-{high:.3f})"


def with_min(value: float | None, minimum: float | None) -> str:
    """A cold-start median, followed by the fastest spawn."""
    return fmt(value, 0) if minimum is None else f"{fmt(value, 0)} (min {fmt(minimum, 0)})"


def table(rows: list[Row]) -> str:
    header = (
        "| server | scenario | n | init ms | first result ms | start CPU ms | calls/s | p50 ms | p99 ms "
        "| server CPU ms/call | client CPU ms/call | peak RSS MiB |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r.server} | {r.scenario} | {r.count} | {with_min(r.init_ms, r.init_min_ms)} "
            f"| {with_min(r.first_ms, r.first_min_ms)} | {with_min(r.start_cpu_ms, r.start_cpu_min_ms)} "
            f"| {fmt(r.calls_per_s, 0)} | {fmt(r.p50_ms, 2)} "
            f"| {fmt(r.p99_ms, 2)} | {cpu_cell(r)} | {fmt(r.client_cpu_ms_per_call, 2)} "
            f"| {fmt(r.rss_mib, 1)} |"
        )
    return "\n".join(lines)


def ratio(
    value: float | None, base: float | None, value_min: float | None = None, base_min: float | None = None
) -> str:
    """`value` against `base` as a factor and a percentage; with minimums, their ratio too."""
    if value is None or base is None or base == 0:
        return "-"
    text = f"{value / base:.2f}x ({(value / base - 1) * 100:+.0f}%)"
    if value_min is not None and base_min:
        text += f"; by min {(value_min / base_min - 1) * 100:+.0f}%"
    return text


def ratios(rows: list[Row], baseline: str) -> str:
    base = {r.scenario: r for r in rows if r.server == baseline}
    lines = [
        f"| server | scenario | init vs {baseline} | first result vs {baseline} "
        f"| server CPU/call (cold start: start CPU) vs {baseline} | peak RSS vs {baseline} |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get(r.scenario)
        if r.server == baseline or b is None:
            continue
        lines.append(
            f"| {r.server} | {r.scenario} | {ratio(r.init_ms, b.init_ms, r.init_min_ms, b.init_min_ms)} "
            f"| {ratio(r.first_ms, b.first_ms, r.first_min_ms, b.first_min_ms)} | {cpu_ratio(r, b)} "
            f"| {ratio(r.rss_mib, b.rss_mib)} |"
        )
    return "\n".join(lines)


def cpu_ratio(row: Row, base: Row) -> str:
    if row.cpu_ms_per_call is not None:
        return ratio(row.cpu_ms_per_call, base.cpu_ms_per_call)
    return ratio(row.start_cpu_ms, base.start_cpu_ms, row.start_cpu_min_ms, base.start_cpu_min_ms)


def median_rows(rounds: list[Row]) -> Row:
    """One row from repeated rounds of a scenario: the median of every figure."""

    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    first = rounds[0]
    cpus = [r.cpu_ms_per_call for r in rounds if r.cpu_ms_per_call is not None]
    cpu_range = (min(cpus), max(cpus)) if cpus else None
    return Row(
        server=first.server,
        scenario=first.scenario + (f" (median of {len(rounds)})" if len(rounds) > 1 else ""),
        count=first.count,
        calls_per_s=med([r.calls_per_s for r in rounds]),
        p50_ms=med([r.p50_ms for r in rounds]),
        p99_ms=med([r.p99_ms for r in rounds]),
        cpu_ms_per_call=med([r.cpu_ms_per_call for r in rounds]),
        cpu_range=cpu_range if len(rounds) > 1 else None,
        client_cpu_ms_per_call=med([r.client_cpu_ms_per_call for r in rounds]),
        rss_mib=med([r.rss_mib for r in rounds]),
    )
