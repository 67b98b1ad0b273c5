"""A Python client of the netscaffold service (httpx): one method per endpoint, errors by meaning.

>>> client = Client("https://127.0.0.1:8443", token, ca="certs/ca.pem")  # doctest: +SKIP
>>> client.put_topology(netjson_document(topology))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from netscaffold.errors import BackendUnavailableError, NetscaffoldError, ValidationError


class ServiceError(NetscaffoldError):
    """The service answered with an error status; ``status`` and ``detail`` say which and why."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


class Client:
    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        ca: Path | str | None = None,
        client_cert: tuple[Path | str, Path | str] | None = None,
        timeout_s: float = 30.0,
        verify: bool = True,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        ssl_verify: Any = verify
        if ca is not None and verify:
            import ssl

            ctx = ssl.create_default_context(cafile=str(ca))
            if client_cert is not None:
                ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
            ssl_verify = ctx
        self._http = httpx.Client(
            base_url=server.rstrip("/"), headers=headers, verify=ssl_verify, timeout=timeout_s
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing --------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"cannot reach the service: {exc}", backend="service") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if response.status_code == 422:
                raise ValidationError(f"HTTP 422: {detail}")
            raise ServiceError(response.status_code, detail)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    # -- endpoints -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/healthz")
        return result

    def get_topology(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/topology")
        return result

    def put_topology(self, netjson: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", "/v1/topology", json=netjson)
        return result

    def ingest_telemetry(
        self, time_s: Sequence[float], src: Sequence[str], dst: Sequence[str], bytes_: Sequence[float]
    ) -> dict[str, Any]:
        body = {"time_s": list(time_s), "src": list(src), "dst": list(dst), "bytes": list(bytes_)}
        result: dict[str, Any] = self.request("POST", "/v1/telemetry", json=body)
        return result

    def ingest_routing(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/v1/routing", json={"events": events})
        return result

    def predicted(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/predicted")
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/config")
        return result

    def create_plan(
        self, desired: list[dict[str, Any]] | None = None, *, scaffold: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"source": "scaffold" if scaffold else "desired", "dry_run": dry_run}
        if desired is not None:
            body["desired"] = desired
        result: dict[str, Any] = self.request("POST", "/v1/plans", json=body)
        return result

    def plans(self, status: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", "/v1/plans", params={"status": status} if status else {}
        )
        return result

    def plan(self, plan_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/plans/{plan_id}")
        return result

    def apply_plan(self, plan_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/v1/plans/{plan_id}/apply")
        return result

    def rollback_plan(self, plan_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/v1/plans/{plan_id}/rollback")
        return result

    def model(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/model")
        return result

    def retrain(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/v1/model/retrain")
        return result

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/settings")
        return result

    def put_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", "/v1/settings", json=settings)
        return result

    def metrics(self) -> str:
        return str(self.request("GET", "/metrics"))

    def events(self, *, after: int = 0, wait_s: float = 0.0) -> Iterator[dict[str, Any]]:
        """Events after ``after`` (server-sent events), collected for up to ``wait_s`` seconds."""
        import json

        params = {"after": after, "wait_s": wait_s}
        with self._http.stream("GET", "/v1/events", params=params, timeout=wait_s + 30.0) as response:
            if response.status_code >= 400:
                raise ServiceError(response.status_code, response.read().decode(errors="replace"))
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    yield {"event": kind, **json.loads(line[6:])}
