"""Where the build keeps things: the repository, out/, and a cache outside the tree."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def out_dir():
    return Path(os.environ.get("AETHER_OUT", REPO / "out"))


def images_dir():
    return out_dir() / "images"


def cache_dir():
    """Build cache shared by clones: $AETHER_CACHE, else $XDG_CACHE_HOME/aetheros."""
    if os.environ.get("AETHER_CACHE"):
        return Path(os.environ["AETHER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aetheros"
