"""The host guard of the L2 drivers whose VM ports sit in Linux bridges.

ebtables ``filter`` chain ``na-INPUT`` (first in ``INPUT``) drops every frame a bridge
would hand to the host's own stack when it came in on one of the guarded bridge ports: a
VM reaches none of the host's services through its bridge. Linux bridge guards its taps
and its ``nvx-``/``nvl-`` uplinks (a remote VM through the tunnel); Open vSwitch with the
hybrid plug guards the taps and the ``qvb`` veths in os-vif's ``qbr`` bridges (without
it, the host would take a VM's frames on qbr that no FORWARD check sees, e.g. neighbour
advertisements for another's address). No port is wired until the guard is in place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from netagent.common.exceptions import NetagentError
from netagent.linux.ebtables import EbRule, EbtablesManager

LOG = logging.getLogger(__name__)

NOT_WRITTEN = "not written yet"
DESCRIPTION = "the host guard (ebtables filter na-INPUT)"


class HostGuardError(NetagentError):
    """The ebtables host guard could not be written (the reason is ebtables')."""


class GuardKernel(Protocol):
    def ensure_host_guard(self, ports: list[str]) -> None:
        """Drop every frame a bridge would deliver to this namespace's own stack when it
        came in on a bridge port matching one of ``ports`` (``tap+`` wildcards); written
        only when it differs from what was last applied."""

    def check_host_guard(self) -> list[str]:
        """Chains of the guard found changed since written (marked for rewriting)."""

    def remove_host_guard(self) -> None:
        """Remove the guard (absent already is fine)."""


class EbtablesGuard:
    """:class:`GuardKernel` on netagent's ebtables layer, in one namespace (``None``: the
    process's own)."""

    def __init__(self, netns: str | None = None) -> None:
        self._guard = EbtablesManager(netns, table="filter")

    def ensure_host_guard(self, ports: list[str]) -> None:
        self._guard.set_hook([EbRule("DROP", in_iface=port) for port in ports])
        self._apply_guard(sweep=False)

    def check_host_guard(self) -> list[str]:
        return self._guard.check()

    def remove_host_guard(self) -> None:
        self._guard.remove_chain(self._guard.hook_chain)
        self._apply_guard(sweep=True)

    def _apply_guard(self, sweep: bool) -> None:
        result = self._guard.apply(sweep=sweep)
        if result.failed:
            raise HostGuardError("; ".join(sorted(result.failed.values())))


class HostGuard:
    """Whether the guard of ``ports`` is written, kept by the driver that owns it.

    :param netns: where the driver works, for messages (``None``: the agent's own)
    """

    def __init__(self, ports: Sequence[str], netns: str | None = None) -> None:
        self.ports = list(ports)
        self.netns = netns
        #: why the guard is not in place (``None``: it is)
        self.error: str | None = NOT_WRITTEN

    def ensure(self, kernel: GuardKernel) -> bool:
        """Write the guard (nothing is sent when it is in place); False if it is not."""
        try:
            kernel.ensure_host_guard(self.ports)
        except (NetagentError, OSError) as exc:
            if self.error in (None, NOT_WRITTEN):
                LOG.error(
                    "Host guard (ebtables filter na-INPUT) could not be written, no network "
                    "or port is wired until it is: %s",
                    exc,
                )
            self.error = str(exc)
            return False
        if self.error not in (None, NOT_WRITTEN):
            LOG.info("Host guard (ebtables filter na-INPUT) written")
        self.error = None
        return True

    def check(self, kernel: GuardKernel) -> int:
        """Rewrite the guard's chains changed behind netagent's back; how many were."""
        if self.error is not None:
            return 0  # not written: the next pass writes it
        tampered = kernel.check_host_guard()
        for chain in tampered:
            LOG.warning(
                "ebtables filter chain %s in namespace %s changed behind netagent's back; "
                "rewritten",
                chain,
                self.netns or "(the agent's own)",
            )
        if tampered:
            self.ensure(kernel)
        return len(tampered)
