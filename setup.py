import configparser
import os
import pathlib
import subprocess
import tempfile

import setuptools

HERE = pathlib.Path(__file__).resolve().parent


def _git_usable() -> bool:
    """Whether git can read this tree's history (it refuses a repository owned by another
    user, "dubious ownership", and there is none in a `git archive` or a tarball)."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--git-dir"], cwd=HERE, capture_output=True, check=False
        )
    except OSError:  # git not installed
        return False
    return found.returncode == 0


# pbr takes the version from git or from an sdist's PKG-INFO, and fails the build when it
# has neither: a tree git cannot read builds with setup.cfg's version instead.
if not (HERE / "PKG-INFO").exists() and not _git_usable():
    cfg = configparser.ConfigParser()
    cfg.read(HERE / "setup.cfg")
    os.environ.setdefault("PBR_VERSION", cfg["metadata"]["version"])

# setuptools builds in the source tree (build/, *.egg-info) and pbr writes AUTHORS and
# ChangeLog there: a user who cannot write the tree (a checkout owned by root) builds in
# a temporary directory instead.
options = {}
if not os.access(HERE, os.W_OK):
    scratch = tempfile.mkdtemp(prefix="netagent-build-")
    options = {"build": {"build_base": scratch}, "egg_info": {"egg_base": scratch}}
    os.environ.setdefault("SKIP_GENERATE_AUTHORS", "1")
    os.environ.setdefault("SKIP_WRITE_GIT_CHANGELOG", "1")

setuptools.setup(setup_requires=["pbr>=6.0.0"], pbr=True, options=options)
