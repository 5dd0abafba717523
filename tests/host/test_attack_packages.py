"""Attacks through agent packages against a real aetherd --host: a package whose manifest asks
for root and no confinement is deployed as such without the person being told or asked."""

import pytest

from aether.abi.protocol import AbiError
from aether.packages.upload import upload

from .test_broker import Aetherd
from .test_packages import LOOP, package

pytestmark = pytest.mark.host


def test_a_package_asking_for_root_and_no_confinement_is_not_deployed_unless_allowed(tmp_path):
    """`aetherctl deploy x.aether` of someone else's package ran it as root, unconfined, because its
    agent.toml said so: the person typed 'deploy', not 'give this root'.  The deploy must refuse,
    saying which grants the package asks for and how to allow them."""
    d = Aetherd(tmp_path, "")
    try:
        root = package(tmp_path / "pkg", "1.0.0", LOOP)
        toml = (root / "agent.toml").read_text()
        (root / "agent.toml").write_text('user = "root"\ngrant = ["root", "unconfined"]\n' + toml)
        c = d.connect()
        with pytest.raises(AbiError) as refused:
            upload(c, str(root))
        message = str(refused.value)
        assert "root" in message and "unconfined" in message and "allow" in message, message
        assert all(r["name"] != "greeter" for r in c.call("package.list"))
    finally:
        d.stop()
