"""IP addresses on devices."""

from __future__ import annotations

import socket
from typing import Any

from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.nlsocket import get_socket


def list_addresses(namespace: str | None, family: int = 0) -> list[dict[str, Any]]:
    """Addresses of a namespace from one dump.

    :param family: 0 for both, 4 or 6.
    :returns: dicts with ``index`` (ifindex), ``cidr``, ``family`` (4/6), ``scope``,
        ``flags``.
    """
    af = {0: 0, 4: socket.AF_INET, 6: socket.AF_INET6}[family]
    sock = get_socket(v.optional_namespace(namespace))

    def request() -> nl.Message:
        msg = nl.ifaddrmsg()
        msg.update({"family": af, "prefixlen": 0, "flags": 0, "scope": 0, "index": 0})
        return msg

    result = []
    for msg in sock.dump(nl.RTM_GETADDR, request):
        address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if address is None:
            continue
        fam = msg["family"]
        result.append(
            {
                "index": int(msg["index"]),
                "cidr": f"{address}/{msg['prefixlen']}",
                "family": 6 if fam == socket.AF_INET6 else 4,
                "scope": int(msg["scope"]),
                "flags": int(msg.get_attr("IFA_FLAGS", msg["flags"])),
            }
        )
    return result
