"""Transport, request context and the broker preflight.

Neutron sets oslo.messaging's ``control_exchange`` default to ``neutron``; an agent that
does not do the same publishes into an exchange nobody consumes (§1.1).
"""

from __future__ import annotations

import datetime
import importlib
import socket
import urllib.parse
from typing import Any

import oslo_messaging
import oslo_messaging.opts
from oslo_config import cfg
from oslo_context.context import RequestContext

from netagent.common.exceptions import PreflightError

CONTROL_EXCHANGE = "neutron"


def build_transport(conf: cfg.ConfigOpts, url: str | None = None) -> Any:
    """Build the RPC transport from ``url`` or else ``[DEFAULT] transport_url``.

    Registers oslo.messaging's own options (``transport_url``, ``rpc_response_timeout``,
    ``[oslo_messaging_rabbit]``...) on ``conf`` as a side effect, the oslo way.

    :raises oslo_messaging.InvalidTransportURL: malformed or missing URL.
    """
    oslo_messaging.set_transport_defaults(control_exchange=CONTROL_EXCHANGE)
    register_opts(conf)
    return oslo_messaging.get_rpc_transport(conf, url=url)


#: Seconds a broker's TCP port may take to accept a connection (preflight).
BROKER_TIMEOUT = 3.0


def check_broker(conf: cfg.ConfigOpts) -> str:
    """Preflight: every host of ``transport_url`` accepts a TCP connection (no login).

    :raises PreflightError: no URL, a malformed one, or a host that does not answer.
    """
    # the same order as build_transport: the default first, or registering twice differs
    oslo_messaging.set_transport_defaults(control_exchange=CONTROL_EXCHANGE)
    register_opts(conf)
    if not conf.transport_url:
        raise PreflightError("[DEFAULT] transport_url is not set")
    try:
        parsed = oslo_messaging.TransportURL.parse(conf, conf.transport_url)
    except oslo_messaging.InvalidTransportURL as exc:
        raise PreflightError(f"transport_url is not valid: {exc}") from None
    answered = []
    for host in parsed.hosts:
        where = f"{host.hostname}:{host.port or 5672}"
        try:
            with socket.create_connection(
                (host.hostname or "localhost", host.port or 5672), timeout=BROKER_TIMEOUT
            ):
                answered.append(where)
        except OSError as exc:
            raise PreflightError(f"broker {where} does not answer: {exc}") from None
    return "TCP connect to " + ", ".join(answered)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every option oslo.messaging documents (the ``oslo.messaging``
    oslo-config-generator namespace) on ``conf``, so that ``rpc_response_timeout`` and the
    ``[oslo_messaging_rabbit]`` options can be read and overridden before the first client
    exists. Idempotent.
    """
    for group, opts in oslo_messaging.opts.list_opts():
        conf.register_opts(opts, group=group)
    _register_global_only_opts(conf)


def _register_global_only_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging 18.3 reads ``[oslo_messaging_tracing]`` and
    ``[oslo_messaging_metrics]`` from the transport's config on every call, but registers
    those groups only on the global ``cfg.CONF`` (at import). netagent uses a ConfigOpts
    of its own, so register them there too; a no-op where the modules do not exist.
    """
    for module_name, attr, group in (
        ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
        ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        opts = getattr(module, attr, None)
        if opts:
            conf.register_opts(opts, group=group)


def admin_context() -> dict[str, Any]:
    """The request context sent with every call and cast (§1.4).

    An admin context with no user and no project, as Neutron's own agents send: without
    ``is_admin`` the server scopes its database queries to a project and finds nothing.
    oslo.context's dictionary (request id, roles, scope), plus what neutron-lib's context
    adds to it (``ContextBase.to_dict``: user and project ids and names, timestamp).
    """
    values: dict[str, Any] = RequestContext(
        is_admin=True, roles=["admin"], overwrite=False
    ).to_dict()
    now = datetime.datetime.now(tz=datetime.UTC).replace(tzinfo=None)
    values.update(
        {
            "user_id": None,
            "project_id": None,
            "tenant_id": None,
            "user_name": None,
            "project_name": None,
            "tenant_name": None,
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
    )
    return values


def describe_url(url: str | None) -> str:
    """A transport URL for logs, with passwords replaced by ``***``."""
    if not url:
        return "<no transport_url>"
    parsed = urllib.parse.urlsplit(url)
    hosts = []
    for netloc in parsed.netloc.split(","):
        user, sep, host = netloc.rpartition("@")
        if sep and ":" in user:
            user = user.split(":", 1)[0] + ":***"
        hosts.append(f"{user}@{host}" if sep else host)
    return urllib.parse.urlunsplit(parsed._replace(netloc=",".join(hosts)))
