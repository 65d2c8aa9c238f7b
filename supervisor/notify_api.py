"""Client requests about notifications: list them (pending, failed, sent), retry failed ones."""

from __future__ import annotations

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ARTIST, WRANGLER
from supervisor.store import notifications as store


@request("list_notifications", role=ARTIST, what="listing notifications", read=True)
def _list(cx: Context, req: Request) -> p.Body:
    body: p.ListNotifications = req.body
    if not 1 <= body.limit <= 100_000:
        raise RequestError("invalid", f"limit must be from 1 to 100000, not {body.limit}",
                           "limit")
    states = [store.PENDING, store.FAILED] + ([store.SENT] if body.all else [])
    return p.Rows(cx.read(lambda c: store.listing(c, states, body.limit)))


@request("retry_notifications", role=WRANGLER, what="retrying notifications")
def _retry(cx: Context, req: Request) -> p.Body:
    ids = list(req.body.ids)
    with cx.begin() as (conn, _):
        count = store.retry(conn, ids, cx.clock())
    return p.Done(count)
