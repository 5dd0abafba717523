"""The guest's aetherd answers llm.complete from the real model server on the host.

The VM has QEMU's user network (the guest's netif gives the virtio NIC 10.0.2.15/24, and
the host's 127.0.0.1 is 10.0.2.2 there); aether.llm.* come on the kernel command line,
as `make run MODEL=local` sets them.  The server is tests/realmodel.py's ``model_server``.
"""

import pytest

import harness

ASK = [{"role": "user", "content": "Say hello in five words."}]


@pytest.fixture(scope="module")
def guest(image, model_server, request):
    b = harness.Booter(f"{request.module.__name__}.shared")
    settings = (f"aether.llm.endpoint={model_server.guest_url} aether.llm.model={model_server.model} "
                f"aether.llm.n_ctx={model_server.n_ctx}")
    try:
        vm = b.boot(net=True, append=settings)
        client = harness.abi_client(vm)
        yield vm, client
        client.close()
    finally:
        b.close()


def requests_seen(server):
    return server.log_path.read_text(errors="replace").count('"POST /v1/chat/completions')


def test_the_guest_brings_up_the_user_network(guest):
    vm, _ = guest
    assert "network: eth0: 10.0.2.15/24" in vm.output


def test_llm_complete_in_the_guest_reaches_the_host_server(guest, model_server):
    _, c = guest
    before = requests_seen(model_server)
    done = c.call("llm.complete", messages=ASK, max_tokens=16)
    assert isinstance(done["content"], str) and done["content"].strip()
    assert done["usage"]["estimated"] is False and done["usage"]["completion_tokens"] >= 1
    assert requests_seen(model_server) - before == 1, "the answer came from the real server"


def test_a_streamed_completion_in_the_guest(guest):
    _, c = guest
    done = c.call("llm.complete", messages=ASK, max_tokens=16, stream=True)
    assert done["content"].strip() and done["finish_reason"] in ("stop", "length")
