"""Two supervisor processes sharing one PostgreSQL database: each notification is sent by one
of them, once."""

from __future__ import annotations

from tests.farm import Farm, PostgresDatabase, wait_until
from tests.pipeline.receivers import HookServer

FAST = {"CUEFARM_NOTIFICATIONS_POLL": "0.1", "CUEFARM_NOTIFICATIONS_RETRY_BASE": "0.2",
        "CUEFARM_NOTIFICATIONS_RETRY_MAX": "0.5"}


def test_each_notification_is_sent_once_by_one_of_two_supervisors(require_postgres, tmp_path):
    db = PostgresDatabase()
    hook = HookServer(status=503)         # refuses at first: both senders see the rows pending
    farms = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            farm = Farm(db.url, tmp_path / name)
            farm.env.update(FAST)
            farm.start_supervisor()
            farms.append(farm)
        farms[0].start_rqd("w1", 4)
        farms[0].wait_hosts_up(["w1"])
        client = farms[1].client()          # submitted through the other supervisor
        ids = client.submit([{"name": f"j{i}", "notify": [{"webhook": hook.url(f"/{i}")}],
                              "layers": [{"name": "a", "command": ["true"], "range": "1"}]}
                             for i in range(20)])
        wait_until(lambda: len(client.notifications()) == 20
                   and all(r["tries"] >= 1 for r in client.notifications()), 60,
                   message="20 refused notifications")
        hook.status = 200
        wait_until(lambda: not client.notifications(), 60, message="all sent")
        delivered = [r for r in hook.received if r["status"] == 200]
        # At least once, and here exactly once: no row was claimed by both.
        assert sorted(r["body"]["job"]["id"] for r in delivered) == sorted(ids)
        assert all(r["path"] == f"/{ids.index(r['body']['job']['id'])}" for r in delivered)
    finally:
        for farm in farms:
            farm.stop()
        hook.close()
        db.drop()
