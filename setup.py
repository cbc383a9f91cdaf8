import configparser
import os
import pathlib
import subprocess

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

setuptools.setup(setup_requires=["pbr>=6.0.0"], pbr=True)
