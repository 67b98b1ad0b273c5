"""Durability of the service under ``kill -9``: RUNS times, stream telemetry batches and plan
create/apply calls at a server, SIGKILL it at a random moment, restart it on the same state and check that
every acknowledged write is there and the state is consistent (integrity check, config = the last applied
plan's result).

    .venv/bin/python benchmarks/durability_service.py [--runs 50] [--seed 0] [--json]

Prints ``{"runs": .., "acknowledged_batches": .., "acknowledged_applies": .., "lost": 0, "inconsistent": 0,
"errors": 0}`` (errors: error responses other than the kill itself; their server log goes to stderr).
Servers listen on 127.0.0.1 (plain HTTP: TLS is not what is measured) and are stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from netscaffold.formats.generators import attach_endpoints, leaf_spine
from netscaffold.formats.netjson import netjson_document
from netscaffold.service.launch import ServerProcess, make_token

BATCH = 200


class Stream:
    """Writes until stopped; remembers what the server acknowledged."""

    def __init__(self, url: str, token: str, endpoints: list[str], run: int) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
        self.endpoints = endpoints
        self.run = run
        self.batches: list[float] = []
        self.applied: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.error: str | None = None

    def go(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self._one(i)
            except httpx.TransportError:
                return  # the server is gone: what was acknowledged so far is what counts
            except httpx.HTTPStatusError as exc:
                self.error = f"{exc.response.status_code} {exc.request.url.path}: {exc.response.text[:300]}"
                return
            i += 1

    def _one(self, i: int) -> None:
        base = self.run * 1e6 + i * 10.0
        src = [self.endpoints[k % len(self.endpoints)] for k in range(BATCH)]
        dst = [self.endpoints[(k + 1) % len(self.endpoints)] for k in range(BATCH)]
        body = {
            "time_s": [base + k / BATCH for k in range(BATCH)],
            "src": src,
            "dst": dst,
            "bytes": [1000.0] * BATCH,
        }
        self.http.post("/v1/telemetry", json=body).raise_for_status()
        self.batches.append(base)
        if i % 3 == 0:
            route = {
                "kind": "route",
                "device": "h000",
                "destination": f"198.18.200.{i % 250}/32",
                "next_hops": [{"via": "leaf00"}],
            }
            plan = self.http.post("/v1/plans", json={"desired": [route]})
            plan.raise_for_status()
            applied = self.http.post(f"/v1/plans/{plan.json()['id']}/apply")
            applied.raise_for_status()
            self.applied.append(applied.json())


def _check(state: Path, url: str, token: str, stream: Stream) -> tuple[int, int]:
    """(lost acknowledged writes, inconsistencies) after the restart."""
    lost = inconsistent = 0
    db = sqlite3.connect(state / "state.db")
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            inconsistent += 1
        for base in stream.batches:
            n = db.execute(
                "SELECT count(*) FROM telemetry WHERE time_s >= ? AND time_s < ?", (base, base + 1)
            ).fetchone()[0]
            lost += n != BATCH
    finally:
        db.close()
    # generous: the first reads after a restart may wait on a loaded, shared machine
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=180.0) as http:
        for plan in stream.applied:
            if http.get(f"/v1/plans/{plan['id']}").json()["status"] not in ("applied", "rolled-back"):
                lost += 1
        config = http.get("/v1/config").json()
        applied = http.get("/v1/plans", params={"status": "applied", "limit": 1}).json()
        if applied and applied[0]["result_digest"] != config["digest"]:
            inconsistent += 1
    return lost, inconsistent


def one_run(work: Path, run: int, rng: random.Random) -> dict[str, Any]:
    state = work / f"state{run}"
    token = make_token(state, "operator")
    server = ServerProcess(state).start()
    try:
        topo = attach_endpoints(leaf_spine(2, 2, 2, 1e9))
        auth = {"Authorization": f"Bearer {token}"}
        put = httpx.put(f"{server.url}/v1/topology", json=netjson_document(topo), headers=auth, timeout=180)
        if put.status_code != 200:
            error = f"PUT topology {put.status_code}; server log: {server.log()[-1500:]}"
            return {"batches": 0, "applies": 0, "lost": 0, "inconsistent": 0, "errors": 1, "error": error}
        stream = Stream(server.url, token, sorted(topo.endpoints), run)
        writer = threading.Thread(target=stream.go)
        writer.start()
        time.sleep(rng.uniform(0.2, 1.5))
        server.kill9()
        server_log = server.log()
        stream.stop.set()
        writer.join()
        stream.http.close()
    finally:
        server.stop()
    server = ServerProcess(state).start()
    try:
        lost, inconsistent = _check(state, server.url, token, stream)
    finally:
        server.stop()
    result: dict[str, Any] = {
        "batches": len(stream.batches),
        "applies": len(stream.applied),
        "lost": lost,
        "inconsistent": inconsistent,
        "errors": int(stream.error is not None),
    }
    if stream.error is not None:
        result["error"] = f"{stream.error}; server log: {server_log[-1500:]}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    keys = ("runs", "acknowledged_batches", "acknowledged_applies", "lost", "inconsistent", "errors")
    totals = dict.fromkeys(keys, 0)
    with tempfile.TemporaryDirectory(prefix="nsdur-") as tmp:
        for run in range(args.runs):
            result = one_run(Path(tmp), run, rng)
            totals["runs"] += 1
            totals["acknowledged_batches"] += result["batches"]
            totals["acknowledged_applies"] += result["applies"]
            totals["lost"] += result["lost"]
            totals["inconsistent"] += result["inconsistent"]
            totals["errors"] += result["errors"]
            if "error" in result:
                print(f"run {run}: server error: {result['error']}", file=sys.stderr)
            print(f"run {run}: {result}", file=sys.stderr, flush=True)
    print(json.dumps(totals))
    return 0 if totals["lost"] == totals["inconsistent"] == totals["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
