"""Python client API: submit jobs, query, control, and follow change events.

    from cuefarm import Client
    client = Client()                      # CUEFARM_SUPERVISOR=host:port, default 127.0.0.1:9770
                                           # (several: "a:9770,b:9770", tried in turn)
    [job_id] = client.submit([job_dict])
    client.wait(job_id, timeout=600)

Every query returns plain dicts.  Errors from the supervisor raise `CueFarmError` with the field
at fault, when there is one.
"""

from __future__ import annotations

import getpass
import itertools
import os
import time
import uuid
from typing import Any, Callable

import zmq

from cuefarm import keys
from cuefarm import protocol as p
from cuefarm.config import DEFAULT_ADDRESS, ConfigError, parse_address


# How long a client waits for a connection to the supervisor before saying nothing answers.
CONNECT_TIMEOUT = 2.5
SUBMIT_RETRIES = 2        # resends of a submit that got no reply (same submission id)


class CueFarmError(Exception):
    """The supervisor refused a request, or could not be reached."""

    def __init__(self, message: str, code: str = "error", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


class Unreachable(CueFarmError):
    """No supervisor answered.  `sent` says whether a supervisor took the request (and may
    have acted on it) before the answer failed to come."""

    def __init__(self, message: str, sent: bool = False):
        super().__init__(message, code="unreachable")
        self.sent = sent


def default_address() -> str:
    return os.environ.get("CUEFARM_SUPERVISOR") or DEFAULT_ADDRESS


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """"host:port" or several, comma-separated (supervisors sharing one farm); ConfigError
    naming the one that does not parse."""
    parts = [a.strip() for a in text.split(",") if a.strip()]
    if not parts:
        raise ConfigError(f"no supervisor address in {text!r}")
    return [parse_address(a) for a in parts]


HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def secure_socket(sock: zmq.Socket, address: str, key: Any = None,
                  supervisor_key: str | None = None) -> bool:
    """Set this user's CURVE keys on `sock` (not yet connected) for the supervisor at
    `address`, when that supervisor's key is known; CueFarmError when a key is unusable."""
    try:
        if isinstance(key, (str, os.PathLike)):
            key = keys.read(key)
        elif key is None:
            key = keys.find_user_key()
        server = supervisor_key or keys.supervisor_key_for(address)
        return keys.secure_client(sock, key, server)
    except keys.KeyFileError as exc:
        raise CueFarmError(str(exc), "keys") from None


def handshake_failure(address: str, event: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (f"the supervisor at {address} refused this client's key (unknown or revoked); "
                f"ask an admin for a key: cuefarm keys add-user")
    return (f"could not agree on security with the supervisor at {address}: it uses keys and "
            f"this client has none for it, or the other way round (set "
            f"CUEFARM_SUPERVISOR_KEY, or run `cuefarm keys use FILE`)")


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


class Client:
    """A connection to a supervisor's client API.  Not thread-safe: one per thread.

    Given several addresses (supervisors sharing one farm), it talks to one at a time and
    moves on to the next when one does not answer: a request that could not be delivered
    (nothing accepted the connection) is sent to the next at once; after a request that got
    no reply, the next request goes to the next supervisor."""

    def __init__(self, address: str | None = None, timeout: float = 30.0,
                 user: str | None = None, context: zmq.Context | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 key: "keys.Key | str | os.PathLike | None" = None,
                 supervisor_key: str | None = None):
        """`timeout`: how long to wait for each reply once the supervisor is known to be
        there; `connect_timeout`: how long to wait for a connection to it at all (nothing
        listening is told within this, not after `timeout`).  `key` (a Key or a key file)
        and `supervisor_key` (Z85) default to where cuefarm.keys finds them; with keys, the
        supervisor takes the client for the user its key is, whatever `user` says."""
        self.address = address or default_address()
        try:
            self.addresses = parse_addresses(self.address)
        except ConfigError as exc:
            raise CueFarmError(str(exc), "invalid", "address") from None
        self.host, self.port = self.addresses[0]
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.user = user or current_user()
        self._ctx = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._key_given, self._server_key_given = key, supervisor_key
        self._sock: zmq.Socket | None = None
        # Watches the connection until its first handshake: then the supervisor is there,
        # and a slow reply (a huge submit) is waited for with the full timeout.
        self._monitor: zmq.Socket | None = None

    # -- transport ------------------------------------------------------------------------------

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, p.MAX_CLIENT_MESSAGE)
            try:
                secure_socket(s, self.current, self._key_given, self._server_key_given)
            except CueFarmError:
                s.close(0)
                raise
            self._monitor = s.get_monitor_socket(HANDSHAKE_EVENTS)
            s.connect(f"tcp://{self.host}:{self.port}")
            self._sock = s
        return self._sock

    @property
    def current(self) -> str:
        """The address of the supervisor this client talks to now."""
        return f"{self.host}:{self.port}"

    def _move_on(self) -> None:
        """Talk to the next supervisor from now on."""
        self.close()
        self.addresses.append(self.addresses.pop(0))
        self.host, self.port = self.addresses[0]

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None

    def _await_connection(self, limit: float) -> None:
        """Return once the socket has shaken hands with a peer, or a reply came; raise
        Unreachable after min(limit, connect_timeout) seconds without either."""
        wait = min(limit, self.connect_timeout)
        deadline = time.monotonic() + wait
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while self._monitor is not None:
            left = deadline - time.monotonic()
            ready = dict(poller.poll(max(0, int(left * 1000)) + 1)) if left > 0 else {}
            if not ready:
                self.close()
                raise Unreachable(f"cannot connect to the supervisor at {self.current} "
                                  f"(nothing answered within {wait:g} s)")
            if self._sock in ready:
                self._stop_monitor()
                continue
            from zmq.utils.monitor import parse_monitor_message   # asyncio: not at import
            event = parse_monitor_message(
                self._monitor.recv_multipart(zmq.NOBLOCK))["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._stop_monitor()
            else:
                where = self.current
                self.close()
                raise CueFarmError(handshake_failure(where, event), "unauthenticated")

    def close(self) -> None:
        if self._sock is not None:
            self._stop_monitor()
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, body: p.Body, timeout: float | None = None,
                type_name: str | None = None) -> p.Body:
        """Send one request and wait for its reply; raise CueFarmError on an error reply.

        `type_name` names the request when its body type serves several (JobRef).
        """
        return self.decode_reply(self.request_raw(body, timeout, type_name))

    def request_raw(self, body: p.Body, timeout: float | None = None,
                    type_name: str | None = None) -> p.Envelope:
        """Like `request`, but return the reply's envelope with its body undecoded (a
        `msgspec.Raw`), for callers that decode large replies their own way; `decode_reply`
        decodes it as `request` would.  An error reply still raises CueFarmError."""
        limit = self.timeout if timeout is None else timeout
        tried: list[str] = []
        while True:
            sock = self._socket()
            rid = next(self._ids)
            data = p.encode(body, rid, self.user, type_name=type_name)
            if len(data) > p.MAX_CLIENT_REQUEST:
                raise CueFarmError(f"the request takes {len(data):,} bytes, more than the "
                                   f"{p.MAX_CLIENT_REQUEST:,} a supervisor takes at once"
                                   + (": submit fewer jobs at a time"
                                      if isinstance(body, p.Submit) else ""), "oversized")
            sock.send(data)
            if self._monitor is None:
                break
            try:
                self._await_connection(limit)
                break
            except Unreachable as exc:
                # Nothing took the connection, so nothing got the request: the next
                # supervisor may have it.
                tried.append(self.current)
                if len(tried) >= len(self.addresses):
                    if len(tried) == 1:
                        raise
                    raise Unreachable(f"cannot connect to any of the supervisors at "
                                      f"{', '.join(tried)}") from exc
                self._move_on()
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                # The socket may hold a late reply; start afresh so it cannot be misread, and
                # with the next supervisor when there are several.
                where = self.current
                self._move_on()
                raise Unreachable(f"no reply from the supervisor at {where} "
                                  f"within {limit:g} s", sent=True)
            env = self.read_reply(sock, rid)
            if env is not None:
                return env

    def read_reply(self, sock: zmq.Socket, rid: int) -> p.Envelope | None:
        """The reply waiting on `sock` if it answers request `rid` (None: a stale reply to an
        abandoned request); CueFarmError for an error reply or one that does not decode."""
        try:
            env = p.decode_envelope(sock.recv())
        except p.ProtocolError as exc:
            raise CueFarmError(f"unreadable reply from {self.address}: {exc.message}",
                               exc.code) from None
        if env.id != rid:
            return None
        if env.type == "error":
            error = self.decode_reply(env)
            raise CueFarmError(error.message, error.code, error.field)
        return env

    def decode_reply(self, env: p.Envelope) -> p.Body:
        """The body of a reply from `request_raw`, decoded against its type."""
        try:
            return p.decode_body(env)
        except p.ProtocolError as exc:
            raise CueFarmError(f"unreadable reply from {self.address}: {exc.message}",
                               exc.code) from None

    # -- queries ----------------------------------------------------------------------------------

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        return p.to_builtins(self.request(p.Ping(), timeout))

    def submit(self, jobs: list[dict[str, Any]] | dict[str, Any],
               parameters: dict[str, Any] | None = None,
               retries: int = SUBMIT_RETRIES) -> list[int]:
        """Submit a list of job dicts; return their new ids in the same order.  A job may
        also be an Open Job Description template (its job `parameters` given here) or a
        Qube!-style job dict: each is mapped to CueFarm's form first (cuefarm.jobfiles), and
        one that cannot be raises SpecError.

        The submit carries an id of its own: when no reply comes (the supervisor died or the
        network broke, so the jobs may or may not be stored), it is sent again, up to
        `retries` times, and the supervisor answers a repeat with the first one's jobs, never
        creating them twice."""
        from cuefarm.jobfiles import native

        if isinstance(jobs, dict):
            jobs = [jobs]
        body = p.Submit(jobs=native(list(jobs), parameters), submission=uuid.uuid4().hex)
        tries = 0
        while True:
            try:
                return list(self.request(body).job_ids)
            except Unreachable as exc:
                # Not taken by any supervisor: nothing was stored, and saying so is quicker.
                if not exc.sent or tries >= retries:
                    raise
                tries += 1
                time.sleep(min(2.0, 0.25 * 2 ** tries))

    def jobs(self, project: str | None = None, user: str | None = None,
             include_finished: bool = True) -> list[dict[str, Any]]:
        return self.request(p.ListJobs(project, user, include_finished)).rows

    def job(self, job_id: int) -> dict[str, Any]:
        return self.request(p.JobRef(job_id)).row

    def export(self, job_id: int) -> dict[str, Any]:
        """The job as a job file dict (its current settings), which `submit` takes back."""
        return self.request(p.JobRef(job_id), type_name="export_job").row

    def notifications(self, include_sent: bool = False, limit: int = 1000
                      ) -> list[dict[str, Any]]:
        """Notifications not sent yet and those given up on (`include_sent`: all), newest
        first, each with its state, tries and last error."""
        return self.request(p.ListNotifications(include_sent, limit)).rows

    def project_notify(self, project: str, rules: list[dict[str, Any]] | None = None
                       ) -> list[dict[str, Any]]:
        """A project's notification rules for its jobs that give none; with `rules`, set
        them first ([]: none, the supervisor's defaults apply)."""
        if rules is not None:
            self.request(p.SetProjectNotify(project, list(rules)))
        return self.request(p.GetProjectNotify(project)).row["rules"]

    def job_notify(self, job_id: int, rules: list[dict[str, Any]] | None = None
                   ) -> list[dict[str, Any]]:
        """A job's own notification rules; with `rules`, set them first ([]: none of its own,
        its project's or the supervisor's apply)."""
        return self.request(p.JobNotify(job_id, None if rules is None else list(rules))
                            ).row["rules"]

    def retry_notifications(self, ids: list[int] | None = None) -> int:
        """Try failed notifications again (these, or all); returns how many."""
        return self.request(p.RetryNotifications(list(ids or []))).count

    def archives(self) -> list[dict[str, Any]]:
        """Retention's archive files, oldest first (file, bytes, jobs, job_ids, ...)."""
        return self.request(p.ListArchives()).rows

    def restore_archive(self, file: str, job_ids: list[int] | None = None) -> list[int]:
        """Bring back the jobs of an archive file (or those of `job_ids`), read-only."""
        return list(self.request(p.RestoreArchive(file, list(job_ids or []))).job_ids)

    def run_retention(self) -> int:
        """Archive the jobs due now (up to a bound); returns how many were archived."""
        return self.request(p.RunRetention()).count

    def run_retention_reply(self, older_than_days: float | None = None,
                            dry_run: bool = False) -> tuple[int, str]:
        """run_retention, with the supervisor's note ("more are due" at the bound; with
        `dry_run`, what would go)."""
        done = self.request(p.RunRetention(older_than_days, dry_run))
        return done.count, done.message

    def layers(self, job_id: int) -> list[dict[str, Any]]:
        return self.request(p.JobRef(job_id), type_name="list_layers").rows

    def frames(self, job_id: int | None = None, layer: str | None = None,
               states: list[str] | None = None, offset: int = 0, limit: int | None = None,
               host: str | None = None) -> list[dict[str, Any]]:
        """A job's frames in layer order, then dispatch order: all of them, or `limit` (at
        most protocol.MAX_FRAMES_PAGE) from `offset`.  With `host` instead of a job: the frames
        running on that host, from every job (with `job_name` and `slots`).  Without `limit`
        a job's frames come in pages of MAX_FRAMES_PAGE, so no reply outgrows the socket."""
        if limit is not None or host is not None:
            return self.request(p.ListFrames(job_id, layer, states, offset, limit, host)).rows
        out: list[dict[str, Any]] = []
        while True:
            page = self.request(p.ListFrames(job_id, layer, states, offset + len(out),
                                             p.MAX_FRAMES_PAGE)).rows
            out += page
            if len(page) < p.MAX_FRAMES_PAGE:
                return out

    def hosts(self) -> list[dict[str, Any]]:
        return self.request(p.ListHosts()).rows

    def log(self, job_id: int, layer: str | None, frame: int, attempt: int | None = None,
            offset: int = 0, limit: int = 1024 * 1024) -> dict[str, Any]:
        """A piece of a frame attempt's log: {'data' (bytes), 'text' (decoded), 'offset' (of
        data in the file), 'size' (of the file), 'host', 'attempt_id'}."""
        chunk = self.request(p.GetLog(job_id, layer, frame, attempt, offset, limit))
        return {"attempt_id": chunk.attempt_id, "host": chunk.host, "offset": chunk.offset,
                "size": chunk.size, "data": chunk.data,
                "text": chunk.data.decode("utf-8", errors="replace")}

    # -- control ----------------------------------------------------------------------------------

    def _job_control(self, action: str, job_ids: int | list[int], value: int | None = None,
                     clear_bans: bool = False) -> int:
        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        return sum(self.request(p.JobControl(action, part, value, clear_bans)).count
                   for part in p.in_parts(ids, p.MAX_REQUEST_ITEMS))

    def pause(self, job_id: int | list[int]) -> int:
        return self._job_control("pause", job_id)

    def resume(self, job_id: int | list[int], clear_bans: bool = False) -> int:
        """Resume paused jobs; with `clear_bans`, forget their bad hosts first (a job the
        supervisor paused because every host failed it runs on them again)."""
        return self._job_control("resume", job_id, clear_bans=clear_bans)

    def kill(self, job_id: int | list[int]) -> int:
        return self._job_control("kill", job_id)

    def retry(self, job_id: int | list[int], clear_bans: bool = False) -> int:
        """Retry the dead frames of a job; returns how many frames were requeued.  With
        `clear_bans`, the job's bad hosts are forgotten first, so they may run them again."""
        return self._job_control("retry", job_id, clear_bans=clear_bans)

    def eat(self, job_id: int | list[int]) -> int:
        """Give up on the dead frames of a job."""
        return self._job_control("eat", job_id)

    def set_priority(self, job_id: int | list[int], priority: int) -> int:
        return self._job_control("priority", job_id, priority)

    def frame_control(self, action: str, job_id: int, frame_ids: list[int] = (), *,
                      layer: str | None = None, numbers: list[int] = ()) -> int:
        """retry | kill | eat frames of a job: by id (`frame_ids`, from frames()), or by frame
        number (`numbers`: the frames, or chunks, that run them) in `layer` (needed when the
        job has several).  Ids and numbers not in the job are refused (CueFarmError).  More
        than a request may name (MAX_REQUEST_ITEMS) are acted on in parts."""
        ids, nums, most = list(frame_ids), list(numbers), p.MAX_REQUEST_ITEMS
        parts = [(ids, nums)] if len(ids) <= most and len(nums) <= most else [
            *((i, []) for i in p.in_parts(ids, most) if i),
            *(([], n) for n in p.in_parts(nums, most) if n)]
        return sum(self.request(p.FrameControl(action, job_id, i, layer, n)).count
                   for i, n in parts)

    def frames_to_front(self, job_id: int, frame_ids: list[int] = (), *,
                        layer: str | None = None, numbers: list[int] = ()) -> int:
        """Move frames that have not started ahead of the rest of their layer: they are
        dispatched next.  Returns how many frames moved."""
        return self.request(p.FrameOrder("front", job_id, list(frame_ids), layer,
                                         list(numbers))).count

    def stagger(self, job_id: int, every: int, frame_ids: list[int] = (), *,
                layer: str | None = None, numbers: list[int] = ()) -> int:
        """Spread frames that have not started (those named, or every one of `layer`):
        every `every`-th goes first.  Returns how many frames were reordered."""
        return self.request(p.FrameOrder("stagger", job_id, list(frame_ids), layer,
                                         list(numbers), every)).count

    def retry_more_memory(self, job_id: int, frame_ids: list[int] = (), *,
                          layer: str | None = None, numbers: list[int] = (),
                          factor: float | None = None, memory: int | None = None
                          ) -> dict[str, Any]:
        """Retry frames with their layers' memory reservation raised (to `memory` MB, or by
        `factor`, 1.5 by default).  Returns {retried, layers: [{layer, was, memory}]}."""
        return self.request(p.RetryMoreMemory(job_id, list(frame_ids), layer, list(numbers),
                                              factor, memory)).row

    def add_dependency(self, kind: str, job_id: int, target_job_id: int, *,
                       layer: str | None = None, target_layer: str | None = None) -> int:
        """Make a job's `layer` (each of its layers when None) wait for another job (kind
        "job"), a layer of one ("layer") or its frames with the same numbers ("frame").
        Returns how many dependencies were added."""
        return self.request(p.AddDependency(kind, job_id, target_job_id, layer,
                                            target_layer)).count

    def set_layer_range(self, job_id: int, layer: str, frange: str,
                        chunk: int | None = None) -> int:
        """Give a layer a new frame range (and chunk) while none of its frames has run; its
        frames are made again.  Returns the layer's new number of frames (chunks)."""
        return self.request(p.SetLayerRange(job_id, layer, frange, chunk)).count

    def dependants(self, job_id: int) -> list[dict[str, Any]]:
        """The dependencies whose target is this job or one of its layers: what waits on it."""
        return self.request(p.JobRef(job_id), type_name="list_dependants").rows

    def lock(self, hosts: str | list[str], purge: bool = False, slots: int | None = None) -> int:
        """Lock hosts (names, patterns like "render-*", or "tag:NAME"): running frames finish
        (purge: they are killed and requeued) and nothing new starts; `slots` leaves that many
        (a partial lock).  Returns how many hosts."""
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        return self.request(p.HostControl("lock", names, purge, slots)).count

    def unlock(self, hosts: str | list[str]) -> int:
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        return self.request(p.HostControl("unlock", names)).count

    # -- scheduling: wranglers and admins ---------------------------------------------------------

    def set_job(self, job_id: int, **values: Any) -> None:
        """Change priority, min_slots, max_slots or project of a submitted job."""
        self.request(p.SetJob(job_id, values))

    def set_layer(self, job_id: int, layer: str, **values: Any) -> None:
        """Change a layer's tags, os, hosts, omit_hosts, requirements, limits, slots, memory,
        gpus, timeout, timeout_no_output or max_retries; matching is re-evaluated at once."""
        self.request(p.SetLayer(job_id, layer, values))

    def set_project(self, name: str, guaranteed: int | None = None,
                    max_slots: int | None = None, unlimited: bool = False) -> None:
        """Fair share: slots a project is guaranteed, and the most it may use."""
        self.request(p.SetProject(name, guaranteed, max_slots, unlimited))

    def projects(self) -> list[dict[str, Any]]:
        """Projects with their fair share and `members` (empty: open to everyone)."""
        return self.request(p.ListProjects()).rows

    def set_project_members(self, name: str, members: list[str]) -> int:
        """Restrict a project to `members` (artists who are not members do not see its jobs,
        nor submit to it); an empty list opens it again.  Return how many members it has."""
        return self.request(p.SetProjectMembers(name, list(members))).count

    def whoami(self) -> dict[str, Any]:
        """Who the supervisor takes this client for: {'user', 'role', 'open'}; role is admin,
        wrangler or artist; open means no roles are configured (everyone is an admin)."""
        return self.request(p.WhoAmI()).row

    def set_limit(self, name: str, count: int, per_host: bool | None = None) -> None:
        """Create or change a limit (e.g. licences): at most `count` running frames need it
        (hosts, when `per_host`: node-locked licences)."""
        self.request(p.SetLimit(name, count, per_host))

    def delete_limit(self, name: str) -> None:
        self.request(p.DeleteLimit(name))

    def limits(self) -> list[dict[str, Any]]:
        return self.request(p.ListLimits()).rows

    def dependencies(self, job_id: int) -> list[dict[str, Any]]:
        return self.request(p.JobRef(job_id), type_name="list_dependencies").rows

    def satisfy_dependency(self, job_id: int, dependency_id: int) -> None:
        """Let the dependent run as if what it waits for were done."""
        self.request(p.DependencyControl("satisfy", job_id, dependency_id))

    def drop_dependency(self, job_id: int, dependency_id: int) -> None:
        """Remove a dependency (what waited on it runs if nothing else holds it)."""
        self.request(p.DependencyControl("drop", job_id, dependency_id))

    def why(self, job_id: int, layer: str | None = None, frame: int | None = None
            ) -> dict[str, Any]:
        """Why these frames are not running: {'job_id', 'job', 'status', 'reasons': [str]}."""
        return self.request(p.Why(job_id, layer, frame)).row

    def bad_hosts(self, job_id: int) -> list[dict[str, Any]]:
        """Hosts that failed the job's frames: [{'host', 'failures', 'banned_until',
        'banned'}]; a banned host is kept off the job until `banned_until` (epoch seconds)."""
        return self.request(p.JobRef(job_id), type_name="bad_hosts").rows

    def clear_bad_host(self, job_id: int, host: str | None = None) -> int:
        """Let `host` (None: every host) run the job again, its failures forgotten; return how
        many hosts were cleared."""
        return self.request(p.ClearBadHosts(job_id, host)).count

    def next_for_host(self, host: str, limit: int = 10) -> list[dict[str, Any]]:
        """What `host` would run next, in order."""
        return self.request(p.NextForHost(host, limit)).rows

    # -- host management (admins) ------------------------------------------------------------------

    def set_host_slots(self, host: str, slots: int | None) -> None:
        """Slots a host offers (None: back to what its worker offers)."""
        self.request(p.HostSlots(host, slots))

    def host_tags(self, host: str, add: list[str] = (), remove: list[str] = ()) -> None:
        self.request(p.HostTags(host, list(add), list(remove)))

    def drain(self, hosts: str | list[str], then: str = "stay", cancel: bool = False) -> int:
        """Finish current frames, start nothing new, then "exit", "reboot" or "stay"."""
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        return self.request(p.HostDrain(names, then, cancel)).count

    def admit(self, names: str | list[str]) -> None:
        self.request(p.AdmissionControl("admit", [names] if isinstance(names, str) else names))

    def ban(self, names: str | list[str], reason: str = "") -> None:
        self.request(p.AdmissionControl("ban", [names] if isinstance(names, str) else names,
                                        reason))

    def forget_admission(self, names: str | list[str]) -> None:
        self.request(p.AdmissionControl("forget",
                                        [names] if isinstance(names, str) else names))

    def admission(self) -> list[dict[str, Any]]:
        """Hosts pending admission, admitted and banned."""
        return self.request(p.ListAdmission()).rows

    def set_admission(self, mode: str | None = None, networks: list[str] | None = None,
                      patterns: list[str] | None = None) -> dict[str, Any]:
        """Admission policy: mode any | ranges (CIDR networks and/or name patterns) | named."""
        return self.request(p.SetAdmission(mode, networks, patterns)).row

    def add_schedule(self, target: str, days: list[int], start: str, end: str,
                     purge: bool = False) -> int:
        """A weekly lock window for hosts matching `target` (pattern or tag:NAME); days 0-6
        from Monday; times HH:MM in the site's timezone.  Returns its id."""
        return self.request(p.SetSchedule(target, list(days), start, end, purge)).count

    def schedules(self) -> list[dict[str, Any]]:
        return self.request(p.ListSchedules()).rows

    def delete_schedule(self, schedule_id: int) -> None:
        self.request(p.DeleteSchedule(schedule_id))

    def add_path_map(self, os: str, source: str, target: str, tag: str | None = None,
                     position: int | None = None) -> int:
        """A central path translation rule for workers of `os` (and `tag`); returns its id."""
        return self.request(p.AddPathMap(os, source, target, tag, position)).count

    def path_maps(self) -> list[dict[str, Any]]:
        return self.request(p.ListPathMaps()).rows

    def delete_path_map(self, rule_id: int) -> None:
        self.request(p.DeletePathMap(rule_id))

    def check_path(self, host: str, path: str) -> dict[str, Any]:
        """How `path` reads on `host` after its path maps: {'result', 'rule', ...}."""
        return self.request(p.CheckPath(host, path)).row

    # -- waiting ----------------------------------------------------------------------------------

    def wait(self, job_id: int, timeout: float | None = None,
             poll: float = 0.25) -> dict[str, Any]:
        """Block until the job has nothing left to run; return it.  TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(poll, 0.05)
        while True:
            job = self.job(job_id)
            if job["state"] == "FINISHED" or job.get("stalled"):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, poll)

    # -- licences, usage and metrics --------------------------------------------------------------

    def licences(self) -> dict[str, Any]:
        """Worker licences: installed, in_use, overage_now, metered, revoked, sink, rate, and
        the month's overage (month_minutes, month_cost), pending_reports."""
        return self.request(p.GetLicences()).row

    def set_licences(self, count: int | None = None, unlimited: bool = False,
                     metered: bool | None = None, sink: str | None = None,
                     rate: Any = None) -> dict[str, Any]:
        """Change the licence terms (only what is given); returns the new status.  `rate`
        (dollars per worker-hour) may be a number, a Decimal or a decimal string; amounts in
        the status (rate, month_cost) are decimal strings."""
        if rate is not None and not isinstance(rate, (int, float, str)):
            rate = str(rate)     # a Decimal travels as its exact text
        return self.request(p.SetLicences(count, unlimited, metered, sink, rate)).row

    def licence_reports(self, limit: int = 100) -> list[dict[str, Any]]:
        """Overage reports sent (or waiting to be sent) to the metering sink, newest first."""
        return self.request(p.ListLicenceReports(limit)).rows

    def usage(self, start: Any, end: Any, by: str = "project") -> list[dict[str, Any]]:
        """Usage per project, user or day from day `start` to day `end` (dates or
        "YYYY-MM-DD", UTC, inclusive): slot_hours, worker_minutes, succeeded, failed."""
        return self.request(p.GetUsage(str(start), str(end), by)).rows

    def metrics(self) -> list[dict[str, Any]]:
        """The supervisor's latest metric sample: name, value, unit, help, prometheus, t."""
        return self.request(p.GetMetrics()).rows

    def audit(self, user: str | None = None, since: float | None = None,
              until: float | None = None, action: str | None = None,
              job_id: int | None = None, host: str | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        """Actions asked of the supervisor, newest first: at, user, address, action, objects
        ("job 12, host w1"), detail (the request), outcome (ok, refused, failed), message."""
        return self.request(p.ListAudit(user, since, until, action, job_id, host, limit)).rows

    def add_key(self, kind: str, name: str, public: str, role: str = "artist"
                ) -> dict[str, Any]:
        """Record a user's or a worker's public key (admins): {kind, name, role, fingerprint,
        supervisor} (the supervisor's public key, for the key file)."""
        return self.request(p.AddKey(kind, name, public, role)).row

    def keys(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        """The farm's keys (admins): fingerprint, kind, name, role, created/revoked."""
        return self.request(p.ListKeys(include_revoked)).rows

    def revoke_key(self, key: str) -> list[dict[str, Any]]:
        """Revoke the keys `key` names (fingerprint, user or host name); what was revoked."""
        return self.request(p.RevokeKey(key)).rows

    def supervisors(self) -> list[dict[str, Any]]:
        """The supervisors serving the farm: owner, address, version, started_at, last_seen,
        hosts (connected to it), slots_used, slots_total, dispatched, cpu_percent, rss_mb, and
        `this` for the one answering."""
        return self.request(p.ListSupervisors()).rows

    def metric_history(self, series: str, start: float, end: float,
                       resolution: float = 0.0) -> list[tuple[float, float]]:
        """(t, value) points of one metric between two epoch times, for charts; averaged into
        `resolution`-second buckets when given."""
        reply = self.request(p.MetricHistory(series, float(start), float(end),
                                             float(resolution)))
        return [(t, v) for t, v in reply.points]

    def add_comment(self, text: str, job_id: int | None = None,
                    host: str | None = None) -> int:
        """Leave a comment on a job or a host (one of them); its author is who the supervisor
        takes this client for.  Return the comment's id."""
        return self.request(p.AddComment(text, job_id, host)).count

    def comments(self, job_id: int | None = None, host: str | None = None
                 ) -> list[dict[str, Any]]:
        """The comments on a job or a host, oldest first: id, author, text, created_at."""
        return self.request(p.ListComments(job_id, host)).rows

    def delete_comment(self, comment_id: int) -> None:
        """Delete a comment (one's own; an admin any)."""
        self.request(p.DeleteComment(comment_id))

    def layer_stats(self, job_id: int, layer: str | None = None,
                    runtimes: bool = False) -> list[dict[str, Any]]:
        """Per layer: succeeded and failed attempts, run time avg/min/max (seconds), peak_rss
        (bytes) and core_hours; with `runtimes`, the run times of its succeeded attempts."""
        return self.request(p.LayerStats(job_id, layer, runtimes)).rows

    def host_history(self, host: str, hours: float = 24.0) -> list[dict[str, Any]]:
        """A host's kept points over the last `hours`: t, load, memory_used_mb, running."""
        return self.request(p.HostHistory(host, float(hours))).rows


EVENT_TYPES = frozenset({"events"})


class Events:
    """Subscribe to the supervisor's change events.  Detects gaps by sequence number.

    `on_gap` is called when batches were missed (or on the first batch); the caller resyncs by
    querying the client API.
    """

    def __init__(self, address: str | None = None, events_port: int | None = None,
                 context: zmq.Context | None = None, key: Any = None,
                 supervisor_key: str | None = None):
        # The events of one supervisor (sequence numbers are its own): the first given.
        host, port = parse_addresses(address or default_address())[0]
        self._ctx = context or zmq.Context.instance()
        self.sock = self._ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_CLIENT_MESSAGE)
        try:
            secure_socket(self.sock, f"{host}:{port}", key, supervisor_key)
        except CueFarmError:
            self.sock.close(0)
            raise
        # With keys the supervisor decides what this subscription receives (the rows this
        # user may see); without, everything.
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://{host}:{events_port or port + 2}")
        self.at = f"{host}:{port}"      # the supervisor whose events these are
        self.last_seq: int | None = None
        self.supervisor_id: str | None = None

    def receive(self, timeout: float, on_gap: Callable[[], None] | None = None
                ) -> p.EventBatch | None:
        """Return the next batch, or None after `timeout` seconds without one."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        try:
            batch = self.decode_batch(p.decode_envelope(self.sock.recv_multipart()[-1]))
        except p.ProtocolError:
            return None
        if batch.resubscribe:
            # What we may see changed: ask again over the same connection.
            self.sock.setsockopt(zmq.UNSUBSCRIBE, b"")
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        gap = (self.last_seq is None or batch.supervisor_id != self.supervisor_id
               or batch.seq != self.last_seq + 1 or batch.resync)
        self.last_seq, self.supervisor_id = batch.seq, batch.supervisor_id
        if gap and on_gap is not None:
            on_gap()
        return batch

    def decode_batch(self, env: p.Envelope) -> p.EventBatch:
        """The batch in an envelope; ProtocolError when it is not a well-formed batch."""
        return p.decode_body(env, allowed=EVENT_TYPES)

    def close(self) -> None:
        self.sock.close(0)
