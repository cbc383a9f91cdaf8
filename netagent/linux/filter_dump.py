"""Read-only dumps of a namespace's filter state, for ``netagent-status explain``.

``iptables-save -c`` (the rules *with* their packet counters, which the iptables
manager's own reads leave out), ``ipset save`` and ``ebtables-nft-save``. Nothing here
changes the kernel.
"""

from __future__ import annotations

import subprocess

from netagent.linux.iptables import backend as iptables_backend
from netagent.privileged import ebtables as priv_ebtables
from netagent.privileged import iptables as priv_iptables

TIMEOUT = 30.0


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if proc.returncode != 0:
        raise OSError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def iptables_filter(namespace: str | None, backend: str, family: int) -> str:
    """``iptables-save -c -t filter`` of one family (``backend``: nft, legacy or auto).

    :raises OSError: the tool failed
    """
    if backend == "auto":
        backend = iptables_backend.resolve("auto", namespace, None)
    if backend not in priv_iptables.BACKENDS or family not in (4, 6):
        raise ValueError(f"bad backend {backend!r} or family {family!r}")
    tool = f"{'ip6tables' if family == 6 else 'iptables'}-{backend}-save"
    return _run([*priv_iptables.netns_prefix(namespace), tool, "-c", "-t", "filter"])


def ipsets(namespace: str | None) -> str:
    """``ipset save`` (every set of the namespace).

    :raises OSError: the tool failed
    """
    return _run([*priv_iptables.netns_prefix(namespace), "ipset", "save"])


def ebtables_nat(namespace: str | None) -> str:
    """``ebtables-nft-save -c -t nat`` (rules with their packet counters)."""
    return priv_ebtables.save(namespace, "nat", counters=True)
