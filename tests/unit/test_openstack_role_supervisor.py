import asyncio
import os

from stackfleet.openstack import role_supervisor
from stackfleet.openstack.probes import status_of
from stackfleet.openstack.role_supervisor import ServiceSpec, Supervisor, backoff


def test_backoff_doubles_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(50) == 30


def test_status_of_http_head():
    assert status_of(b"HTTP/1.1 300 Multiple Choices\r\n") == 300
    assert status_of(b"garbage") is None
    assert status_of(b"") is None


def run(coro):
    return asyncio.run(coro)


def test_run_once_returns_the_exit_code(tmp_path):
    async def go():
        sup = Supervisor(lambda m: None)
        codes = [await sup.run_once("t", ["sh", "-c", f"exit {c}"], tmp_path / "log")
                 for c in (0, 3)]
        await sup.stop_all()
        return codes
    assert run(go()) == [0, 3]


def test_a_dead_service_is_restarted_and_stop_all_leaves_no_child(tmp_path, monkeypatch):
    monkeypatch.setattr(role_supervisor, "backoff", lambda failures: 0.05)
    messages = []

    before = set(role_supervisor._children_of(os.getpid()))

    async def go():
        sup = Supervisor(messages.append)
        marker = tmp_path / "starts"
        sup.start(ServiceSpec("flaky", ["sh", "-c", f"echo x >> {marker}; sleep 0.2"],
                              tmp_path / "flaky.log"))
        sup.start(ServiceSpec("steady", ["sleep", "60"], tmp_path / "steady.log", stop_last=True))
        for _ in range(100):
            if marker.exists() and len(marker.read_text().split()) >= 3:
                break
            await asyncio.sleep(0.05)
        starts = len(marker.read_text().split())
        await sup.stop_all()
        return starts, set(role_supervisor._children_of(os.getpid())) - before
    starts, left = run(go())
    assert starts >= 3
    assert left == set()
    assert any("restart #2" in m for m in messages)
