"""The grammar and ranges of settings (module_utils/validation.py), which every role's
preflight applies through the check_settings action."""

from __future__ import annotations

import pytest

from ansible_collections.privreg.registry.plugins.module_utils import validation


@pytest.mark.parametrize(
    ("kind", "value", "options"),
    [
        ("port", 5000, None),
        ("port", "443", None),
        ("integer", 10, {"low": 4, "high": 31}),
        ("data_dir", "/opt/registry", None),
        ("data_dir", "/srv/registry/data", None),
        ("data_dir", "/var/lib/privreg", None),
        ("hostname", "registry.example.com", None),
        ("hostname", "registry", None),
        ("hostname", "10.0.0.5", None),
        ("hostname", "fd00::5", None),
        ("hostname", "*.example.com", {"wildcard": True}),
        ("hostnames", ["a.example", "10.1.1.1"], None),
        ("dns_names", ["registry.example.com", "registry-2.example.com."], None),
        ("email", "", None),
        ("email", "ops+registry@example.com", None),
        ("url", "https://acme-v02.api.letsencrypt.org/directory", {"schemes": ["https"]}),
        ("loopback", "127.0.0.1", None),
        ("loopback", "::1", None),
        ("duration", "168h", None),
        ("duration", "1h30m", None),
        ("secret", "pa$$word #1 'q' \"q\" ünïcødé", None),
        ("secrets", {"accountkey": "x$y"}, None),
        ("bucket", "my-registry.bucket", None),
        ("region", "us-east-1", None),
        ("url", "http://storage:8333", None),
        ("url", "https://s3.eu-west-1.amazonaws.com", None),
        ("image_reference", "registry:2.8.3", None),
        ("image_reference", "registry.example.com:5000/team/app:1", None),
        ("image_reference", "privreg-test/nginx:debian", None),
        ("container_name", "registry", None),
        ("file_name", "2026-11.a_b", None),
        ("compose_project", "registry-web", None),
        ("extra_hosts", {"storage": "10.0.0.7"}, None),
        ("environment", {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": 512}, None),
    ],
)
def test_good_settings_pass(kind, value, options):
    check = {"name": "v", "value": value, "kind": kind, "options": options}
    assert validation.setting_problems([check]) == []


@pytest.mark.parametrize(
    ("kind", "value", "options", "fragment"),
    [
        ("port", 0, None, "outside 1-65535"),
        ("port", 65536, None, "outside 1-65535"),
        ("port", "http", None, "not a port number"),
        ("port", True, None, "outside 1-65535"),
        ("integer", 3, {"low": 4, "high": 31}, "outside 4-31"),
        ("data_dir", "/", None, "system directory"),
        ("data_dir", "/tmp", None, "system directory"),
        ("data_dir", "/etc", None, "system directory"),
        ("data_dir", "/var", None, "system directory"),
        ("data_dir", "/usr", None, "system directory"),
        ("data_dir", "/tmp/registry", None, "lies in /tmp"),
        ("data_dir", "/proc/x", None, "lies in /proc"),
        ("data_dir", "opt/registry", None, "not absolute"),
        ("data_dir", "/opt/../etc", None, "normal form"),
        ("data_dir", "/opt/reg istry", None, "spaces"),
        ("data_dir", "/opt/a:b", None, "':'"),
        ("data_dir", "", None, "empty"),
        *(
            ("data_dir", "/opt/reg" + bad, None, "characters other than")
            for bad in ("$(touch${IFS}/tmp/x)", ";id", "`id`", "|id", "&id", "%h", "*", "\\x")
        ),
        ("hostname", "bad_name", None, "neither a DNS name"),
        ("hostname", "-lead.example", None, "neither a DNS name"),
        ("hostname", "a..b", None, "neither a DNS name"),
        ("hostname", "*.example.com", None, "neither a DNS name"),
        ("hostname", "reg.example/path", None, "neither a DNS name"),
        ("hostname", "", None, "empty"),
        ("hostnames", ["ok.example", "not ok"], None, "[1] (not ok)"),
        ("dns_names", [], None, "is empty"),
        ("dns_names", ["registry"], None, "single label"),
        ("dns_names", ["a.example", "10.0.0.5"], None, "[1] (10.0.0.5) is an IP address"),
        ("dns_names", ["bad name.example"], None, "neither a DNS name"),
        ("dns_names", ["*.example.com"], None, "neither a DNS name"),
        ("email", "ops", None, "not an e-mail address"),
        ("email", "ops@example.com\nBcc: x", None, "not an e-mail address"),
        ("url", "http://acme.example/dir", {"schemes": ["https"]}, "not a https URL"),
        ("ip_address", "999.1.1.1", None, "not an IP address"),
        ("loopback", "0.0.0.0", None, "not a loopback"),
        ("loopback", "10.0.0.5", None, "not a loopback"),
        ("duration", "7 days", None, "not a duration"),
        ("duration", "10", None, "not a duration"),
        ("secret", "line\nbreak", None, "line break"),
        ("secret", "nul\x00", None, "control character"),
        ("secret", "sep\u2028arator", None, "line break"),
        ("secrets", {"bad-key": "x"}, None, "not a parameter name"),
        ("bucket", "My_Bucket", None, "not an S3 bucket name"),
        ("bucket", "ab", None, "not an S3 bucket name"),
        ("region", "US East", None, "not a region name"),
        ("url", "storage:8333", None, "not a http or https URL"),
        ("url", "http://user:pw@storage:8333", None, "without credentials"),
        ("url", "http://storage:99999", None, "port outside"),
        ("url", "ftp://storage", None, "not a http or https URL"),
        ("image_reference", "Registry:2", None, "not an image reference"),
        ("image_reference", "registry:2 --privileged", None, "not an image reference"),
        ("container_name", "-registry", None, "not a container name"),
        ("file_name", "../../etc/passwd", None, "not a simple name"),
        ("file_name", ".hidden", None, "not a simple name"),
        ("file_name", "a/b", None, "not a simple name"),
        ("compose_project", "Registry", None, "not a compose project name"),
        ("extra_hosts", {"storage": "not-an-ip"}, None, "[storage] is not an IP address"),
        ("extra_hosts", {"bad host": "10.0.0.1"}, None, "neither a DNS name"),
        ("text_line", "two\nlines", None, "one line"),
        # The host's systemd reads what passes (action/check_settings); a unit line never
        # gets a line break.
        ("systemd_calendar", "Sun\nExecStart=/bin/sh", None, "one line"),
        ("systemd_timespan", "1h\rx", None, "one line"),
        (
            "environment",
            {"OTEL_X": "a\nREGISTRY_HTTP_SECRET=x"},
            None,
            "[OTEL_X] contains a line break",
        ),
        ("environment", {"BAD-NAME": "x"}, None, "has the key 'BAD-NAME'"),
        ("environment", {"OTEL_X": {"nested": 1}}, None, "[OTEL_X] is not a single value"),
    ],
)
def test_bad_settings_are_named_with_the_reason(kind, value, options, fragment):
    check = {"name": "some_variable", "value": value, "kind": kind, "options": options}
    problems = validation.setting_problems([check])
    assert len(problems) == 1
    assert problems[0].startswith("some_variable")
    assert fragment in problems[0]


def test_secrets_never_appear_in_the_sentences():
    secret = "s3cr3t-value\nINJECTED=1"
    problems = validation.setting_problems(
        [
            {"name": "registry_server_storage_s3_secretkey", "value": secret, "kind": "secret"},
            {"name": "registry_server_storage_secrets", "value": {"k": secret}, "kind": "secrets"},
        ]
    )
    assert len(problems) == 2
    assert not any("s3cr3t" in p or "INJECTED" in p for p in problems)


def test_hint_is_added_and_every_failing_setting_reported():
    problems = validation.setting_problems(
        [
            {"name": "a_port", "value": 0, "kind": "port", "hint": "clients use it"},
            {"name": "a_dir", "value": "/tmp", "kind": "data_dir"},
            {"name": "fine", "value": 80, "kind": "port"},
        ]
    )
    assert [p.split(" ")[0] for p in problems] == ["a_port", "a_dir"]
    assert problems[0].endswith("; clients use it")


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown kind of setting 'nope' for x"):
        validation.setting_problems([{"name": "x", "value": 1, "kind": "nope"}])
