"""Soak (not in CI): a real ``netscaffold serve`` under a steady mix of ingest, reads and plan applies for
--minutes (default 30); its memory is sampled every 10 s. Passes when the memory has no upward trend and
grows under 5 MiB over the last 20 minutes (scaled to the run: the last two thirds).

What is judged is ``RssAnon`` (the process's private heap and stacks: where a leak grows). ``VmRSS`` is
printed too, but it also counts file-backed pages (mapped libraries) that the kernel drops and re-reads
under memory pressure from other processes: on a shared machine it fell by 85 MiB during one soak.

    .venv/bin/python benchmarks/soak_service.py [--minutes 30] [--tls] [--json]

Prints ``{"minutes": .., "anon_start_mib": .., "anon_end_mib": .., "growth_last_window_mib": ..,
"slope_mib_per_h": .., "fitted_rise_last_window_mib": .., "rss_start_mib": .., "rss_end_mib": ..,
"requests": .., "errors": .., "pass": ..}`` (growth: largest minus first sample of the window; slope and
rise: a least-squares line over the window). Loopback only; stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from netscaffold.formats.generators import attach_endpoints, leaf_spine
from netscaffold.formats.netjson import netjson_document
from netscaffold.service.certs import init_certs
from netscaffold.service.launch import ServerProcess, make_token

GROWTH_LIMIT_MIB = 5.0


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, RssAnon) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("RssAnon", float("nan"))


def _traffic(http: httpx.Client, endpoints: list[str], i: int) -> int:
    """One round of the mix; returns the number of error responses."""
    n = 500
    body = {
        "time_s": [1.8e9 + i + k / n for k in range(n)],
        "src": [endpoints[k % len(endpoints)] for k in range(n)],
        "dst": [endpoints[(k + 3) % len(endpoints)] for k in range(n)],
        "bytes": [1000.0 + k for k in range(n)],
    }
    statuses = [http.post("/v1/telemetry", json=body).status_code]
    statuses += [http.get(p).status_code for p in ("/v1/config", "/v1/plans", "/metrics", "/v1/settings")]
    if i % 10 == 0:
        route = {
            "kind": "route",
            "device": "h000",
            "destination": f"198.18.201.{i % 200}/32",
            "next_hops": [{"via": "leaf00"}],
        }
        plan = http.post("/v1/plans", json={"desired": [route]})
        statuses.append(plan.status_code)
        if plan.status_code == 200:
            statuses.append(http.post(f"/v1/plans/{plan.json()['id']}/apply").status_code)
    return sum(1 for s in statuses if s >= 400)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tls", action="store_true", help="serve over TLS (default: plain HTTP)")
    args = parser.parse_args(argv)
    samples: list[tuple[float, float]] = []
    requests = errors = 0
    with tempfile.TemporaryDirectory(prefix="nssoak-") as tmp:
        state = Path(tmp) / "state"
        token = make_token(state, "operator")
        certs = Path(tmp) / "certs" if args.tls else None
        verify: Any = True
        if certs is not None:
            init_certs(certs)
            verify = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        server = ServerProcess(state, certs=certs).start()
        try:
            topo = attach_endpoints(leaf_spine(2, 4, 4, 1e10))
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=verify
            ) as http:
                http.put("/v1/topology", json=netjson_document(topo)).raise_for_status()
                assert server.process is not None
                start = time.monotonic()
                next_sample = start
                i = 0
                while time.monotonic() - start < args.minutes * 60:
                    errors += _traffic(http, sorted(topo.endpoints), i)
                    requests += 5
                    i += 1
                    if time.monotonic() >= next_sample:
                        at, rss, anon = time.monotonic() - start, *memory_mib(server.process.pid)
                        samples.append((at, rss, anon))
                        print(
                            f"t={at:.0f}s rss={rss:.1f}MiB anon={anon:.1f}MiB",
                            file=sys.stderr,
                            flush=True,
                        )
                        next_sample += 10.0
                    time.sleep(0.05)
        finally:
            server.stop()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    anon = np.array([s[2] for s in samples])
    window = t >= t[-1] * (1 / 3)
    growth = float(anon[window].max() - anon[window][0]) if window.any() else 0.0
    slope = float(np.polyfit(t[window], anon[window], 1)[0] * 3600) if window.sum() > 2 else 0.0
    result = {
        "minutes": args.minutes,
        "tls": args.tls,
        "anon_start_mib": float(anon[0]),
        "anon_end_mib": float(anon[-1]),
        "growth_last_window_mib": growth,
        "slope_mib_per_h": slope,
        "fitted_rise_last_window_mib": slope * float(t[window][-1] - t[window][0]) / 3600,
        "rss_start_mib": float(rss[0]),
        "rss_end_mib": float(rss[-1]),
        "requests": requests,
        "errors": errors,
    }
    result["pass"] = growth < GROWTH_LIMIT_MIB and errors == 0
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
