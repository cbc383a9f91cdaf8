"""Code that runs inside Neutron's own processes, never inside the agent.

- :mod:`netagent.neutron_plugins.ml2`: the ML2 mechanism driver (neutron-server), entry
  point ``netagent`` in ``neutron.ml2.mechanism_drivers``; its decisions are in
  :mod:`netagent.neutron_plugins.binding`. It creates the trunk driver
  (:mod:`netagent.neutron_plugins.trunk`, no entry point), which lets ``service_plugins =
  trunk`` start and refuses trunks on netagent's ports.
- :mod:`netagent.neutron_plugins.interface`: the interface driver (neutron-dhcp-agent),
  entry point ``netagent`` in ``neutron.interface_drivers``; its names and MTU rules are in
  :mod:`netagent.neutron_plugins.plugging`, its kernel calls in
  :mod:`netagent.neutron_plugins.veth`.

This is the only package that may import ``neutron`` or ``neutron_lib`` (only the
``ml2``, ``interface`` and ``trunk`` modules do, so the rest is tested without Neutron),
and nothing outside it imports it. It may use netagent's kernel layer (:mod:`netagent.linux`) but
never loads the agent (tests/unit/test_layering.py).
"""
