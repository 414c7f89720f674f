"""What the benchmark reads about a server process from /proc (Linux): children, CPU, peak RSS.

Plain /proc rather than psutil: psutil ships no type information, and these are three fields.
"""

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2 :].split()


def child_pids(parent: int) -> set[int]:
    """Live direct children of `parent`."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # fields[0] is the state (field 3), fields[1] the ppid (field 4); skip zombies.
        if fields is not None and fields[1] == str(parent) and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a `uv run` wrapper and the Python under it, say)."""
    tree = [pid]
    for member in tree:
        tree.extend(sorted(child_pids(member)))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid`'s process tree so far."""
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of `pid`'s process tree, in MiB."""
    total_kib = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system
