"""End to end with the real kernel audit subsystem and auditd: the hardened rule pack (config/rules/hardened/)
catches what the seed rule misses — curl to the AWS IPv6 IMDS, python connecting to an IPv4-mapped address over
an AF_INET6 socket, curl to the ECS credentials address and to Alibaba's metadata address, a 32-bit (gcc -m32)
client, and python setting up io_uring — while IPv6 loopback and another link-local address do not alert; with
the pack off, the seed rule behaves as before.

Network safety: every metadata address exists only on the loopback of a network namespace this test creates
(no other interface, no route out: checked before any client runs), served by a small HTTP server inside it;
nothing leaves the host.  Audit state is global to the machine: rules are added one by one (an existing
identical rule is left alone), only the rules this test added are deleted again (never `auditctl -D`), and
auditd is started only if it is not running.  The recorded slice of audit.log is then scanned with
`auditimds scan` (pack on, pack off).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

import pytest

from tests.conftest import REPO
from tests.e2e.realaudit import read_log_since, sh, wait_for

HARDENED = REPO / "config" / "rules" / "hardened"
SEED_ID = "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
ALL_ENDPOINTS = "c5d868a2-829b-4a80-9738-1bd567f2b66c"
NEW_TERMS = "687b4d6c-2af0-4434-b3ab-bb5712b17831"
CMDLINE = "28876f0c-b43e-41ff-9643-32258698ba53"
URING = "cf47880a-2aa7-4e66-b60a-c2ae7d870041"
PACK = {ALL_ENDPOINTS, NEW_TERMS, CMDLINE, URING}
V4 = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "169.254.10.10"]
V6 = ["fd00:ec2::254"]

C32_SOURCE = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) return 2;
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[1 + 1], argv[1]);
    if (write(s, req, strlen(req)) < 0) return 1;
    char buf[4096];
    ssize_t n;
    while ((n = read(s, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
    close(s);
    return 0;
}
"""

URING_PY = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); p = ctypes.create_string_buffer(120); "
            "fd = libc.syscall(425, 4, p); print('ring', fd, ctypes.get_errno()); fd >= 0 and os.close(fd)")


@pytest.fixture(scope="module")
def metadata_ns(tmp_path_factory) -> Iterator[str]:
    """A namespace whose loopback carries every metadata address (and 169.254.10.10, ::1 as negatives), with an
    HTTP server on [::]:80 (dual stack) inside it.  No other interface, no route out."""
    if not shutil.which("ip") or not shutil.which("curl"):
        pytest.skip("needs iproute2 and curl (.ci/run installs them)")
    ns = f"aimdsh{os.getpid()}"
    root = tmp_path_factory.mktemp("fake-metadata")
    for rel in ("latest/meta-data/iam/security-credentials/role", "latest/meta-data/instance-id",
                "v2/credentials/role", "index.html"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text('{"AccessKeyId":"ASIAEXAMPLE"}\n')
    sh("ip", "netns", "add", ns)
    server: Optional[subprocess.Popen] = None
    try:
        nsx = ["ip", "netns", "exec", ns]
        sh(*nsx, "sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0", check=False)
        sh(*nsx, "ip", "link", "set", "lo", "up")
        for a in V4:
            sh(*nsx, "ip", "addr", "add", f"{a}/32", "dev", "lo")
        for a in V6:
            sh(*nsx, "ip", "-6", "addr", "add", f"{a}/128", "dev", "lo")
        links = sh(*nsx, "ip", "-o", "link").stdout.splitlines()
        assert len(links) == 1 and ": lo:" in links[0], links
        for fam in ("-4", "-6"):
            routes = sh(*nsx, "ip", fam, "route", "show", "table", "all").stdout
            assert "default" not in routes, routes
        server = subprocess.Popen([*nsx, sys.executable, "-m", "http.server", "80", "--bind", "::",
                                   "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for url in ["http://169.254.169.254/index.html", "http://[fd00:ec2::254]/index.html",
                    "http://169.254.170.2/index.html", "http://100.100.100.200/index.html",
                    "http://169.254.10.10/index.html", "http://[::1]/index.html"]:
            wait_for(f"the fake metadata server at {url}", lambda url=url: "ASIAEXAMPLE" in subprocess.run(
                [*nsx, "curl", "-s", "--noproxy", "*", "-m", "1", url], capture_output=True, text=True).stdout)
        yield ns
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def client32(tmp_path_factory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("needs gcc with 32-bit support (apt-get install gcc-multilib; .ci/run installs it)")
    d = tmp_path_factory.mktemp("c32")  # under /tmp: a "dropped binary" location for the rules
    (d / "c32.c").write_text(C32_SOURCE)
    for extra in (["-static"], []):
        r = subprocess.run(["gcc", "-m32", *extra, "-O1", "-o", str(d / "c32"), str(d / "c32.c")],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return d / "c32"
    pytest.skip(f"gcc -m32 cannot build (apt-get install gcc-multilib): {r.stderr.strip()[:200]}")


def scan(path: Path, *rule_args: str) -> List[dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "auditimds", "scan", *rule_args, str(path)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]


def rules_by_marker(alerts: List[dict], markers: Dict[str, str]) -> Dict[str, Set[str]]:
    out: Dict[str, Set[str]] = {k: set() for k in markers}
    for a in alerts:
        text = json.dumps(a)
        for k, m in markers.items():
            if m in text:
                out[k].add(a["rule"]["id"])
    return out


def test_hardened_pack_on_real_auditd(audit_daemon, metadata_ns, client32, tmp_path):
    log: Path = audit_daemon["log"]  # type: ignore[assignment]
    run = uuid.uuid4().hex[:8]
    cases = ["curl_v6", "python_mapped", "curl_ecs", "curl_alibaba", "c32", "neg_v6_loopback", "neg_link_local",
             "uring"]
    m = {k: f"e2e{run}{k.replace('_', '')}" for k in cases}
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    nsx = f"ip netns exec {metadata_ns}"
    creds = "/latest/meta-data/iam/security-credentials/role"
    py_mapped = ("import socket; s = socket.socket(socket.AF_INET6); s.connect(('::ffff:169.254.169.254', 80)); "
                 f"s.sendall(b'GET /latest/meta-data/instance-id?case={m['python_mapped']} HTTP/1.0\\r\\n\\r\\n'); "
                 "print(s.makefile('rb').read().decode())")
    commands = {
        "curl_v6": f"curl -s -m 3 http://[fd00:ec2::254]/latest/meta-data/instance-id?case={m['curl_v6']}",
        "python_mapped": f"{sys.executable} -c \"{py_mapped}\"",
        "curl_ecs": f"curl -s -m 3 http://169.254.170.2/v2/credentials/role?case={m['curl_ecs']}",
        "curl_alibaba": f"curl -s -m 3 http://100.100.100.200/latest/meta-data/instance-id?case={m['curl_alibaba']}",
        "c32": f"{client32} 169.254.169.254 {creds}?case={m['c32']}",
        "neg_v6_loopback": f"curl -s -m 3 http://[::1]/latest/meta-data/instance-id?case={m['neg_v6_loopback']}",
        "neg_link_local": f"curl -s -m 3 http://169.254.10.10/latest/meta-data/instance-id?case={m['neg_link_local']}",
        "uring": f"{sys.executable} -c \"{URING_PY}\" {m['uring']}",
    }
    st = log.stat()
    start = (st.st_ino, st.st_size)
    for k in cases:
        # `sh -c '...; true'`: the client's parent is a shell whose exec is in the recorded slice (the rules need
        # process.parent.executable, which a scan of the slice cannot look up in /proc)
        r = subprocess.run(["sh", "-c", f"{nsx} {commands[k]}; true"], capture_output=True, text=True, env=env,
                           timeout=30)
        if k == "uring":
            assert r.stdout.startswith("ring "), r.stdout + r.stderr
        else:
            assert "ASIAEXAMPLE" in r.stdout or "i-0123" in r.stdout or "AccessKeyId" in r.stdout, (k, r.stdout,
                                                                                                  r.stderr)
    sentinel = f"e2e{run}sentinel"
    subprocess.run(["/bin/true", sentinel], check=True)  # no space in its argv: written unencoded
    wait_for("auditd to write the sentinel exec", lambda: sentinel.encode() in read_log_since(log, start))
    # the last records of the sentinel's event (PROCTITLE) may follow a moment later; completion needs no EOE
    slice_path = tmp_path / "slice.log"
    wait_for("the slice to end with a complete event", lambda: slice_path.write_bytes(read_log_since(log, start))
             and b"PROCTITLE" in slice_path.read_bytes().rsplit(sentinel.encode(), 1)[-1])

    on = rules_by_marker(scan(slice_path, "--rules", str(HARDENED)), m)
    off = rules_by_marker(scan(slice_path), m)

    # pack on: each blind spot alerts; the all-endpoints sequence rule fires for every metadata connect
    for k in ("curl_v6", "python_mapped", "curl_ecs", "curl_alibaba", "c32"):
        assert ALL_ENDPOINTS in on[k], (k, on)
        assert on[k] & PACK, (k, on)
    assert NEW_TERMS in on["curl_v6"]  # first contact of /usr/bin/curl with the metadata service on this host
    assert NEW_TERMS in on["python_mapped"] and NEW_TERMS in on["c32"]
    assert NEW_TERMS not in on["curl_ecs"] and NEW_TERMS not in on["curl_alibaba"]  # curl already seen
    assert CMDLINE in on["c32"] and CMDLINE in on["curl_ecs"]
    assert on["uring"] == {URING}
    # negatives: IPv6 loopback and another link-local address
    assert on["neg_v6_loopback"] == set() and on["neg_link_local"] == set()
    # pack off: the seed rule as before — 169.254.169.254 (also via the IPv4-mapped form, as in Elasticsearch,
    # and from the 32-bit socketcall client); the other endpoints are its blind spots
    assert off == {k: ({SEED_ID} if k in ("python_mapped", "c32") else set()) for k in cases}
    # with the pack on the seed rule is unchanged too
    assert {k: v & {SEED_ID} for k, v in on.items()} == off
