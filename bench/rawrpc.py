"""A bare line-in/line-out JSON-RPC client for a server over stdio: the benchmarks' raw client.

It sends compact JSON lines and reads answers without validating them against any schema, so its
own cost per call is as small as a client's can be.
"""

import json
from typing import Any, cast

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

MAX_LINE = 64 * 1024 * 1024


class RawRpc:
    """JSON-RPC over a server process's stdin and stdout."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.stdin = process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        """Write one message as one line."""
        await self.stdin.send(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request; return its response, skipping notifications and the server's requests."""
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads(await self.stdout.receive_until(b"\n", MAX_LINE))
            if isinstance(message, dict):
                response = cast("dict[str, Any]", message)
                if response.get("id") == self.next_id and "method" not in response:
                    return response

    async def initialize(self, protocol_version: str) -> None:
        """The handshake: `initialize`, then `notifications/initialized` (bound it with a deadline)."""
        answer = await self.request(
            "initialize",
            {
                "protocolVersion": protocol_version,
                "capabilities": {},
                "clientInfo": {"name": "bulkhead-bench", "version": "0"},
            },
        )
        if "result" not in answer:
            raise RuntimeError(f"initialize failed: {answer.get('error')}")
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    @staticmethod
    def tool_text(response: dict[str, Any]) -> tuple[str, bool, dict[str, Any] | None]:
        """A tools/call response as (its text, is it an error, its result object)."""
        result = response.get("result")
        if not isinstance(result, dict):
            return json.dumps(response.get("error")), True, None
        fields = cast("dict[str, Any]", result)
        content = cast("list[dict[str, Any]]", fields.get("content") or [])
        text = "".join(str(part.get("text", "")) for part in content)
        return text, bool(fields.get("isError")), fields


async def stop(process: Process, grace: float) -> None:
    """End a stdio server: close its stdin, wait up to `grace` seconds, then kill it."""
    with anyio.CancelScope(shield=True):
        if process.stdin is not None:
            await process.stdin.aclose()
        with anyio.move_on_after(grace):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
