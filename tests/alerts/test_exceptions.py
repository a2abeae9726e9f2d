from __future__ import annotations

import pytest

from auditimds.alerts.exceptions import ExceptionConfigError, ExceptionFilter, parse_exceptions
from auditimds.ecs.event import EcsEvent

SEED = "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"


def ev(**fields):
    return EcsEvent({k.replace("__", "."): v for k, v in fields.items()})


def flt(items):
    return ExceptionFilter(parse_exceptions(items, "f.toml"))


def test_fields_and_across_or_within_scoped_to_a_rule():
    f = flt([{"rule_id": SEED, "parent_executable": ["/opt/agent/*", "/usr/bin/cloud-init"],
              "process_name": "curl"}])
    curl_from_agent = ev(process__name="curl", process__parent__executable="/opt/agent/bin/run")
    wget_from_agent = ev(process__name="wget", process__parent__executable="/opt/agent/bin/run")
    curl_from_shell = ev(process__name="curl", process__parent__executable="/usr/bin/bash")
    assert f.matches(SEED, [curl_from_agent])
    assert not f.matches(SEED, [wget_from_agent])  # AND across fields
    assert not f.matches(SEED, [curl_from_shell])
    assert not f.matches("other-rule", [curl_from_agent])  # scoped
    assert f.matches(SEED, [curl_from_shell, curl_from_agent])  # any event of the alert


def test_case_sensitive_wildcards_multivalued_and_missing_fields():
    f = flt([{"command_line": "*--health-check*"}, {"user_id": ["1001"]}])
    assert f.matches("any", [ev(process__command_line="agent --health-check -q")])
    assert not f.matches("any", [ev(process__command_line="agent --HEALTH-CHECK")])
    assert not f.matches("any", [ev(process__name="x")])  # field missing: no match
    assert f.matches("any", [ev(user__id="1001")])


@pytest.mark.parametrize("items,message", [
    ({"a": 1}, "f.toml: exceptions must be an array of tables ([[exceptions]])"),
    ([1], "f.toml: [[exceptions]] #1: must be a table"),
    ([{"rule_id": ""}], "f.toml: [[exceptions]] #1 rule_id: must be a non-empty string"),
    ([{"rule_id": "x"}], "f.toml: [[exceptions]] #1: lists no field to match (it would silence every alert of "
                         "its rule)"),
    ([{"process_name": []}], "f.toml: [[exceptions]] #1 process_name: must be a non-empty list of non-empty strings"),
    ([{"process_name": ["curl"]}, {"exe": ["/x"]}], "f.toml: [[exceptions]] #2: unknown key 'exe' (known: rule_id, "
                                                    "comment, process_executable, process_name, command_line, "
                                                    "working_directory, parent_executable, parent_name, "
                                                    "parent_command_line, user_id, user_name, destination_ip, "
                                                    "host_name, host_id)"),
    ([{"process_name": "x", "comment": 3}], "f.toml: [[exceptions]] #1 comment: must be a string"),
])
def test_bad_exceptions_are_one_line_errors(items, message):
    with pytest.raises(ExceptionConfigError) as e:
        parse_exceptions(items, "f.toml")
    assert str(e.value) == message
