"""The wire protocol: every message type round-trips; bad input is a ProtocolError with a code."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuefarm import protocol as p

RUNNING = p.RunningAttempt("7.1", pid=123, rss=10 << 20, peak_rss=12 << 20, cpu_time=1.5,
                           started=1.7e9)
DONE = p.Completion("7.1", exit_status=0, started=1.7e9, stopped=1.7e9 + 5, peak_rss=1 << 20,
                    cpu_time=4.0, reason="")

RULE = p.PathRule(source="/mnt/show", target="S:/show")

SAMPLES: dict[str, p.Body] = {
    "error": p.Error("bad_spec", "range is malformed", field="jobs[0].layers[0].range"),
    "done": p.Done(count=3, message="ok"),
    "rows": p.Rows(rows=[{"id": 1, "name": "a", "stalled": False}, {"id": 2, "x": None}]),
    "row": p.Row(row={"id": 1, "state": "ACTIVE", "started_at": 1.7e9}),
    "ping": p.Ping(),
    "pong": p.Pong(version="0.1.0", supervisor_id="sup-1", event_seq=42, events_port=9772),
    "submit": p.Submit(jobs=[{"name": "j", "layers": [{"name": "l", "command": ["echo"],
                                                       "range": "1-10"}]}]),
    "job_ids": p.JobIds(job_ids=[1, 2, 3]),
    "list_jobs": p.ListJobs(project="demo", user="ann", include_finished=False),
    "get_job": p.JobRef(job_id=5),
    "list_layers": p.JobRef(job_id=6),
    "list_frames": p.ListFrames(job_id=5, layer="render", states=["DEAD", "RUNNING"],
                                offset=2000, limit=1000),
    "list_hosts": p.ListHosts(),
    "job_control": p.JobControl(action="priority", job_ids=[1, 2], value=90),
    "frame_control": p.FrameControl(action="retry", job_id=1, frame_ids=[10, 11]),
    "host_control": p.HostControl(action="lock", hosts=["node1", "node2"], purge=True),
    "get_log": p.GetLog(job_id=1, layer="render", frame=7, attempt=2, offset=-100, limit=4096),
    "log_chunk": p.LogChunk(attempt_id="7.2", host="node1", offset=0, size=5, data=b"hello"),
    "register": p.Register(name="node1", hostname="node1.example", os="Linux", cores=8,
                           memory_mb=32000, slots=8, version="0.1.0", running=[RUNNING],
                           completions=[DONE], tags=["linux", "gpu"], gpus=1,
                           disk_free_mb=5000, nimby=True, path_maps=[RULE]),
    "registered": p.Registered(host_id=3, heartbeat_interval=2.0),
    "refused": p.Refused(reason="unknown key", retry_after=5.0),
    "heartbeat": p.Heartbeat(running=[RUNNING], load=1.25, cpu_percent=50.0,
                             memory_free_mb=1000, disk_free_mb=200, gpus=1, nimby=False,
                             draining=True),
    "ack": p.Ack(),
    "reregister": p.Reregister(reason="supervisor restarted"),
    "launch": p.Launch(attempt_id="7.1", job_id=1, job="j", project="demo", user="ann",
                       layer="render", frame_id=7, frames="1-9x2", frame_start=1, frame_end=9,
                       command=["render", "1"], env={"A": "b"}, slots=2, memory_mb=100,
                       cwd="/tmp", path_maps=[RULE], run_as="ann"),
    "refuse": p.Refuse(attempt_id="7.1", reason="no room"),
    "kill": p.Kill(attempt_ids=["7.1", "8.1"], reason="job killed"),
    "complete": p.Complete(completions=[DONE]),
    "complete_ack": p.CompleteAck(attempt_ids=["7.1"]),
    "log_request": p.LogRequest(token=9, attempt_id="7.1", offset=10, limit=100),
    "log_reply": p.LogReply(token=9, attempt_id="7.1", offset=10, size=20,
                            data=b"\x00\xffbytes", error=""),
    "drain": p.Drain(then="exit", cancel=True),
    "set_job": p.SetJob(job_id=3, values={"priority": 90, "max_slots": None}),
    "set_layer": p.SetLayer(job_id=3, layer="render", values={"tags": ["gpu"], "slots": "4+"}),
    "set_project": p.SetProject(name="demo", guaranteed=10, max_slots=40),
    "list_projects": p.ListProjects(),
    "set_limit": p.SetLimit(name="arnold", max=40, per_host=False),
    "delete_limit": p.DeleteLimit(name="arnold"),
    "list_limits": p.ListLimits(),
    "list_dependencies": p.JobRef(job_id=4),
    "dependency_control": p.DependencyControl(action="satisfy", job_id=4, dependency_id=2),
    "why": p.Why(job_id=4, layer="comp", frame=7),
    "next_for_host": p.NextForHost(host="node1", limit=5),
    "bad_hosts": p.JobRef(4),
    "clear_bad_hosts": p.ClearBadHosts(job_id=4, host="node1"),
    "path_rule": RULE,
    "events": p.EventBatch(seq=5, supervisor_id="sup-1", jobs=[{"id": 1}], layers=[{"id": 2}],
                           frames=[{"id": 3}], hosts=[{"id": 4}], deleted_jobs=[9]),
    "host_slots": p.HostSlots(host="node1", slots=4),
    "host_tags": p.HostTags(host="node1", add=["gpu"], remove=["desktop"]),
    "host_drain": p.HostDrain(hosts=["node1"], then="exit"),
    "admission_control": p.AdmissionControl(action="admit", names=["node9"], reason="new"),
    "list_admission": p.ListAdmission(),
    "set_admission": p.SetAdmission(mode="ranges", networks=["10.0.0.0/8"], patterns=["rn*"]),
    "set_schedule": p.SetSchedule(target="tag:desktop", days=[0, 1, 2, 3, 4], start="09:00",
                                  end="19:00", purge=True),
    "list_schedules": p.ListSchedules(),
    "delete_schedule": p.DeleteSchedule(id=3),
    "add_path_map": p.AddPathMap(os="windows", source="/mnt/proj", target="P:/proj", tag="win"),
    "list_path_maps": p.ListPathMaps(),
    "delete_path_map": p.DeletePathMap(id=2),
    "check_path": p.CheckPath(host="node1", path="/mnt/proj/a.exr"),
    "licences": p.GetLicences(),
    "set_licences": p.SetLicences(count=10, metered=True, sink="https://b.example/x", rate=0.2),
    "licence_reports": p.ListLicenceReports(limit=5),
    "usage": p.GetUsage(start="2024-01-01", end="2024-01-31", by="user"),
    "metrics": p.GetMetrics(),
    "metric_history": p.MetricHistory(series="host.cpu", start=1.7e9, end=1.7e9 + 3600,
                                      resolution=60.0),
    "metric_points": p.MetricPoints(series="host.cpu", resolution=60.0,
                                    points=[(1.7e9, 12.5), (1.7e9 + 60, 13.0)]),
    "whoami": p.WhoAmI(),
    "set_project_members": p.SetProjectMembers(name="secret", members=["ann", "bob"]),
    "list_supervisors": p.ListSupervisors(),
    "list_audit": p.ListAudit(user="ann", since=1.0, job_id=3, limit=10),
    "add_key": p.AddKey(kind="user", name="ann", public="x" * 40, role="wrangler"),
    "list_keys": p.ListKeys(include_revoked=True),
    "revoke_key": p.RevokeKey(key="ann"),
    "frame_order": p.FrameOrder(how="stagger", job_id=4, layer="comp", every=3),
    "retry_more_memory": p.RetryMoreMemory(job_id=4, frame_ids=[9, 10], factor=1.5),
    "add_dependency": p.AddDependency(kind="frame", job_id=4, target_job_id=3, layer="comp",
                                      target_layer="render"),
    "list_dependants": p.JobRef(4),
    "set_layer_range": p.SetLayerRange(job_id=4, layer="comp", range="1-100x2", chunk=5),
    "export_job": p.JobRef(job_id=4),
    "list_notifications": p.ListNotifications(all=True),
    "retry_notifications": p.RetryNotifications(ids=[3]),
    "list_archives": p.ListArchives(),
    "restore_archive": p.RestoreArchive(file="cuefarm-archive-1-2.jsonl.gz", job_ids=[2]),
    "run_retention": p.RunRetention(),
    "set_project_notify": p.SetProjectNotify("show", [{"when": ["finished"], "email": "a@b.c"}]),
    "get_project_notify": p.GetProjectNotify("show"),
    "job_notify": p.JobNotify(4, [{"when": ["finished"], "webhook": "https://h/x"}]),
    "add_comment": p.AddComment(text="waiting on textures", job_id=4),
    "list_comments": p.ListComments(host="node1"),
    "delete_comment": p.DeleteComment(id=3),
    "layer_stats": p.LayerStats(job_id=4, layer="render", runtimes=True),
    "host_history": p.HostHistory(host="node1", hours=6.0),
}


def raw_envelope(v=p.PROTOCOL_VERSION, type_name="ping", rid=7, user="ann", body=None) -> bytes:
    """An envelope built by hand, so its parts can be wrong."""
    return msgspec.msgpack.encode([v, type_name, rid, user,
                                   msgspec.Raw(msgspec.msgpack.encode(body if body is not None
                                                                      else {}))])


def test_every_type_has_a_sample():
    assert set(SAMPLES) == set(p.MESSAGE_TYPES)
    for name, body in SAMPLES.items():
        assert type(body) is p.MESSAGE_TYPES[name]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(name):
    body = SAMPLES[name]
    data = p.encode(body, request_id=77, user="ann", type_name=name)
    env, decoded = p.decode(data)
    assert (env.v, env.type, env.id, env.user) == (p.PROTOCOL_VERSION, name, 77, "ann")
    assert decoded == body
    assert type(decoded) is type(body)


def test_list_frames_by_host_and_as_older_clients_send_it():
    env, body = p.decode(p.encode(p.ListFrames(host="node1", limit=50)))
    assert env.type == "list_frames"
    assert (body.host, body.job_id, body.offset, body.limit) == ("node1", None, 0, 50)
    # A request without the paging fields (as clients sent before them) means every frame.
    _, body = p.decode(raw_envelope(type_name="list_frames", body={"job_id": 5}))
    assert (body.job_id, body.offset, body.limit, body.host) == (5, 0, None, None)


def test_envelope_and_body_decode_separately():
    data = p.encode(SAMPLES["list_frames"], request_id=9)
    env = p.decode_envelope(data)
    assert isinstance(env.body, msgspec.Raw) and env.id == 9
    assert p.decode_body(env) == SAMPLES["list_frames"]
    with pytest.raises(p.ProtocolError) as info:
        p.decode_body(env, allowed=p.WORKER_MESSAGES)
    assert info.value.code == "unknown_type"


def test_type_name_defaults_to_the_first_name_of_the_body_class():
    env, _ = p.decode(p.encode(p.JobRef(job_id=1)))
    assert env.type == "get_job"
    env, _ = p.decode(p.encode(p.Ping()))
    assert env.type == "ping" and env.id == 0


def test_worker_and_client_sets_name_real_types():
    assert p.CLIENT_REQUESTS <= set(p.MESSAGE_TYPES)
    assert p.WORKER_MESSAGES <= set(p.MESSAGE_TYPES)


def test_to_builtins_gives_plain_data():
    assert p.to_builtins(SAMPLES["pong"]) == {
        "version": "0.1.0", "supervisor_id": "sup-1", "event_seq": 42, "events_port": 9772}


def assert_rejected(data: bytes, code: str, **kwargs) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(data, **kwargs)
    assert info.value.code == code, info.value.message
    assert info.value.message
    return info.value


def test_oversized():
    data = p.encode(p.Submit(jobs=[{"name": "x" * 2000}]))
    err = assert_rejected(data, "oversized", max_size=1000)
    assert "exceeds 1000" in err.message
    p.decode(data, max_size=len(data))  # exactly the limit is fine


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\xff\xfe\xfd garbage", b"GET / HTTP/1.1\r\n\r\n",
    msgspec.msgpack.encode({"v": 1, "type": "ping"}),        # a map, not the envelope array
    msgspec.msgpack.encode([1, "ping", 1, "", {}, "extra"]),  # too many envelope fields
    msgspec.msgpack.encode(["1", "ping", 1, "", {}]),         # version is not an int
    msgspec.msgpack.encode([1, 5, 1, "", {}]),                 # type is not a str
    msgspec.msgpack.encode([1, "ping", 1, "", {}])[:-1],     # truncated
], ids=["empty", "nul", "garbage", "http", "map", "extra-field", "str-version", "int-type",
        "truncated"])
def test_garbage_is_malformed(data):
    assert_rejected(data, "malformed")


def test_wrong_version():
    err = assert_rejected(raw_envelope(v=p.PROTOCOL_VERSION + 1, rid=12), "version")
    assert err.request_id == 12


def test_unknown_type():
    err = assert_rejected(raw_envelope(type_name="format_disk", rid=13), "unknown_type")
    assert err.request_id == 13 and "format_disk" in err.message


@pytest.mark.parametrize("type_name,body", [
    ("submit", {"jobs": "not a list"}),
    ("submit", {}),                                              # missing field
    ("get_job", {"job_id": "5"}),                               # str for int
    ("get_job", {"job_id": True}),                              # bool for int
    ("list_frames", {"job_id": 1, "states": "DEAD"}),
    ("list_frames", {"job_id": 1, "offset": "10"}),              # str for int
    ("list_frames", {"host": ["node1"]}),                        # list for str
    ("job_control", {"action": "pause", "job_ids": [1, "x"]}),
    ("heartbeat", {"running": [{"pid": 1}]}),                    # nested struct missing a field
    ("ping", [1, 2, 3]),                                         # an array, not a map
], ids=["jobs-str", "jobs-missing", "id-str", "id-bool", "states-str", "offset-str",
        "host-list", "ids-mixed", "nested-missing", "array-body"])
def test_wrong_shape_body_is_malformed(type_name, body):
    err = assert_rejected(raw_envelope(type_name=type_name, rid=14, body=body), "malformed")
    assert err.request_id == 14 and type_name in err.message


@pytest.mark.parametrize("type_name,body", [
    ("get_job", {"job_id": 1, "delete_everything": True}),
    ("ping", {"x": 1}),
    ("heartbeat", {"running": [{"attempt_id": "1.1", "owner": "me"}]}),
])
def test_unknown_fields_are_malformed(type_name, body):
    assert_rejected(raw_envelope(type_name=type_name, body=body), "malformed")


def test_type_not_allowed_on_this_socket():
    # A worker message on the client socket, and a client request on the worker socket.
    assert_rejected(p.encode(SAMPLES["register"], type_name="register"), "unknown_type",
                    allowed=p.CLIENT_REQUESTS)
    assert_rejected(p.encode(p.Submit(jobs=[])), "unknown_type", allowed=p.WORKER_MESSAGES)
    env, _ = p.decode(p.encode(p.Ping()), allowed=p.CLIENT_REQUESTS)
    assert env.type == "ping"


def test_invalid_utf8_is_malformed():
    data = msgspec.msgpack.encode([1, "ping", 3, "", {}])
    bad = data.replace(b"\xa4ping", b"\xa4\x80ing")
    assert_rejected(bad, "malformed")


def test_deep_nesting_is_malformed():
    body = msgspec.Raw(b"\x81\xa4rows" + b"\x91" * 200_000 + b"\xc0")
    assert_rejected(msgspec.msgpack.encode([1, "rows", 1, "", body]), "malformed")


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_errors(data):
    try:
        p.decode(data)
    except p.ProtocolError as exc:
        assert exc.code in {"malformed", "version", "unknown_type", "oversized"}


@settings(max_examples=200)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mangled_messages_only_raise_protocol_errors(name, data):
    encoded = bytearray(p.encode(SAMPLES[name], type_name=name))
    i = data.draw(st.integers(0, len(encoded) - 1))
    encoded[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(encoded)))
    try:
        p.decode(bytes(encoded[:cut]))
    except p.ProtocolError:
        pass


def test_a_number_no_database_can_hold_is_refused_when_decoded():
    """Heartbeats with integers past 64 bits once crashed the supervisor at the database."""
    for field in ("memory_free_mb", "disk_free_mb", "launch_seq", "gpus"):
        data = p.encode(p.Heartbeat(**{field: 2**64 - 1}))
        with pytest.raises(p.ProtocolError, match=field) as info:
            p.decode(data, p.MAX_WORKER_MESSAGE)
        assert info.value.code == "malformed"
    # The largest that fits is taken.
    _, body = p.decode(p.encode(p.Heartbeat(launch_seq=2**63 - 1)), p.MAX_WORKER_MESSAGE)
    assert body.launch_seq == 2**63 - 1


@pytest.mark.parametrize("field,value", [
    ("load", float("nan")), ("load", float("inf")), ("load", -0.5), ("cpu_percent", 1e300),
    ("memory_free_mb", -1), ("memory_free_mb", 2**63 - 1), ("disk_free_mb", 2**48 + 1),
    ("gpus", -1), ("gpus", 2**31)])
def test_a_workers_figures_are_finite_and_not_negative(field, value):
    """A worker's measures are summed, subtracted and charted: one that is negative, NaN,
    infinite or past what those sums hold is refused when decoded."""
    with pytest.raises(p.ProtocolError, match=field) as info:
        p.decode(p.encode(p.Heartbeat(**{field: value})), p.MAX_WORKER_MESSAGE)
    assert info.value.code == "malformed"


def test_a_workers_figures_up_to_their_bounds_are_taken():
    beat = p.Heartbeat(load=1e12, cpu_percent=0.0, memory_free_mb=2**48, disk_free_mb=0,
                       running=[p.RunningAttempt("1.1", rss=2**48, cpu_time=5e-324,
                                                 started=1.8e9)])
    assert p.decode(p.encode(beat), p.MAX_WORKER_MESSAGE)[1] == beat


@pytest.mark.parametrize("progress", [-1, 101, 2**40, 45.5, "45"])
def test_a_running_attempts_progress_is_a_percentage(progress):
    body = {"running": [{"attempt_id": "1.1", "progress": progress}]}
    err = assert_rejected(raw_envelope(type_name="heartbeat", body=body), "malformed")
    assert "progress" in err.message


def test_progress_from_0_to_100_or_none_is_taken():
    for progress in (0, 45, 100, None):
        data = p.encode(p.Heartbeat(running=[p.RunningAttempt("1.1", progress=progress)]))
        _, body = p.decode(data, p.MAX_WORKER_MESSAGE)
        assert body.running[0].progress == progress
    # None is left out on the wire: a frame that printed no progress sends what it always did.
    assert b"progress" not in p.encode(p.Heartbeat(running=[p.RunningAttempt("1.1")]))


def test_an_unknown_type_name_is_not_echoed_whole():
    """A message with a type name of megabytes is refused with a short error, not one that
    sends the megabytes back."""
    data = msgspec.msgpack.encode([p.PROTOCOL_VERSION, "x" * 1_000_000, 5, "", None])
    with pytest.raises(p.ProtocolError) as info:
        p.decode(data)
    assert info.value.code == "unknown_type" and info.value.request_id == 5
    assert len(info.value.message) < 200


@pytest.mark.parametrize("field, value", [
    ("name", "h" * 257), ("hostname", "h" * 1_000_000), ("os", "linux" * 7),
    ("version", "1" * 33), ("tags", ["t" * 65]), ("kept", ["1." + "1" * 63]),
    ("farm_id", "f" * 65), ("running", [{"attempt_id": "9" * 65}])])
def test_what_a_worker_says_of_itself_is_bounded_as_the_database_keeps_it(field, value):
    """A host named with a megabyte was stored, kept in the supervisor's memory and sent in
    every event batch: text past what the database holds is refused when decoded."""
    body = {"name": "w1", "hostname": "w1", "os": "linux", "cores": 4, "memory_mb": 1024,
            "slots": 4, "version": "1.0", field: value}
    err = assert_rejected(raw_envelope(type_name="register", body=body), "malformed")
    assert field in err.message and len(err.message) < 300


def test_the_longest_texts_a_database_holds_are_taken():
    reg = p.Register(name="h" * 256, hostname="h" * 256, os="o" * 32, cores=1, memory_mb=1,
                     slots=1, version="v" * 32, tags=["t" * 64], kept=["1." + "1" * 62],
                     farm_id="f" * 64)
    _, body = p.decode(p.encode(reg), p.MAX_WORKER_MESSAGE)
    assert body == reg
    done = p.Complete([p.Completion("2." + "2" * 62, 0, 1.0, 2.0)])
    assert p.decode(p.encode(done), p.MAX_WORKER_MESSAGE)[1] == done


def test_a_list_is_cut_in_parts_a_request_can_name():
    assert p.in_parts([], 3) == [[]]
    assert p.in_parts([1, 2, 3], 3) == [[1, 2, 3]]
    assert p.in_parts(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
