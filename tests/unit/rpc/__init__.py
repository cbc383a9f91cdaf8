"""Unit tests of the Neutron RPC layer and source (oslo.messaging fake:// transport)."""
