"""Service load: telemetry ingest throughput (columnar batches over loopback) and the p99 latency of read
endpoints under 100 concurrent clients. Targets: >= 50,000 samples/s and p99 < 50 ms.

    .venv/bin/python benchmarks/bench_service.py [--json] [--insecure-http] [--samples 500000]
        [--batch 5000] [--clients 100] [--requests-per-client 20]

Prints ``{"ingest_samples_per_s": .., "p99_ms_100_clients": ..}`` (plus details). The server is a real
``netscaffold serve`` child process on 127.0.0.1 (TLS unless --insecure-http), stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from netscaffold.formats.generators import attach_endpoints, leaf_spine
from netscaffold.formats.netjson import netjson_document
from netscaffold.service.certs import init_certs
from netscaffold.service.launch import ServerProcess, make_token

READ_PATHS = ("/v1/config", "/v1/settings", "/v1/topology", "/v1/plans", "/v1/model")


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
    url: str, token: str, verify: Any, endpoints: list[str], samples: int, batch: int
) -> dict[str, float]:
    bodies = [_batch(endpoints, batch, 1_800_000_000.0 + i) for i in range(max(1, samples // batch))]
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, verify=verify, timeout=60) as http:
        http.post("/v1/telemetry", content=bodies[0]).raise_for_status()  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda b: http.post("/v1/telemetry", content=b).status_code, bodies))
        elapsed = time.perf_counter() - started
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"ingest failed: {sorted(set(statuses))}")
    return {
        "ingest_samples_per_s": len(bodies) * batch / elapsed,
        "ingest_batches": len(bodies),
        "batch": batch,
    }


async def _client(url: str, token: str, verify: Any, count: int, latencies: list[float]) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=60
    ) as http:
        await http.get("/healthz")  # connect (and TLS handshake) outside the measurement
        for i in range(count):
            started = time.perf_counter()
            response = await http.get(READ_PATHS[i % len(READ_PATHS)])
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()


def reads(url: str, token: str, verify: Any, clients: int, per_client: int) -> dict[str, float]:
    latencies: list[float] = []

    async def run() -> None:
        await asyncio.gather(*(_client(url, token, verify, per_client, latencies) for _ in range(clients)))

    asyncio.run(run())
    ms = np.asarray(latencies) * 1e3
    return {
        "p99_ms_100_clients": float(np.percentile(ms, 99)),
        "p50_ms": float(np.percentile(ms, 50)),
        "read_requests": len(latencies),
        "clients": clients,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--insecure-http", action="store_true")
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests-per-client", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nsbench-") as tmp:
        work = Path(tmp)
        certs = None if args.insecure_http else work / "certs"
        verify: Any = True
        if certs is not None:
            init_certs(certs)
            verify = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        token = make_token(work / "state", "operator")
        server = ServerProcess(work / "state", certs=certs)
        try:
            server.start()
            topo = attach_endpoints(leaf_spine(4, 8, 8, 1e10))
            headers = {"Authorization": f"Bearer {token}"}
            httpx.put(
                f"{server.url}/v1/topology",
                json=netjson_document(topo),
                headers=headers,
                verify=verify,
                timeout=60,
            ).raise_for_status()
            result: dict[str, Any] = {"tls": certs is not None}
            result |= ingest(server.url, token, verify, sorted(topo.endpoints), args.samples, args.batch)
            result |= reads(server.url, token, verify, args.clients, args.requests_per_client)
        finally:
            server.stop()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:.4g}" if isinstance(value, float) else f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
