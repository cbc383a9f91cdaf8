"""netagent: a network agent for OpenStack compute and network nodes."""

import warnings

# python-ovs (under ovsdbapp) imports eventlet where it is installed (oslo.messaging brings
# it) only to see whether it patched the process. netagent never uses eventlet, and the
# deprecation notice eventlet prints when imported would tell operators otherwise.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", module=r"ovs\.poller")
