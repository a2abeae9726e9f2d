"""Real auditd for the end-to-end tests, shared by every module in tests/e2e (realaudit.real_auditd).

Audit state is global to the machine, so this fixture is careful:
- auditd is started only when no live auditd is registered with the kernel.  `auditctl -s` alone is not
  enough: after auditd dies (killed, or a previous run's machine stopped it) the kernel keeps showing its pid
  until it next fails to send it a record, and every record in between goes to the kernel log, not audit.log.
  So the registered pid must also be a running process named auditd.
- The backlog is only raised, never lowered, and restored at the end.
- The rules of packaging/audit/auditimds.rules are added one by one; an identical rule already loaded is left
  alone, and only the rules added here are deleted at the end (never `auditctl -D`).
- Before any test runs, a canary exec must reach the log: a fixture that cannot prove auditd writes fails here
  with that message instead of a test timing out later.
- An auditd started here is stopped at the end, and the fixture waits until it is gone.
"""

from __future__ import annotations

from typing import Dict, Iterator

import pytest

from tests.e2e.realaudit import AuditUnavailable, real_auditd


@pytest.fixture(scope="package")  # set up once for tests/e2e, torn down after its last test
def audit_daemon() -> Iterator[Dict[str, object]]:
    """auditd running and writing, with packaging/audit/auditimds.rules loaded; yields {"log": Path}."""
    try:
        session = real_auditd()
        log = session.__enter__()
    except AuditUnavailable as e:
        pytest.skip(str(e))
    try:
        yield {"log": log}
    finally:
        session.__exit__(None, None, None)
