"""``netagent-status explain``: why a packet passes or not, from the agent's state.

Pure modules, no kernel access: :mod:`.packet` (the probe), :mod:`.snapshot` (the part of
the desired state the status socket carries), :mod:`.iptables_eval` and
:mod:`.ebtables_eval` (interpreters over the very rule objects the firewall driver's
compiler renders), :mod:`.kernel` (what ``iptables-save -c``, ``ebtables-nft-save`` and
``ipset save`` print, and how it differs from the desired state), :mod:`.trace` (path,
checks and verdict) and :mod:`.render` (text). doc/explain.md describes the whole.
"""
