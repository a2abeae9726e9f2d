from __future__ import annotations

from auditimds.ecs.event import LazyArgs
from auditimds.ecs.process_table import ProcessTable


def test_entity_id_survives_exec_and_is_deterministic():
    t = ProcessTable("host")
    a = t.exec(100, 10, "/usr/bin/ip", None, "/", 1000)
    eid = a.entity_id
    b = t.exec(100, 10, "/usr/bin/bash", None, "/", 1004)
    assert b is a and b.entity_id == eid and b.executable == "/usr/bin/bash" and b.name == "bash"
    t2 = ProcessTable("host")
    assert t2.exec(100, 10, "/usr/bin/ip", None, "/", 1000).entity_id == eid
    assert ProcessTable("other").exec(100, 10, "/usr/bin/ip", None, "/", 1000).entity_id != eid


def test_pid_reuse_gives_a_new_entity():
    t = ProcessTable("host")
    first = t.exec(100, 10, "/usr/bin/a", None, "/", 1000).entity_id
    second = t.exec(100, 20, "/usr/bin/b", None, "/", 9000)  # other parent: another process
    assert second.entity_id != first and t.pid_reuse == 1
    # another audit session is another process too
    third = t.exec(100, 20, "/usr/bin/c", None, "/", 9100, ses=7)
    fourth = t.exec(100, 20, "/usr/bin/d", None, "/", 9200, ses=8)
    assert third.entity_id == second.entity_id and fourth.entity_id != third.entity_id


def test_reparent_to_init_keeps_the_entity():
    t = ProcessTable("host")
    p = t.exec(100, 10, "/usr/bin/a", None, "/", 1000)
    assert t.exec(100, 1, "/usr/bin/b", None, "/", 2000).entity_id == p.entity_id


def test_unknown_parent_is_a_placeholder_without_executable_then_filled_by_any_record():
    t = ProcessTable("host")
    parent = t.parent(10, 1000)
    assert parent.executable is None and parent.entity_id
    # a later failed execve or connect of pid 10 shows its executable
    seen = t.observe(10, 1, "/usr/bin/bash", 1500)
    assert seen is parent and parent.executable == "/usr/bin/bash" and parent.name == "bash"


def test_resolver_seam_fills_unknown_parents():
    asked = []

    def resolver(pid):
        asked.append(pid)
        return {"executable": "/usr/sbin/sshd", "ppid": 1, "args": ["sshd: ops"], "start_key": "boot:123"}

    t = ProcessTable("host", resolver=resolver)
    p = t.parent(42, 1000)
    assert asked == [42]
    assert (p.executable, p.name, p.ppid, p.args.get()) == ("/usr/sbin/sshd", "sshd", 1, ["sshd: ops"])
    assert t.parent(42, 2000) is p and asked == [42]


def test_memory_is_bounded():
    t = ProcessTable("host", max_entries=100)
    for pid in range(1000, 1500):
        t.exec(pid, 1, "/bin/x", None, "/", pid)
    assert len(t) == 100 and t.dropped == 400
    assert t.get(1499) is not None and t.get(1000) is None


def test_entry_leader_from_sshd_and_init():
    t = ProcessTable("host")
    t.exec(500, 1, "/usr/sbin/sshd", None, "/", 1, ses=4294967295)
    sh = t.exec(600, 500, "/usr/bin/bash", LazyArgs.of(["-bash"]), "/root", 2, ses=3, tty="pts0")
    assert sh.leader is sh and sh.leader_type == "sshd"
    curl = t.exec(700, 600, "/usr/bin/curl", None, "/root", 3, ses=3, tty="pts0")
    assert curl.leader is sh and curl.leader_type == "sshd"
    svc = t.exec(800, 1, "/usr/bin/agent", None, "/", 4)
    assert svc.leader is svc and svc.leader_type == "init"
    child = t.exec(801, 800, "/usr/bin/curl", None, "/", 5)
    assert child.leader is svc
    # parent unknown and no session boundary: not derivable
    orphan = t.exec(900, 899, "/usr/bin/curl", None, "/", 6)
    assert orphan.leader is None
