"""The TempestPlugin tempest loads through the ``tempest.test_plugins`` entry point."""

import os

from tempest import config
from tempest.test_discover import plugins

from netagent_tempest_plugin import config as netagent_config


class NetagentTempestPlugin(plugins.TempestPlugin):
    def load_tests(self):
        package_dir = os.path.dirname(os.path.abspath(__file__))
        top_level_dir = os.path.dirname(package_dir)
        return os.path.join(package_dir, "tests"), top_level_dir

    def register_opts(self, conf):
        conf.register_opt(netagent_config.service_option, group="service_available")
        config.register_opt_group(
            conf, netagent_config.netagent_group, netagent_config.NetagentGroup
        )

    def get_opt_lists(self):
        return [
            (netagent_config.netagent_group.name, netagent_config.NetagentGroup),
            ("service_available", [netagent_config.service_option]),
        ]
