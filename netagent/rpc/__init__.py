"""The Neutron agent wire protocol over oslo.messaging.

This package is the only one that imports :mod:`oslo_messaging`. It holds the transport
set-up (:mod:`.transport`), one client class per server API (:mod:`.clients`), the state
reporter (:mod:`.report`), the notification consumers (:mod:`.consumers`) and the parsers
that turn server replies into model objects (:mod:`.replies`). The protocol facts come from
``neutron-wire.md``; section numbers in comments refer to it.
"""
