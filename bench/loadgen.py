"""A cheap HTTP load generator, run in its own process: `python -m bench.loadgen ...`.

httpx costs about a millisecond of CPU a request, which on a small machine is taken from the
server and PostgreSQL being measured. This client holds `clients` keep-alive HTTP/1.1
connections on one asyncio loop, writes requests formatted from a pre-built template (a
unique firm id each, so every request appends), and parses only the status line and
Content-Length of each answer. Every answer must be 201; any other is counted and makes the
run fail. It prints one JSON line: completed requests, failures, elapsed seconds and
latency percentiles in ms.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any


def request_template(host: str, port: int, api_key: str | None) -> tuple[bytes, bytes]:
    """The request before and after its body; the body is formatted per request."""
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    head = (f"POST /v1/firms HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
            "Content-Type: application/json\r\nContent-Length: ").encode()
    return head, b"\r\n\r\n"


async def _client(i: int, host: str, port: int, run: str, head: bytes, sep: bytes,
                  stop: float, latencies: list[float], failures: list[str]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.monotonic() < stop:
            body = b'{"id":"b%s-%d-%d","name":"Bench","hq_country":"SG"}' % (
                run.encode(), i, done)
            started = time.perf_counter()
            writer.write(head + str(len(body)).encode() + sep + body)
            status, length = await _read_head(reader)
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 201:
                failures.append(f"{status} {answer[:200]!r}")
            done += 1
    finally:
        writer.close()
    return done


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    """The status code and Content-Length of one answer (uvicorn always sends the length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return status, int(value)
    raise RuntimeError(f"an answer without Content-Length: {head!r}")


async def run(host: str, port: int, clients: int, seconds: float,
              api_key: str | None) -> dict[str, Any]:
    head, sep = request_template(host, port, api_key)
    tag = uuid.uuid4().hex[:6]
    latencies: list[float] = []
    failures: list[str] = []
    started = time.monotonic()
    stop = started + seconds
    counts = await asyncio.gather(*(
        _client(i, host, port, tag, head, sep, stop, latencies, failures)
        for i in range(clients)))
    elapsed = time.monotonic() - started  # includes the last requests' wait past `stop`
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {"requests": sum(counts), "failures": len(failures), "first_failures": failures[:5],
            "seconds": elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    result = asyncio.run(run(args.host, args.port, args.clients, args.seconds, args.api_key))
    print(json.dumps(result))
    if result["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
