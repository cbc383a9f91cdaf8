"""Minimal Keystone and Neutron REST clients (stdlib only) for the interop tier.

Neutron runs with ``auth_strategy = keystone``: every request carries an ``X-Auth-Token``
that :class:`Token` gets from Keystone (password authentication, project scope) and
renews when Neutron answers 401. The tier's client is Keystone's bootstrap admin; create
bodies still name a ``project_id`` (admin may create for any project).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

PROJECT_ID = "0123456789abcdef0123456789abcdef"


class ApiError(RuntimeError):
    """A request got an HTTP error; carries the status and Neutron's error body."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def _json_request(
    method: str,
    url: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    timeout: float,
) -> tuple[Any, dict[str, str]]:
    """(decoded JSON body or None, response headers); :class:`ApiError` on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            resp_headers = dict(resp.headers.items())
    except urllib.error.HTTPError as exc:
        raise ApiError(method, url, exc.code, exc.read().decode(errors="replace")) from exc
    return (json.loads(raw) if raw else None), resp_headers


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A Keystone user and the project its tokens are scoped to (both in domain Default)."""

    auth_url: str  # e.g. http://127.0.0.1:5000/v3
    username: str
    password: str
    project_name: str


class Token:
    """A project-scoped token for ``creds``, fetched on first use and on :meth:`renew`."""

    #: more headers for every request with this token
    extra_headers: dict[str, str] = {}

    def __init__(self, creds: Credentials, timeout: float = 60) -> None:
        self.creds = creds
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self.project_id = ""

    def get(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._issue()
            return self._token

    def renew(self) -> str:
        with self._lock:
            self._token = None
        return self.get()

    def _issue(self) -> str:
        default = {"id": "default"}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.creds.username,
                            "domain": default,
                            "password": self.creds.password,
                        }
                    },
                },
                "scope": {"project": {"name": self.creds.project_name, "domain": default}},
            }
        }
        reply, headers = _json_request(
            "POST", self.creds.auth_url + "/auth/tokens", body, {}, self.timeout
        )
        self.project_id = reply["token"]["project"]["id"]
        token: str = headers["X-Subject-Token"]
        return token


class NoAuthToken(Token):
    """For a Neutron with ``auth_strategy = noauth`` (no Keystone): no token; the roles
    (read by Neutron's context from ``X-Roles``) as a cloud's admin and Nova's service user
    have them: the ``binding:*`` attributes are the service role's."""

    extra_headers = {"X-Roles": "admin,member,reader,service"}

    def __init__(self) -> None:
        super().__init__(Credentials("", "", "", ""))

    def get(self) -> str:
        return "noauth"

    def renew(self) -> str:
        return "noauth"


class KeystoneApi:
    """JSON requests against Keystone's v3 API with ``token`` (an admin's)."""

    def __init__(self, auth_url: str, token: Token, timeout: float = 60) -> None:
        self.auth_url = auth_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"X-Auth-Token": self.token.get()}
        reply, _ = _json_request(method, self.auth_url + path, body, headers, self.timeout)
        return reply

    def find(self, kind: str, name: str) -> dict[str, Any]:
        """The one ``kind`` (``project``, ``user``, ``role``, ``service``) named ``name``."""
        (found,) = self.request("GET", f"/{kind}s?name={urllib.parse.quote(name)}")[f"{kind}s"]
        result: dict[str, Any] = found
        return result

    def create(self, kind: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/{kind}s", {kind: fields})[kind]
        return result


class NeutronApi:
    """JSON requests against ``base_url`` (e.g. ``http://127.0.0.1:9696``) with ``token``."""

    def __init__(self, base_url: str, token: Token, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        try:
            headers = {"X-Auth-Token": self.token.get(), **self.token.extra_headers}
            reply, _ = _json_request(method, url, body, headers, self.timeout)
        except ApiError as exc:
            if exc.status != 401:
                raise
            # expired or revoked: one more try with a new token
            reply, _ = _json_request(
                method, url, body, {"X-Auth-Token": self.token.renew()}, self.timeout
            )
        return reply

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

    def compute_port(self, network_id: str, host: str, **fields: Any) -> dict[str, Any]:
        """A port as Nova creates it for a VM: owner ``compute:nova``, a fresh device id,
        bound to ``host`` (``fields`` adds or overrides, e.g. ``security_groups``)."""
        return self.create(
            "port",
            network_id=network_id,
            device_owner="compute:nova",
            device_id=str(uuid.uuid4()),
            **{"binding:host_id": host, **fields},
        )

    def plain_network(self, name: str, cidr: str = "192.0.2.0/24") -> dict[str, Any]:
        """A network with one IPv4 subnet, no DHCP and no gateway (VMs are addressed
        statically)."""
        net = self.create("network", name=name)
        self.create(
            "subnet",
            network_id=net["id"],
            cidr=cidr,
            ip_version=4,
            enable_dhcp=False,
            gateway_ip=None,
        )
        return net

    def agents(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in filters.items())
        result: list[dict[str, Any]] = self.get("/v2.0/agents" + (f"?{query}" if query else ""))[
            "agents"
        ]
        return result

    def ports(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in filters.items())
        result: list[dict[str, Any]] = self.get("/v2.0/ports" + (f"?{query}" if query else ""))[
            "ports"
        ]
        return result
