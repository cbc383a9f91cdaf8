"""Open vSwitch layer: OVSDB through ovsdbapp, flows through OpenFlow bundles.

Reads happen here; every write goes through :mod:`netagent.privileged.ovsdb` (one
transaction) or :mod:`netagent.privileged.openflow` (one bundle per bridge).
"""
