"""The short torture run in CI (the long one: `python3 -m tests.e2e.torture`, figures in the README).

Real auditd, real curl and python processes in a network namespace, the agent as a subprocess killed with -9
at random instants and at the instant it writes an alert line, reloaded and stopped between an exec and its
connect, a webhook outage, rotations under exec load: every access must be alerted exactly once in the alerts
file and at the webhook (a webhook repeat is accepted only in the one documented window: the receiver took the
message and the sender was killed before it wrote the delivery down).  About a minute and a half.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.torture import Plan, run_torture

PLAN = Plan(kills=10, kills_at_write=3, kills_between=1, hups_between=1, terms_between=1, outage_kills=1,
            rotations=12, rotation_every=1.0, load_rate=400, seed=20261204)


def test_every_access_is_alerted_exactly_once_across_kills_reloads_and_rotations(audit_daemon, tmp_path: Path):
    report = run_torture(PLAN, tmp_path)
    summary = report.summary()
    print(summary)
    assert report.failures() == [], (report.failures(), summary, (tmp_path / "steps.log").read_text()[-3000:])
    # the run did what it claims (else "no failure" would prove nothing)
    assert report.kills == PLAN.kills and report.kills_at_write == PLAN.kills_at_write
    assert report.hups_between == PLAN.hups_between and report.terms_between == PLAN.terms_between
    assert report.kills_between == PLAN.kills_between
    assert report.rotations >= PLAN.rotations
    assert report.accesses == len(report.file_counts) >= PLAN.kills
    assert report.kills_at_write_before_checkpoint >= 1  # the hazard was real: the saved ledger lacked the alert
