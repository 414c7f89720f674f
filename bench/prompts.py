"""bulkhead-prompts benchmark: prompts/get throughput, cold start and reload latency, over stdio.

With the SDK's own client (`mcp.Client`) against `python -m bulkhead_prompts` subprocesses:

- prompts/get over stdio on a generated library of `--prompts` prompts (default 1,000; a mix of
  single and multi-message prompts, arguments with defaults and allowed values, some embeds):
  calls per second and p50 / p99 latency, one client, `--calls` calls per round spread over all
  prompts, `--rounds` rounds (medians reported), after one warm-up get of every prompt;
- cold start: process spawn -> first prompts/list answer, for the generated library and the
  built-in starter library (median and fastest of `--spawns` spawns after one warm-up);
- reload latency: a prompt file written -> `notifications/prompts/list_changed` received, for a
  handshake-era client (the standalone channel) and a 2026-07-28 client (a
  `subscriptions/listen` stream), `--changes` writes each (median and p99). The server runs with
  its default debounce (200 ms, `--debounce-ms`), which is most of this figure by design.

Everything is local and bounded; nothing here is asserted (see tests/ for behaviour).

    .venv/bin/python bench/prompts.py
    .venv/bin/python bench/prompts.py --prompts 200 --calls 200 --rounds 1 --spawns 2 --changes 3
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.stdio import StdioServerParameters, get_default_environment
from mcp_types import PromptListChangedNotification

from tables import percentile

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
MODERN = "2026-07-28"


def generate_library(root: Path, count: int) -> list[tuple[str, dict[str, str]]]:
    """Write `count` prompts under `root`; return (name, arguments) pairs to call them with."""
    (root / "_shared").mkdir(parents=True, exist_ok=True)
    (root / "_shared" / "guide.md").write_text("- be precise\n- cite lines\n" * 20, encoding="utf-8")
    calls: list[tuple[str, dict[str, str]]] = []
    for index in range(count):
        name = f"prompt_{index:05}"
        kind = index % 4
        front = [
            "---",
            f"name: {name}",
            f"title: Prompt number {index}",
            f"description: Generated prompt {index} for the benchmark, kind {kind}.",
            f"tags: [bench, kind{kind}]",
            "arguments:",
            "  - name: subject",
            "    description: What to work on",
            "    required: true",
            "  - name: tone",
            "    allowed: [plain, formal, brief]",
            "    default: plain",
            "---",
        ]
        if kind == 0:
            body = "Write about {{ subject }} in a {{ tone }} tone.\n"
        elif kind == 1:
            body = (
                "You are an expert. Tone: {{ tone }}.\n<!-- role: assistant -->\nUnderstood.\n"
                "<!-- role: user -->\n{{ subject }}\n"
            )
        elif kind == 2:
            body = (
                "Follow the guide.\n<!-- embed: _shared/guide.md -->\nSubject: {{ subject }} ({{ tone }})\n"
            )
        else:
            body = (
                "{% if tone == 'brief' %}Be brief.{% else %}Explain fully.{% endif %}\n"
                + "Context line about {{ subject }}.\n" * 20
            )
        directory = root / f"group{index % 20:02}"
        directory.mkdir(exist_ok=True)
        (directory / f"{name}.md").write_text("\n".join(front) + "\n" + body, encoding="utf-8")
        calls.append((name, {"subject": f"subject {index}", "tone": ("plain", "formal", "brief")[index % 3]}))
    return calls


def parameters(args: Sequence[str]) -> StdioServerParameters:
    env = get_default_environment()
    env["BULKHEAD_PROMPTS_AUDIT"] = "off"
    return StdioServerParameters(command=sys.executable, args=["-m", "bulkhead_prompts", *args], env=env)


async def cold_start(args: Sequence[str], spawns: int) -> tuple[float, float]:
    """(median, fastest) ms from spawn to the first prompts/list answer; one warm-up spawn first."""
    times: list[float] = []
    for attempt in range(spawns + 1):
        started = time.perf_counter()
        with anyio.fail_after(TIMEOUT):
            async with Client(parameters(args), mode="legacy") as client:
                await client.list_prompts()
                elapsed = (time.perf_counter() - started) * 1000
        if attempt:
            times.append(elapsed)
    return statistics.median(times), min(times)


async def get_throughput(
    args: Sequence[str], calls: list[tuple[str, dict[str, str]]], count: int, rounds: int
) -> tuple[float, float, float]:
    """Median over rounds of (calls/s, p50 ms, p99 ms) for `count` prompts/get calls."""
    results: list[tuple[float, float, float]] = []
    for _ in range(rounds):
        async with Client(parameters(args), mode="legacy") as client:
            # Warm-up: every prompt once, so the figures are steady state (a prompt's template is
            # compiled at its first get, about a millisecond; that cost is in the cold-start row's
            # spirit, not in throughput).
            for name, arguments in calls:
                await client.get_prompt(name, arguments)
            latencies: list[float] = []
            began = time.perf_counter()
            for index in range(count):
                name, arguments = calls[(index * 7919) % len(calls)]
                started = time.perf_counter()
                await client.get_prompt(name, arguments)
                latencies.append((time.perf_counter() - started) * 1000)
            total = time.perf_counter() - began
        results.append((count / total, percentile(latencies, 0.5), percentile(latencies, 0.99)))
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        statistics.median(r[2] for r in results),
    )


def write_change(root: Path, index: int) -> None:
    path = root / "changes" / f"change_{index:04}.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f"---\nname: change_{index:04}\ndescription: Written by the benchmark.\n---\nHello {index}.\n",
        encoding="utf-8",
    )


async def reload_latency_legacy(root: Path, args: Sequence[str], changes: int, offset: int) -> list[float]:
    received = 0
    event = anyio.Event()

    async def handler(message: IncomingMessage) -> None:
        nonlocal received, event
        if isinstance(message, PromptListChangedNotification):
            received += 1
            event.set()
            event = anyio.Event()

    times: list[float] = []
    async with Client(parameters(args), mode="legacy", message_handler=handler) as client:
        await client.list_prompts()
        for index in range(changes):
            seen = received
            started = time.perf_counter()
            write_change(root, offset + index)
            with anyio.fail_after(TIMEOUT):
                while received == seen:
                    await event.wait()
            times.append((time.perf_counter() - started) * 1000)
    return times


async def reload_latency_modern(root: Path, args: Sequence[str], changes: int, offset: int) -> list[float]:
    times: list[float] = []
    async with (
        Client(parameters(args), mode=MODERN) as client,
        client.listen(prompts_list_changed=True) as subscription,
    ):
        events = aiter(subscription)
        for index in range(changes):
            started = time.perf_counter()
            write_change(root, offset + index)
            with anyio.fail_after(TIMEOUT):
                await anext(events)
            times.append((time.perf_counter() - started) * 1000)
    return times


def fmt(value: float) -> str:
    return f"{value:,.1f}"


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompts", type=int, default=1000, help="prompts in the generated library")
    parser.add_argument("--calls", type=int, default=2000, help="prompts/get calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spawns", type=int, default=5, help="cold-start spawns per library")
    parser.add_argument("--changes", type=int, default=10, help="file writes per era for reload latency")
    parser.add_argument("--debounce-ms", type=int, default=200, help="the server's --reload-debounce-ms")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bulkhead-prompts-bench-") as temp:
        root = Path(temp) / "library"
        calls = generate_library(root, options.prompts)
        library_args = ["--library", str(root), "--reload-debounce-ms", str(options.debounce_ms)]
        lines = [
            f"bulkhead-prompts, stdio, {options.prompts} generated prompts",
            "",
            "| measure | value |",
            "|---|---|",
        ]
        rate, p50, p99 = await get_throughput(library_args, calls, options.calls, options.rounds)
        lines += [
            f"| prompts/get calls/s (1 client) | {fmt(rate)} |",
            f"| prompts/get p50 / p99 | {p50:.2f} / {p99:.2f} ms |",
        ]
        median, fastest = await cold_start(library_args, options.spawns)
        label = f"cold start to first prompts/list, {options.prompts} prompts"
        lines.append(f"| {label} | {fmt(median)} ms (min {fmt(fastest)}) |")
        median, fastest = await cold_start([], options.spawns)
        lines.append(
            f"| cold start to first prompts/list, starter library | {fmt(median)} ms (min {fmt(fastest)}) |"
        )
        legacy = await reload_latency_legacy(root, library_args, options.changes, 0)
        modern = await reload_latency_modern(root, library_args, options.changes, options.changes)
        for era, times in (("handshake era", legacy), ("2026-07-28 listen", modern)):
            lines.append(
                f"| file write -> list_changed, {era} (debounce {options.debounce_ms} ms) | "
                f"p50 {fmt(percentile(times, 0.5))} / p99 {fmt(percentile(times, 0.99))} ms |"
            )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    anyio.run(main)
