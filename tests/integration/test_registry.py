"""The registry against real etcd on loopback: schema, guards, failover, watch resume."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stackfleet.registry.connection import EtcdConnection, EtcdUnavailable
from stackfleet.registry.fake import FakeRegistry
from stackfleet.registry.interface import MachineIdTaken, RegistryAPI
from stackfleet.registry.lease import LeaseExpired
from stackfleet.registry.localetcd import LocalEtcd, LocalEtcdCluster, free_port
from stackfleet.registry.records import JobRecord, MachineRecord, ScheduleEntry
from stackfleet.registry.store import Registry


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def job(name: str, h: str) -> JobRecord:
    return JobRecord(name, h, "inactive", {})


def test_submit_refuses_a_different_body_unless_replace(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            assert await r.submit(job("a.service", "h1"), "one", False) == "created"
            assert await r.submit(job("a.service", "h1"), "one", False) == "unchanged"
            assert await r.submit(job("a.service", "h2"), "two", False) == "exists"
            assert (await r.job("a.service")).hash == "h1"  # type: ignore[union-attr]
            await r.set_desired("a.service", "launched")
            assert await r.submit(job("a.service", "h2"), "two", True) == "replaced"
            current = await r.job("a.service")
            assert current is not None and current.hash == "h2" and current.desired == "launched"
            assert await r.body("h2") == "two"

    run(body())


def test_only_the_current_leader_can_commit(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            lease = (await r.conn.call(lambda c: c.lease(30))).id
            revision = await r.campaign("e1", lease)
            assert revision is not None
            assert await r.campaign("e2", lease) is None
            op = r.schedule_op("a.service", "m1", ScheduleEntry("launched", "h", True))
            assert await r.commit_as_leader([op], revision)
            await r.conn.call(lambda c: c.revoke_lease(lease))  # leadership ends with the lease
            later = await r.campaign("e2", (await r.conn.call(lambda c: c.lease(30))).id)
            assert later is not None and later != revision
            stale = r.unschedule_op("a.service", "m1")
            assert not await r.commit_as_leader([stale], revision)
            assert "a.service" in await r.schedule()

    run(body())


def test_lock_is_exclusive_and_follows_the_lease(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            a = (await r.conn.call(lambda c: c.lease(30))).id
            b = (await r.conn.call(lambda c: c.lease(30))).id
            assert await r.acquire_lock("x.service", "ma", a)
            assert not await r.acquire_lock("x.service", "mb", b)
            assert await r.acquire_lock("x.service", "ma", a)  # ours under this lease already
            # Our machine id under another live lease is a second agent with our id: never rebound.
            assert not await r.acquire_lock("x.service", "ma", b)
            await r.conn.call(lambda c: c.revoke_lease(a))
            assert await r.acquire_lock("x.service", "mb", b)

    run(body())


def test_unreachable_cluster_fails_fast_with_endpoints_named() -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]

    async def body() -> None:
        async with Registry.open(dead, timeout=1.0) as r:
            started = time.monotonic()
            with pytest.raises(EtcdUnavailable) as info:
                await r.jobs()
            assert time.monotonic() - started < 5
            assert all(e in str(info.value) for e in dead)

    run(body())


def test_calls_and_watches_fail_over_when_a_member_dies(etcd_cluster: LocalEtcdCluster) -> None:
    first = etcd_cluster.members[0]

    async def body() -> None:
        async with Registry.open(etcd_cluster.endpoints) as r:
            watch = r.watch(r.keys.jobs())
            assert (await watch.__anext__()).reset
            await r.submit(job("a.service", "h1"), "one", False)
            seen = await watch.__anext__()
            assert [k for k, _ in seen.changes] == [r.keys.job("a.service")]
            assert r.conn.current == first.endpoint
            first.kill()
            await r.submit(job("b.service", "h2"), "two", False)  # goes to another member
            assert r.conn.current != first.endpoint
            names = set()
            while "b.service" not in names:
                update = await watch.__anext__()
                items = update.items if update.reset else dict(update.changes)
                names |= {k.decode().rsplit("/", 1)[1] for k in items}
            await watch.aclose()

    run(body())


def test_watch_resyncs_in_full_after_compaction(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            watch = r.watch(r.keys.jobs())
            first = await watch.__anext__()
            assert first.reset and not first.items
            # Events after `first` are compacted away before the watch resumes.
            await r.submit(job("a.service", "h1"), "one", False)
            got = await watch.__anext__()
            assert not got.reset
            await r.submit(job("b.service", "h2"), "two", False)
            await r.submit(job("c.service", "h3"), "three", False)
            head = (await r.conn.call(lambda c: c.get_prefix(r.keys.jobs()))).header.revision
            await r.conn.call(lambda c: c.compact(head))
            await r.conn.failover(r.conn.generation)  # the stream drops, as on a member failure
            seen: set[bytes] = set()
            while not {r.keys.job("b.service"), r.keys.job("c.service")} <= seen:
                update = await watch.__anext__()
                if update.reset:
                    assert set(update.items) == {r.keys.job(n) for n in ("a.service", "b.service", "c.service")}
                seen |= set(update.items) | {k for k, _ in update.changes}
            await watch.aclose()

    run(body())


def test_lease_keeper_renews_adopts_and_reports_expiry(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            renewals: list[float] = []
            keeper = r.lease_keeper(2, on_renewed=renewals.append)
            lease = await keeper.grant()
            task = asyncio.create_task(keeper.run())
            await asyncio.sleep(3)  # longer than the TTL: only renewals keep it alive
            task.cancel()
            assert len(renewals) >= 3
            assert keeper.expires_no_earlier_than > time.monotonic()
            other = r.lease_keeper(2)
            assert await other.adopt(lease)
            await r.conn.call(lambda c: c.revoke_lease(lease))
            with pytest.raises(LeaseExpired):
                await other.renew()
            assert not await r.lease_keeper(2).adopt(lease)
            await other.discard(lease)  # gone already: no error

    run(body())


def test_calls_in_flight_survive_a_failover_by_a_concurrent_call(etcd_cluster: LocalEtcdCluster) -> None:
    async def body() -> None:
        async with Registry.open(etcd_cluster.endpoints) as r:
            await r.submit(job("a.service", "h1"), "one", False)
            generation = r.conn.generation
            results = await asyncio.gather(*(r.jobs() for _ in range(30)), r.conn.failover(generation))
            assert all(set(found) == {"a.service"} for found in results[:-1])
            assert r.conn.generation == generation + 1

    run(body())


def _keepalive_streams_started(endpoint: str) -> int:
    """How many LeaseKeepAlive streams this member has accepted, from its Prometheus metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("grpc_server_started_total{") and 'grpc_method="LeaseKeepAlive"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_lease_keeper_renews_over_one_stream(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            renewals: list[float] = []
            keeper = r.lease_keeper(1, on_renewed=renewals.append)
            await keeper.grant()
            before = _keepalive_streams_started(etcd.endpoint)
            for _ in range(10):
                await keeper.renew()
            assert len(renewals) == 11
            assert _keepalive_streams_started(etcd.endpoint) - before == 1

    run(body())


def test_adopted_lease_keeps_the_ttl_etcd_granted(etcd: LocalEtcd) -> None:
    async def body() -> None:
        async with Registry.open([etcd.endpoint]) as r:
            lease = await r.lease_keeper(7).grant()
            adopter = r.lease_keeper(2)  # started with another --ttl than the lease has
            assert await adopter.adopt(lease)
            assert adopter.ttl == 7
            assert adopter.expires_no_earlier_than == adopter.last_renewal_sent + 7

    run(body())


def test_lease_keeper_renews_on_another_member_when_its_member_dies(etcd_cluster: LocalEtcdCluster) -> None:
    async def body() -> None:
        async with Registry.open(etcd_cluster.endpoints) as r:
            keeper = r.lease_keeper(3)
            await keeper.grant()
            await keeper.renew()
            first = r.conn.current
            etcd_cluster.members[etcd_cluster.endpoints.index(first)].kill()
            sent_before = keeper.last_renewal_sent
            await keeper.renew()  # fails over inside the call
            assert r.conn.current != first
            assert keeper.last_renewal_sent > sent_before

    run(body())


def test_tls_cluster_serves_only_clients_with_a_certificate_of_its_ca(tmp_path: Path) -> None:
    from stackfleet.pki import ClusterCA
    from stackfleet.registry.tls import TLSConfigError, TLSFiles

    ca = ClusterCA(tmp_path / "pki")
    ca.create()
    server = ca.issue("member", "member", ["127.0.0.1", "localhost"])
    client = ca.issue("root", "root")
    assert (tmp_path / "pki" / "root.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pki").stat().st_mode & 0o777 == 0o700
    with LocalEtcd(tls=server) as member:
        assert member.endpoint.startswith("https://")
        good = TLSFiles(client.ca_file, client.cert_file, client.key_file)

        async def body() -> None:
            async with Registry(EtcdConnection([member.endpoint], tls=good)) as r:
                await r.set_setting("region", "one")
                assert (await r.settings())["region"] == "one"
            async with Registry(EtcdConnection([member.endpoint], timeout=1.0, tls=TLSFiles(client.ca_file))) as r:
                with pytest.raises(EtcdUnavailable):
                    await r.settings()  # TLS without a client certificate: refused
            plain = member.endpoint.replace("https://", "http://")
            async with Registry(EtcdConnection([plain], timeout=1.0)) as r:
                with pytest.raises(EtcdUnavailable):
                    await r.settings()  # plaintext to a TLS port: refused

        run(body())
        with pytest.raises(TLSConfigError, match="--ca-file"):
            EtcdConnection([member.endpoint])  # https:// never falls back to plaintext
        with pytest.raises(TLSConfigError, match="use https://"):
            EtcdConnection(["http://127.0.0.1:1"], tls=good)
        with pytest.raises(TLSConfigError, match="cannot read"):
            EtcdConnection([member.endpoint], tls=TLSFiles(tmp_path / "missing.crt"))



async def _typed_watches(r: RegistryAPI) -> list[object]:
    """Drive every typed watch through one script; return what each consumer ends up with."""
    keeper = r.lease_keeper(30)
    lease = await keeper.grant()
    watches = [r.watch_schedule(), r.watch_schedule_of("m1"), r.watch_jobs(), r.watch_machines(),
               r.watch_reasons(), r.watch_leader(), r.watch_published("controller")]
    for w in watches:
        first = await w.__anext__()
        assert first.reset and first.changes == []
    a, b = ScheduleEntry("launched", "h1", True), ScheduleEntry("loaded", "h2", False)
    await r.put_many([r.schedule_op("a.service", "m1", a), r.schedule_op("b.service", "m2", b),
                      r.reason_op("c.service", "no live machines")])
    await r.put_many([r.unschedule_op("b.service", "m2"), r.clear_reason_op("c.service"),
                      r.reason_op("d.service", "waiting")])
    await r.submit(job("a.service", "h1"), "one", False)
    await r.register_machine(MachineRecord("m1", "one", "10.0.0.1"), lease)
    await r.campaign("e1", lease)
    await r.publish("controller", '{"address": "10.0.0.1"}', lease)
    await r.put_many([r.schedule_op("z.service", "m9", b)])
    # What each consumer has once the script's last change to it arrived.
    last = [("z.service", "m9"), "a.service", "a.service", "m1", "d.service", "", ""]
    results: list[object] = []
    for w, key in zip(watches, last, strict=True):
        merged: dict[object, object] = {}
        while key not in merged:
            changes = await asyncio.wait_for(w.__anext__(), 5)
            assert not changes.reset
            changes.merge_into(merged)
        results.append(merged)
        await w.aclose()
    await keeper.revoke()
    return results


def test_typed_watches_decode_records_alike_on_etcd_and_on_the_fake(etcd: LocalEtcd) -> None:
    async def both() -> tuple[list[object], list[object]]:
        async with Registry.open([etcd.endpoint]) as r:
            real = await _typed_watches(r)
        return real, await _typed_watches(FakeRegistry())

    real, fake = run(both())
    assert real == fake
    assert real[1] == {"a.service": ScheduleEntry("launched", "h1", True)}  # m1's own entries only
    assert real[0] == {("a.service", "m1"): ScheduleEntry("launched", "h1", True),
                       ("z.service", "m9"): ScheduleEntry("loaded", "h2", False)}
    assert real[2] == {"a.service": job("a.service", "h1")}
    assert real[3] == {"m1": MachineRecord("m1", "one", "10.0.0.1")}
    assert real[4] == {"d.service": "waiting"}
    assert real[5] == {"": "e1"}
    assert real[6] == {"": '{"address": "10.0.0.1"}'}


async def _machine_ids_and_locks(r: RegistryAPI) -> list[object]:
    """One machine id, two live leases (a cloned /etc/machine-id): the second is refused, for the
    machine key and for the locks, until the first lease is gone. What each step returned."""
    first, second = r.lease_keeper(30), r.lease_keeper(30)
    a, b = await first.grant(), await second.grant()
    m, clone = MachineRecord("m1", "one", "10.0.0.1"), MachineRecord("m1", "clone", "10.0.0.2")
    seen: list[object] = []
    await r.register_machine(m, a)
    try:
        await r.register_machine(clone, b)
    except MachineIdTaken as err:
        seen.append(("refused", err.machine_id, err.holder))
    await r.register_machine(MachineRecord("m1", "one", "10.0.0.9"), a)  # its own lease: updated
    seen.append(await r.machines())
    seen.append(await r.acquire_lock("x.service", "m1", a))
    seen.append(await r.acquire_lock("x.service", "m1", b))  # our id, another live lease: never
    seen.append(await r.acquire_lock("x.service", "m1", a))
    await first.revoke()
    seen.append((await r.machines(), await r.locks()))  # both went with the lease
    await r.register_machine(clone, b)
    seen.append(await r.acquire_lock("x.service", "m1", b))
    seen.append((await r.machines(), await r.locks()))
    await second.revoke()
    return seen


def test_a_duplicated_machine_id_is_refused_alike_on_etcd_and_on_the_fake(etcd: LocalEtcd) -> None:
    async def both() -> tuple[list[object], list[object]]:
        async with Registry.open([etcd.endpoint]) as r:
            real = await _machine_ids_and_locks(r)
        return real, await _machine_ids_and_locks(FakeRegistry())

    real, fake = run(both())
    assert real == fake
    assert real == [
        ("refused", "m1", MachineRecord("m1", "one", "10.0.0.1")),
        {"m1": MachineRecord("m1", "one", "10.0.0.9")},
        True, False, True,
        ({}, {}),
        True,
        ({"m1": MachineRecord("m1", "clone", "10.0.0.2")}, {"x.service": "m1"}),
    ]
