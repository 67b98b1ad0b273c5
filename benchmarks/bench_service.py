"""Service load: telemetry ingest throughput (columnar batches over loopback) and the p99 latency of read
endpoints under 100 concurrent clients. Targets: >= 50,000 samples/s and p99 < 50 ms.

    .venv/bin/python benchmarks/bench_service.py [--json] [--insecure-http] [--samples 500000]
        [--batch 5000] [--clients 100] [--seconds 10] [--open-rate 200]

Prints ``{"ingest_samples_per_s": .., "p99_ms_100_clients": .., ...}``. The server is a real
``netscaffold serve`` child process on 127.0.0.1 (TLS unless --insecure-http), stopped in ``finally``.

How the reads are measured (the figures depend on it, so it is spelled out):
- The load generator is a separate process (``_loadgen`` below): uvloop, one keep-alive connection per
  client (TLS handshake before the clock starts), requests pre-encoded, responses read by Content-Length:
  a few tens of µs of client CPU per request, so that the client is not what is measured.
- **Closed loop** (``p99_ms_100_clients``): each of ``--clients`` clients sends its next request as soon as
  the previous answer arrives, for ``--seconds``, cycling over the read endpoints. With no think time the
  latency is the queue: p50 ≈ clients / request rate (Little's law), so this is a throughput figure.
- **Open loop** (``open_loop``): the same clients send on a fixed schedule, ``--open-rate`` requests/s in
  all (uniform phases); latency is counted from the *scheduled* time, so a late answer that delays the next
  request is charged to it (no coordinated omission).
- Server CPU per request and per ingested sample come from the server's /proc counters: they hold under
  the contention of a shared machine, where wall-clock figures do not.
- Client and server share this machine's cores; the 1-minute load average is reported beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

READ_PATHS = ("/v1/config", "/v1/settings", "/v1/topology", "/v1/plans", "/v1/model")


# -- load generator (a separate process) ------------------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection issuing GETs (bodies read by Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        else:
            if status not in (204, 304):
                raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        if length:
            await self.reader.readexactly(length)
        return status


def _requests(host: str, token: str) -> list[bytes]:
    return [
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        for path in READ_PATHS
    ]


async def _connect(config: dict[str, Any]) -> Connection:
    context = None
    if config["cafile"]:
        context = ssl.create_default_context(cafile=config["cafile"])
    reader, writer = await asyncio.open_connection(config["host"], config["port"], ssl=context, limit=2**22)
    return Connection(reader, writer)


async def _closed(conn: Connection, requests: list[bytes], stop: float, offset: int, out: list[float]) -> int:
    bad = 0
    i = offset
    while (started := time.perf_counter()) < stop:
        status = await conn.get(requests[i % len(requests)])
        out.append(time.perf_counter() - started)
        bad += status != 200
        i += 1
    return bad


async def _open(
    conn: Connection, requests: list[bytes], start: float, stop: float, period_s: float, out: list[float]
) -> int:
    bad = 0
    k = 0
    while (due := start + k * period_s) < stop:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        status = await conn.get(requests[k % len(requests)])
        out.append(time.perf_counter() - due)  # from the scheduled time: lateness counts
        bad += status != 200
        k += 1
    return bad


async def _generate(config: dict[str, Any]) -> dict[str, Any]:
    clients = config["clients"]
    requests = _requests(f"{config['host']}:{config['port']}", os.environ["NETSCAFFOLD_BENCH_TOKEN"])
    conns = await asyncio.gather(*(_connect(config) for _ in range(clients)))
    for conn in conns:  # warm every connection (and the server's caches) before the clock starts
        for request in requests:
            await conn.get(request)
    latencies: list[float] = []
    cpu0 = time.process_time()
    started = time.perf_counter()
    stop = started + config["seconds"]
    if config["mode"] == "closed":
        bad = await asyncio.gather(*(_closed(c, requests, stop, i, latencies) for i, c in enumerate(conns)))
    else:
        period_s = clients / config["rate"]
        bad = await asyncio.gather(
            *(
                _open(c, requests, started + period_s * i / clients, stop, period_s, latencies)
                for i, c in enumerate(conns)
            )
        )
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.writer.close()
    ms = np.asarray(latencies) * 1e3
    return {
        "mode": config["mode"],
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "non_200": int(sum(bad)),
        "client_cpu_us_per_request": (time.process_time() - cpu0) / max(1, len(latencies)) * 1e6,
    }


def loadgen_main() -> int:
    """``bench_service.py _loadgen`` reads its config as JSON on stdin, prints the result as JSON."""
    import uvloop

    config = json.loads(sys.stdin.read())
    print(json.dumps(uvloop.run(_generate(config))))
    return 0


# -- the benchmark ---------------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _batch(endpoints: list[str], size: int, start_s: float) -> bytes:
    rng = np.random.default_rng(int(start_s))
    src = rng.integers(0, len(endpoints), size)
    dst = (src + 1 + rng.integers(0, len(endpoints) - 1, size)) % len(endpoints)
    body = {
        "time_s": (start_s + np.arange(size) / size).tolist(),
        "src": [endpoints[i] for i in src],
        "dst": [endpoints[i] for i in dst],
        "bytes": rng.uniform(0, 1e6, size).round(1).tolist(),
    }
    return json.dumps(body).encode()


def ingest(
    url: str, token: str, verify: Any, endpoints: list[str], samples: int, batch: int, server_pid: int
) -> dict[str, float]:
    bodies = [_batch(endpoints, batch, 1_800_000_000.0 + i) for i in range(max(1, samples // batch))]
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, verify=verify, timeout=120) as http:
        http.post("/v1/telemetry", content=bodies[0]).raise_for_status()  # warm-up
        cpu0, started = cpu_s(server_pid), time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda b: http.post("/v1/telemetry", content=b).status_code, bodies))
        elapsed, cpu = time.perf_counter() - started, cpu_s(server_pid) - cpu0
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"ingest failed: {sorted(set(statuses))}")
    return {
        "ingest_samples_per_s": len(bodies) * batch / elapsed,
        "ingest_server_cpu_us_per_sample": cpu / (len(bodies) * batch) * 1e6,
        "ingest_batches": len(bodies),
        "batch": batch,
    }


def reads(server: Any, token: str, cafile: str | None, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    config = {
        "host": "127.0.0.1",
        "port": server.port,
        "cafile": cafile,
        "clients": args.clients,
        "seconds": args.seconds,
        "mode": mode,
        "rate": args.open_rate,
    }
    pid = server.process.pid
    cpu0 = cpu_s(pid)
    done = subprocess.run(
        [sys.executable, __file__, "_loadgen"],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        env={**os.environ, "NETSCAFFOLD_BENCH_TOKEN": token},
        check=False,
        timeout=args.seconds * 10 + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    # server CPU over the run includes the warm-up requests (clients x endpoints)
    warm = args.clients * len(READ_PATHS)
    result["server_cpu_us_per_request"] = (cpu_s(pid) - cpu0) / (result["requests"] + warm) * 1e6
    result["load_average_1min"] = load_average()
    return result


def main(argv: list[str] | None = None) -> int:
    from netscaffold.formats.generators import attach_endpoints, leaf_spine
    from netscaffold.formats.netjson import netjson_document
    from netscaffold.service.certs import init_certs
    from netscaffold.service.launch import ServerProcess, make_token

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--insecure-http", action="store_true")
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each read phase")
    parser.add_argument("--open-rate", type=float, default=200.0, help="open-loop requests/s, all clients")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"tls": not args.insecure_http, "load_average_1min_start": load_average()}
    with tempfile.TemporaryDirectory(prefix="nsbench-") as tmp:
        work = Path(tmp)
        certs = None if args.insecure_http else work / "certs"
        verify: Any = True
        cafile = None
        if certs is not None:
            init_certs(certs)
            cafile = str(certs / "ca.pem")
            verify = ssl.create_default_context(cafile=cafile)
        token = make_token(work / "state", "operator")
        server = ServerProcess(work / "state", certs=certs)
        try:
            server.start()
            assert server.process is not None
            topo = attach_endpoints(leaf_spine(4, 8, 8, 1e10))
            httpx.put(
                f"{server.url}/v1/topology",
                json=netjson_document(topo),
                headers={"Authorization": f"Bearer {token}"},
                verify=verify,
                timeout=120,
            ).raise_for_status()
            result |= ingest(
                server.url,
                token,
                verify,
                sorted(topo.endpoints),
                args.samples,
                args.batch,
                server.process.pid,
            )
            closed = reads(server, token, cafile, "closed", args)
            result |= {
                "p99_ms_100_clients": closed["p99_ms"],
                "p50_ms": closed["p50_ms"],
                "read_requests_per_s": closed["requests_per_s"],
                "closed_loop": closed,
            }
            if args.open_rate > 0:
                result["open_loop"] = reads(server, token, cafile, "open", args)
        finally:
            server.stop()
    result["load_average_1min_end"] = load_average()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else value
            print(f"{key:>32}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(loadgen_main() if sys.argv[1:2] == ["_loadgen"] else main())
