"""The data partition's layout (issue 15, item 3): homes apart from what aetherd reads, and the
one-time move of the old layout that trusts nothing an agent could have written."""

import json
import os

import pytest

from aether.agent.layout import Layout, LayoutError
from aether.agent.manifest import ManifestError
from aether.agent.supervisor import AgentSupervisor


class FakeLoop:
    def call_later(self, *_a):
        pass


class FakeLog:
    def warning(self, _msg):
        pass

    error = info = warning

ROOT = os.geteuid() == 0
AGENT_UID = 10003


def supervisor(data):
    return AgentSupervisor(FakeLoop(), None, FakeLog(), [].append, str(data), own_uids=False)


def legacy(data, manifest_owner=0, dir_owner=0):
    """The old layout: agents/<name> homes, agents/manifests, agents/uids."""
    agents = data / "agents"
    (agents / "web").mkdir(parents=True)
    (agents / "web" / "notes.txt").write_text("mine")
    (agents / "uids").write_text("web 10001\nmanifests 10003\n")
    manifests = agents / "manifests"
    manifests.mkdir()
    (manifests / "mine.toml").write_text('name = "mine"\nprogram = "/bin/true"\n')
    (manifests / "evil.toml").write_text('name = "evil"\nprogram = "/bin/sh"\nuser = "root"\n'
                                         'grant = ["root"]\n')
    os.chown(manifests / "evil.toml", manifest_owner, manifest_owner)
    os.chown(manifests, dir_owner, dir_owner)
    return agents


def test_a_fresh_data_partition_gets_root_only_trees(tmp_path):
    sup = supervisor(tmp_path / "data")
    modes = {d: os.stat(tmp_path / "data" / d).st_mode & 0o777 for d in ("home", "manifests", "system")}
    assert modes == {"home": 0o711, "manifests": 0o700, "system": 0o700}
    assert sup.home("web") == str(tmp_path / "data" / "home" / "web")
    with pytest.raises(ManifestError):
        sup.home("../system")


def test_a_planted_link_for_a_system_tree_stops_the_setup(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "manifests")
    with pytest.raises(LayoutError, match="planted"):
        Layout(str(tmp_path / "data")).prepare()


@pytest.mark.skipif(not ROOT, reason="file owners need root")
def test_manifests_an_agent_planted_in_the_old_tree_are_not_run(tmp_path):
    data = tmp_path / "data"
    legacy(data, manifest_owner=AGENT_UID, dir_owner=AGENT_UID)      # the home of agent 'manifests'
    sup = supervisor(data)
    assert not os.listdir(data / "manifests")                         # nothing moved where aetherd reads
    assert any("NOT" in n and "run" in n for n in sup.notices)
    assert (data / "home" / "manifests" / "evil.toml").exists()      # kept, inert, for inspection
    assert (data / "home" / "web" / "notes.txt").read_text() == "mine"
    assert sup.names.uid("web") == 10001 and sup.names.owner("web") == "legacy"


@pytest.mark.skipif(not ROOT, reason="file owners need root")
def test_root_placed_legacy_manifests_move_and_a_foreign_file_among_them_does_not(tmp_path):
    data = tmp_path / "data"
    legacy(data, manifest_owner=AGENT_UID, dir_owner=0)
    sup = supervisor(data)
    assert sorted(os.listdir(data / "manifests")) == ["mine.toml"]
    assert any("evil.toml" in n for n in sup.notices)
    assert (data / "system" / "layout").read_text().strip() == "2"
    again = supervisor(data)                                          # once only
    assert again.notices == [] and sorted(os.listdir(data / "manifests")) == ["mine.toml"]


@pytest.mark.skipif(not ROOT, reason="file owners need root")
def test_a_uid_table_an_agent_wrote_is_not_trusted(tmp_path):
    data = tmp_path / "data"
    agents = legacy(data)
    os.chown(agents / "uids", AGENT_UID, AGENT_UID)
    sup = supervisor(data)
    assert any("uid table" in n for n in sup.notices)
    assert sup.names.owner("web") == "legacy"                        # its home still makes it legacy


def test_the_name_registry_is_written_atomically_and_a_bad_one_fails_closed(tmp_path):
    data = tmp_path / "data"
    sup = supervisor(data)
    sup.declare(sup_manifest("web"), None, "shell", owner="shell")
    entries = json.loads((data / "system" / "names.json").read_text())
    assert entries["web"]["owner"] == "shell"
    assert not [f for f in os.listdir(data / "system") if f.endswith(".tmp")]
    os.makedirs(data / "home" / "web", exist_ok=True)
    (data / "system" / "names.json").write_text("{not json")
    os.chown(data / "home" / "web", AGENT_UID, AGENT_UID)
    again = supervisor(data)
    assert again.names.problem and again.names.owner("web") == "legacy"
    assert again.names.uid("web") == AGENT_UID                     # the uid its files belong to
    assert (data / "system" / "names.json.distrusted").read_text() == "{not json"
    # A removed agent's name has no home left: with no registry to say whose it was, nobody
    # but a boot manifest (or a reclaim) may declare a name now, or it could inherit a scope.
    from aether.agent.names import NameRefused
    with pytest.raises(NameRefused, match="not usable"):
        again.names.claim("gone", "agent:thief")
    assert again.names.claim("sysmon", "image") is None


def sup_manifest(name):
    from aether.agent.manifest import from_dict
    return from_dict({"name": name, "program": "/bin/true"})


@pytest.mark.skipif(not ROOT, reason="file owners need root")
def test_manifests_anyone_else_may_write_are_not_read(tmp_path):
    from aether.agent.manifest import load_dir
    good = 'name = "{}"\nprogram = "/bin/true"\n'
    (tmp_path / "mine.toml").write_text(good.format("mine"))
    (tmp_path / "theirs.toml").write_text(good.format("theirs"))
    os.chown(tmp_path / "theirs.toml", AGENT_UID, AGENT_UID)
    (tmp_path / "open.toml").write_text(good.format("open"))
    os.chmod(tmp_path / "open.toml", 0o666)
    (tmp_path / "elsewhere.txt").write_text(good.format("linked"))
    os.chown(tmp_path / "elsewhere.txt", AGENT_UID, AGENT_UID)
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "linked.toml")
    said = []
    assert list(load_dir(str(tmp_path), said.append)) == ["mine"]
    assert len(said) == 3
    os.chmod(tmp_path, 0o777)
    assert load_dir(str(tmp_path), said.append) == {} and "directory" in said[-1]
    os.chmod(tmp_path, 0o755)
    os.symlink(tmp_path, tmp_path.parent / "link-to-manifests")
    assert load_dir(str(tmp_path.parent / "link-to-manifests"), said.append) == {}


def test_a_planted_tree_keeps_aetherd_up_and_no_agent_starts(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "home")
    sup = supervisor(tmp_path / "data")
    assert sup.broken and any("planted" in n for n in sup.notices)
    sup.declare(sup_manifest("web"), None, "shell", owner="shell")
    with pytest.raises(OSError, match="not usable"):
        sup.launch(sup.agents["web"])
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_legacy_name_is_taken_only_by_a_boot_manifest_or_a_reclaim(tmp_path):
    from aether.agent.supervisor import AgentError
    data = tmp_path / "data"
    (data / "agents" / "web").mkdir(parents=True)          # an old home, no owner recorded
    (data / "agents" / "old").mkdir(parents=True)
    sup = supervisor(data)
    assert sup.names.owner("web") == sup.names.owner("old") == "legacy"
    with pytest.raises(AgentError, match="belongs to legacy"):
        sup.declare(sup_manifest("web"), None, "shell", owner="shell")
    sup.declare(sup_manifest("web"), None, None, owner="image")
    sup.declare(sup_manifest("old"), None, "shell", owner="shell", reclaim=True)
    assert (sup.names.owner("web"), sup.names.owner("old")) == ("image", "shell")


def test_a_temporary_file_left_by_a_power_cut_does_not_block_the_next_write(tmp_path):
    """After a power cut aetherd comes back with the same pid: a temporary file named by the
    pid alone would be there already, and O_EXCL would refuse every later write."""
    import os

    from aether.agent import layout
    target = tmp_path / "names.json"
    layout.replace_durably(str(target), b"one")
    (tmp_path / f"names.json.{os.getpid()}.tmp").write_bytes(b"left over")
    layout.replace_durably(str(target), b"two")
    assert target.read_bytes() == b"two"
