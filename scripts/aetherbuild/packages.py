"""Agent packages baked into the image: ``make image AGENTS="dir1 dir2"``.

Each directory is packed (aether/packages/format.py, its ``requires`` vendored by
aether/packages/vendor.py) into the tree's ``usr/lib/aether/packages/`` as
``NAME-VERSION.aether``.  Packing is reproducible, so the image stays reproducible: the
same directories give the same bytes.  At boot aetherd installs a baked package whose
agent has none installed, or an older one (aether/packages/deploy.py, ``seed``).
"""

import sys

from .log import BuildError, info, stage

IMAGE_DIR = "usr/lib/aether/packages"


def bake(repo, tree, directories):
    """Pack every directory into tree/usr/lib/aether/packages; returns the archive names."""
    if not directories:
        return []
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from aether.packages import format as fmt
    from aether.packages.vendor import pack_with_requires
    out = tree / IMAGE_DIR
    out.mkdir(parents=True, exist_ok=True)
    names = []
    with stage(f"pack {len(directories)} agent package(s) into /{IMAGE_DIR}"):
        for directory in directories:
            try:
                path, digest = pack_with_requires(str(directory), str(out))
            except (fmt.PackageError, OSError) as e:
                raise BuildError(f"AGENTS: {directory} cannot be packed: {e}",
                                 hint="fix it (aetherctl pack DIR says the same), or leave it out of AGENTS") from None
            name = path.rsplit("/", 1)[-1]
            if name in names:
                raise BuildError(f"AGENTS: {name} is given twice", hint="name each package once")
            names.append(name)
            info(f"{name}: package sha256 {digest}")
    return names
