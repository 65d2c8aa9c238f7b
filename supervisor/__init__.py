"""The CueFarm supervisor: accepts jobs, stores them, matches frames to worker slots.

Read it in this order (each part imports only the ones above it; tests/supervisor/test_layers.py
checks that):
- `registry`, `matching`, `planning`: plain data and functions.  `planning.plan_pass` decides
  which frames go where from candidates, free rooms and budgets, with no database;
- `store/`: every SQL statement, SQLite and PostgreSQL behind the same functions;
- `live` (what the loop knows beyond the database), `outbox` (effects: messages, replies,
  changed rows, "dispatch again"), `intake` (completions, refusals, registrations waiting for
  the turn's transaction), `context` (what a handler gets: those, the config, the clocks);
- handlers: `workerlink` (each worker message), `registration`, `dispatch` (one pass: record the
  turn's completions, plan, claim, stage the launches), `clientapi` with `requests` (each client
  request declared once with its role: `@request("submit", role=ARTIST, ...)`), `access`,
  `why`, `schedules`, `billing`, `farmlink` (notices of the other supervisors sharing a
  PostgreSQL database, from `farmbus`: each transaction that changes the farm tells them with
  `pg_notify` as it commits), `keys_api` (issuing and revoking keys);
- `trust`: the keys and the CURVE authenticator of the three sockets; with keys, who sent a
  message is the key its connection authenticated with (never a field of the message);
- `loop`: sockets, poller, timers, background threads, the stop flag; it sends what the
  handlers left in the outbox, after their transactions committed;
- `server` assembles them; `main` reads the configuration and handles signals.

A frame's way from submit to SUCCEEDED: clientapi (submit) → dispatch (claim, launch) → loop
(send) → workerlink (Complete into the intake) → intake (record in the next pass) → store.
"""
