"""A minimal Neutron REST client (stdlib only) for the interop tier.

With ``auth_strategy = noauth`` every request runs with an admin context; create bodies
need ``project_id``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

PROJECT_ID = "0123456789abcdef0123456789abcdef"


class ApiError(RuntimeError):
    """A request got an HTTP error; carries the status and Neutron's error body."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


class NeutronApi:
    """JSON requests against ``base_url`` (e.g. ``http://127.0.0.1:9696``)."""

    def __init__(self, base_url: str, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, exc.read().decode(errors="replace")) from exc
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    # -- resources ------------------------------------------------------------------

    def create(self, kind: str, **fields: Any) -> dict[str, Any]:
        """POST /v2.0/<kind>s with ``project_id`` filled in; returns the new resource."""
        fields.setdefault("project_id", PROJECT_ID)
        result: dict[str, Any] = self.request("POST", f"/v2.0/{kind}s", {kind: fields})[kind]
        return result

    def create_many(self, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk POST of ``items`` (each gets ``project_id``)."""
        body = {f"{kind}s": [{"project_id": PROJECT_ID, **item} for item in items]}
        result: list[dict[str, Any]] = self.request("POST", f"/v2.0/{kind}s", body)[f"{kind}s"]
        return result

    def show(self, kind: str, resource_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/v2.0/{kind}s/{resource_id}")[kind]
        return result

    def update(self, kind: str, resource_id: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/v2.0/{kind}s/{resource_id}", {kind: fields}
        )[kind]
        return result

    def remove(self, kind: str, resource_id: str) -> None:
        self.delete(f"/v2.0/{kind}s/{resource_id}")

    def agents(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in filters.items())
        result: list[dict[str, Any]] = self.get("/v2.0/agents" + (f"?{query}" if query else ""))[
            "agents"
        ]
        return result

    def ports(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in filters.items())
        result: list[dict[str, Any]] = self.get("/v2.0/ports" + (f"?{query}" if query else ""))[
            "ports"
        ]
        return result
