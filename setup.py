import configparser
import os
import pathlib

import setuptools

# pbr takes the version from git or from an sdist's PKG-INFO. A tree without either (a
# `git archive` or a release tarball of the repository) builds with setup.cfg's version.
HERE = pathlib.Path(__file__).resolve().parent
if not (HERE / ".git").exists() and not (HERE / "PKG-INFO").exists():
    cfg = configparser.ConfigParser()
    cfg.read(HERE / "setup.cfg")
    os.environ.setdefault("PBR_VERSION", cfg["metadata"]["version"])

setuptools.setup(setup_requires=["pbr>=6.0.0"], pbr=True)
