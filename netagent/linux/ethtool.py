"""Device offload settings (see :mod:`netagent.privileged.ethtool` for why)."""

from __future__ import annotations

from netagent.privileged import ethtool as priv_ethtool


def set_tx_checksumming(device: str, enabled: bool, *, namespace: str | None = None) -> None:
    """Turn transmit checksum offload of ``device`` on or off.

    :raises DeviceNotFound: no such device.
    """
    priv_ethtool.set_tx_checksumming(namespace, device, enabled)


def tx_checksumming(device: str, *, namespace: str | None = None) -> bool:
    """Whether transmit checksum offload of ``device`` is on."""
    return priv_ethtool.get_tx_checksumming(namespace, device)
