"""Bad input is refused before anything changes, with a message that names the variable.

One table, run as fast tests of the real preflight: each case is an inventory alias on
this machine (a local connection) carrying the case's variables, and the roles' own
preflight entry points (their argument specs validated as a role's start does, then their
checks) run for every alias at once, one play per role. Each case must fail in its role's
checks and say what is wrong; one alias per role with good settings must pass, so a broken
harness cannot pass the table. Molecule's default scenario keeps a few of these cases
against real hosts, to show that a refusal changes nothing there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).with_name("preflight.yml")

USERS = [{"name": "pusher", "password": "molecule-pusher-pw"}]
CLIENT = {"registry_client_username": "pusher", "registry_client_password": "molecule-pusher-pw"}
BACKUP = {
    "registry_maintenance_backup_enabled": True,
    "registry_maintenance_backup_repository": "/srv/backups",
    "registry_maintenance_backup_password": "pw",
}
BUCKET_COPY = {
    "endpoint": "https://s3.lab:8333",
    "bucket": "copy",
    "region": "us-east-1",
    "access_key": "k",
    "secret_key": "s",
}
S3 = {
    "registry_server_storage_driver": "s3",
    "registry_server_storage_s3_bucket": "registry",
    "registry_server_storage_s3_region": "us-east-1",
}

# (case, group the alias joins, its variables, what the message must say)
CASES = [
    (
        "port-zero",
        "server",
        {"registry_server_port": 0},
        "registry_server_port (0) is outside 1-65535",
    ),
    (
        "port-too-high",
        "server",
        {"registry_server_port": 70000},
        "registry_server_port (70000) is outside",
    ),
    (
        "base-dir-tmp",
        "server",
        {"registry_server_base_dir": "/tmp"},
        "registry_server_base_dir ('/tmp') is a system directory",
    ),
    (
        "base-dir-root",
        "server",
        {"registry_server_base_dir": "/"},
        "registry_server_base_dir ('/') is a system directory",
    ),
    (
        "base-dir-relative",
        "server",
        {"registry_server_base_dir": "opt/registry"},
        "registry_server_base_dir ('opt/registry') is not absolute",
    ),
    (
        # Reached root's scripts and ExecStart= lines, where it ran.
        "base-dir-command-substitution",
        "server",
        {"registry_server_base_dir": "/opt/reg$(touch${IFS}/tmp/x)"},
        "registry_server_base_dir ('/opt/reg$(touch${IFS}/tmp/x)') has characters other than",
    ),
    (
        "base-dir-percent",
        "web",
        {"registry_web_base_dir": "/opt/web%h"},
        "registry_web_base_dir ('/opt/web%h') has characters other than",
    ),
    (
        "bind-address",
        "server",
        {"registry_server_bind_address": "everywhere"},
        "registry_server_bind_address ('everywhere') is not an IP address",
    ),
    (
        "debug-public",
        "server",
        {"registry_server_debug_bind_address": "0.0.0.0"},
        "registry_server_debug_bind_address ('0.0.0.0') is not a loopback address",
    ),
    (
        "debug-port-clash",
        "server",
        {"registry_server_debug_port": 5000},
        "registry_server_debug_port (5000) must differ from",
    ),
    (
        "image-line-unknown",
        "server",
        {"registry_server_image": "registry:latest"},
        "cannot be told from registry_server_image",
    ),
    (
        "forcepathstyle-on-2",
        "server",
        {
            "registry_server_image": "registry:2.8.3",
            "registry_server_storage_s3_forcepathstyle": True,
        },
        "registry 2.x has no forcepathstyle option",
    ),
    (
        "token-realm-not-in-certificate",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_realm": "https://tokens.example.com:5443/token",
        },
        "names the host tokens.example.com, but the token service serves it with the certificate",
    ),
    (
        "token-realm-not-an-acme-domain",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_server_tls_mode": "acme",
            "registry_pki_acme_domains": ["registry.example.com"],
            "registry_token_realm": "https://registry:5443/token",
        },
        "or add registry to registry_pki_acme_domains",
    ),
    (
        "acme-single-label",
        "server",
        {"registry_server_tls_mode": "acme", "registry_pki_acme_domains": ["registry"]},
        "registry_pki_acme_domains [0] (registry) has a single label",
    ),
    (
        "acme-ip-address",
        "server",
        {"registry_server_tls_mode": "acme", "registry_pki_acme_domains": ["10.0.0.5"]},
        "registry_pki_acme_domains [0] (10.0.0.5) is an IP address",
    ),
    (
        "acme-plain-http-directory",
        "server",
        {
            "registry_server_tls_mode": "acme",
            "registry_pki_acme_domains": ["registry.example.com"],
            "registry_pki_acme_directory_url": "http://acme.example.com/directory",
        },
        "registry_pki_acme_directory_url ('http://acme.example.com/directory') is not",
    ),
    (
        # The token service would take passwords without the client certificates the
        # registry requires.
        "token-mode-with-client-certificates",
        "server",
        {"registry_server_auth_mode": "token", "registry_server_tls_client_auth": True},
        "registry_server_tls_client_auth: true makes the registry require client",
    ),
    (
        # A revoked key that still signs: every token would be refused at once.
        "token-revoking-the-signing-key",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_signing_key_id": "2",
            "registry_token_revoked_key_ids": ["1", "2"],
        },
        "registry_token_revoked_key_ids names the key that signs now (2). Rotate first",
    ),
    (
        "token-revoked-key-id-with-a-slash",
        "server",
        {"registry_server_auth_mode": "token", "registry_token_revoked_key_ids": ["../1"]},
        "registry_token_revoked_key_ids [0] (../1) is not a simple name",
    ),
    (
        "token-trusted-proxy-not-a-network",
        "server",
        {"registry_server_auth_mode": "token", "registry_token_trusted_proxies": ["10.0.0.0/33"]},
        "registry_token_trusted_proxies [0] (10.0.0.0/33) is not an IP address or network",
    ),
    (
        "token-password-checks-zero",
        "server",
        {"registry_server_auth_mode": "token", "registry_token_password_checks": 0},
        "registry_token_password_checks (0) is outside 1-256",
    ),
    (
        "token-robot-with-a-bad-expiry-and-a-short-secret",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_robots": [
                {
                    "name": "ci",
                    "secret": "x7q!",
                    "expires": "30.06.2027",
                    "access": [{"repository": "team/*", "actions": ["pull"]}],
                }
            ],
        },
        "registry_token_robots[0] (ci): expires '30.06.2027' is not a date",
    ),
    (
        "token-robot-without-rules",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_robots": [{"name": "ci", "expires": "never", "access": []}],
        },
        "registry_token_robots[0] (ci): access must be a non-empty list",
    ),
    (
        "token-user-named-like-a-robot",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_server_users": [{"name": "robot$ci", "password": "pw-of-a-user"}],
        },
        "registry_server_users names robot$ci, which start(s) with the robot prefix robot$",
    ),
    (
        "robots-without-token-mode",
        "server",
        {
            "registry_token_robots": [
                {"name": "ci", "expires": "never", "access": [{"catalog": True}]}
            ],
        },
        "registry_token_robots and registry_token_ldap_urls are sign-ins of the token service",
    ),
    (
        "token-ldap-plain-without-opt-in",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_ldap_urls": ["ldap://ldap.example.com"],
            "registry_token_ldap_bind_dn": "cn=search,dc=example,dc=com",
            "registry_token_ldap_bind_password": "pw",
            "registry_token_ldap_base_dn": "dc=example,dc=com",
        },
        "registry_token_ldap_urls names ldap://ldap.example.com, which sends every password "
        "in clear",
    ),
    (
        "token-ldap-without-a-service-account",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_ldap_urls": ["ldaps://ldap.example.com"],
            "registry_token_ldap_base_dn": "dc=example,dc=com",
        },
        "registry_token_ldap_urls needs registry_token_ldap_bind_dn, "
        "registry_token_ldap_bind_password",
    ),
    (
        "token-ldap-filter-without-the-user-name",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_ldap_urls": ["ldaps://ldap.example.com"],
            "registry_token_ldap_bind_dn": "cn=search,dc=example,dc=com",
            "registry_token_ldap_bind_password": "pw",
            "registry_token_ldap_base_dn": "dc=example,dc=com",
            "registry_token_ldap_user_filter": "(uid=*)",
        },
        "registry_token_ldap_user_filter ('(uid=*)') must name {username}",
    ),
    (
        "token-ldap-group-map-to-a-bad-name",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_ldap_groups": {"cn=admins,dc=example,dc=com": "team admins"},
        },
        "registry_token_ldap_groups [cn=admins,dc=example,dc=com] ('team admins') is not a "
        "group name",
    ),
    (
        "acme-calendar-systemd-cannot-read",
        "server",
        {
            "registry_server_tls_mode": "acme",
            "registry_pki_acme_domains": ["registry.example.com"],
            "registry_pki_acme_timer_on_calendar": "twice a day",
        },
        "registry_pki_acme_timer_on_calendar ('twice a day') is not a calendar",
    ),
    (
        "acme-bad-email",
        "server",
        {
            "registry_server_tls_mode": "acme",
            "registry_pki_acme_domains": ["registry.example.com"],
            "registry_pki_acme_email": "ops@example.com\nBcc: x@example.com",
        },
        "is not an e-mail address",
    ),
    (
        "acme-on-port-80",
        "server",
        {
            "registry_server_tls_mode": "acme",
            "registry_pki_acme_domains": ["registry.example.com"],
            "registry_server_port": 80,
        },
        "so registry_server_port cannot be 80",
    ),
    (
        "drain-timeout-too-long",
        "server",
        {"registry_server_drain_timeout": 5000},
        "registry_server_drain_timeout (5000) is outside 0-3600",
    ),
    (
        "replicas-on-the-local-disk",
        "server",
        {"registry_server_replicas": ["registry", "client-a"]},
        "registry_server_replicas lists 2 hosts, but registry_server_storage_driver is filesystem",
    ),
    (
        "replicas-without-this-host",
        "server",
        {"registry_server_replicas": ["client-a"]},
        "registry_server_replicas must be a list of inventory hosts that includes this host",
    ),
    (
        "gc-lock-wait-too-long",
        "server",
        {"registry_maintenance_gc_lock_wait": 100000},
        "registry_maintenance_gc_lock_wait (100000) is outside 0-86400",
    ),
    (
        "converge-lock-wait-negative",
        "server",
        {"registry_maintenance_converge_lock_wait": -5},
        "registry_maintenance_converge_lock_wait (-5) is outside 0-86400",
    ),
    (
        "retention-rule-bad-regex",
        "server",
        {
            "registry_maintenance_retention_rules": [
                {"repositories": "ci/*", "keep_last": 10},
                {"repositories": "rel/*", "keep_tags": "v[0-9"},
            ]
        },
        "registry_maintenance_retention_rules [1]: keep_tags 'v[0-9' is not a regular expression",
    ),
    (
        "retention-rule-negative-count",
        "server",
        {"registry_maintenance_retention_rules": [{"repositories": "ci/*", "keep_last": -3}]},
        "registry_maintenance_retention_rules [0]: keep_last -3 is outside 0-100000",
    ),
    (
        "retention-rule-unknown-key",
        "server",
        {"registry_maintenance_retention_rules": [{"repositories": "ci/*", "keep_lats": 3}]},
        "registry_maintenance_retention_rules [0] has the unknown key(s) keep_lats",
    ),
    (
        "retention-with-replicas",
        "server",
        dict(
            S3,
            registry_server_replicas=["{{ inventory_hostname }}", "client-a"],
            registry_server_http_secret="a-shared-secret-of-32-characters",
            registry_maintenance_retention_rules=[{"repositories": "ci/*", "keep_last": 3}],
        ),
        "registry_maintenance_retention_rules (or its timer) apply to a single registry",
    ),
    (
        "retention-timer-bad-calendar",
        "server",
        {"registry_maintenance_retention_timer_on_calendar": "every full moon"},
        "registry_maintenance_retention_timer_on_calendar ('every full moon') is not a calendar",
    ),
    (
        "backup-without-password",
        "server",
        {
            "registry_maintenance_backup_enabled": True,
            "registry_maintenance_backup_repository": "/b",
        },
        "registry_maintenance_backup_repository and registry_maintenance_backup_password must both",
    ),
    (
        "backup-repository-relative",
        "server",
        dict(BACKUP, registry_maintenance_backup_repository="backups"),
        "registry_maintenance_backup_repository ('backups') is neither an absolute path nor",
    ),
    (
        "backup-repository-credentials",
        "server",
        dict(BACKUP, registry_maintenance_backup_repository="s3:https://key:secret@s3.lab/b"),
        "has credentials in it; give them in registry_maintenance_backup_environment",
    ),
    (
        "backup-keep-negative",
        "server",
        dict(BACKUP, registry_maintenance_backup_keep_daily=-1),
        "registry_maintenance_backup_keep_daily (-1) is outside 0-10000",
    ),
    (
        "backup-check-subset",
        "server",
        dict(BACKUP, registry_maintenance_backup_check_read_data_subset="half"),
        "registry_maintenance_backup_check_read_data_subset ('half') is not a share of the data",
    ),
    (
        "backup-calendar-injection",
        "server",
        dict(BACKUP, registry_maintenance_backup_timer_on_calendar="daily\nExecStart=/bin/sh"),
        "registry_maintenance_backup_timer_on_calendar ('daily\\nExecStart=/bin/sh') contains "
        "a line break",
    ),
    (
        "bucket-copy-of-a-disk-store",
        "server",
        dict(BACKUP, registry_maintenance_backup_bucket_copy=BUCKET_COPY),
        "registry_maintenance_backup_bucket_copy copies an S3 store, but this registry keeps its "
        "blobs on filesystem",
    ),
    (
        "bucket-copy-incomplete",
        "server",
        dict(S3, **BACKUP, registry_maintenance_backup_bucket_copy={"bucket": "copy"}),
        "registry_maintenance_backup_bucket_copy needs endpoint (an http or https URL), bucket, "
        "region, access_key and secret_key; it lacks endpoint, region, access_key, secret_key",
    ),
    (
        "bucket-copy-bucket-path",
        "server",
        dict(
            S3,
            **BACKUP,
            registry_maintenance_backup_bucket_copy=dict(BUCKET_COPY, bucket="copy/../other"),
        ),
        'bucket "copy/../other"',
    ),
    (
        "bucket-copy-endpoint-credentials",
        "server",
        dict(
            S3,
            **BACKUP,
            registry_maintenance_backup_bucket_copy=dict(
                BUCKET_COPY, endpoint="https://k:s@s3.lab"
            ),
        ),
        "endpoint must be an http or https URL",
    ),
    (
        "restore-snapshot-path",
        "server",
        {"registry_maintenance_restore_snapshot": "../latest"},
        "registry_maintenance_restore_snapshot ('../latest') is not a simple name",
    ),
    (
        "delete-untagged-on-2",
        "server",
        {
            "registry_server_image": "registry:2.8.3",
            "registry_maintenance_gc_delete_untagged": True,
        },
        "deletes the child manifests of multi-arch indexes",
    ),
    (
        "environment-injection",
        "server",
        {"registry_server_environment": {"OTEL_X": "a\nREGISTRY_HTTP_SECRET=x"}},
        "registry_server_environment [OTEL_X] contains a line break",
    ),
    (
        "image-injection",
        "server",
        {"registry_server_image": "registry:2 --privileged"},
        "registry_server_image ('registry:2 --privileged') is not an image reference",
    ),
    (
        "container-name",
        "server",
        {"registry_server_container_name": "-registry"},
        "registry_server_container_name ('-registry') is not a container name",
    ),
    (
        "extra-host-address",
        "server",
        {"registry_server_extra_hosts": {"storage": "not-an-ip"}},
        "registry_server_extra_hosts [storage] is not an IP address",
    ),
    (
        "san-grammar",
        "server",
        {"registry_server_tls_subject_alt_names": ["bad_name"]},
        "registry_server_tls_subject_alt_names [0] (bad_name) is neither a DNS name",
    ),
    (
        "san-wildcard-tld",
        "server",
        {"registry_server_tls_subject_alt_names": ["*.com"]},
        "a wildcard only as the whole first label",
    ),
    (
        "valid-days-zero",
        "server",
        {"registry_server_tls_valid_days": 0},
        "registry_server_tls_valid_days (0) is outside",
    ),
    (
        "renew-after-expiry",
        "server",
        {"registry_server_tls_valid_days": 30, "registry_server_tls_renew_before_days": 30},
        "registry_server_tls_renew_before_days (30) is outside",
    ),
    (
        "bcrypt-cost",
        "server",
        {"registry_server_htpasswd_cost": 3},
        "registry_server_htpasswd_cost (3) is outside 4-31",
    ),
    (
        "secret-newline",
        "server",
        {"registry_server_http_secret": "x\nREGISTRY_HTTP_ADDR=:1"},
        "registry_server_http_secret contains a line break",
    ),
    (
        "user-comment",
        "server",
        {"registry_server_users": [{"name": "#admin", "password": "x"}]},
        "name #admin starts with '#'",
    ),
    (
        "user-colon",
        "server",
        {"registry_server_users": [{"name": "bad:name", "password": "x"}]},
        "registry_server_users[0] name bad:name contains ':'",
    ),
    (
        "user-empty-password",
        "server",
        {"registry_server_users": [{"name": "nopass", "password": ""}]},
        "registry_server_users[0] (nopass) has an empty password",
    ),
    (
        "user-twice",
        "server",
        {"registry_server_users": USERS + USERS},
        "registry_server_users[1] name pusher appears twice",
    ),
    (
        "user-line-separator",
        "server",
        {"registry_server_users": [{"name": "a\u2028b", "password": "x"}]},
        "line breaks or control characters",
    ),
    (
        "provided-without-cert",
        "server",
        {"registry_server_tls_mode": "provided"},
        "Missing: registry_server_tls_certificate, registry_server_tls_private_key",
    ),
    (
        "http-without-opt-in",
        "server",
        {"registry_server_tls_mode": "none"},
        "registry_server_tls_none_opt_in: true",
    ),
    (
        "auth-over-http",
        "server",
        {"registry_server_tls_mode": "none", "registry_server_tls_none_opt_in": True},
        "registry_server_auth_over_http_opt_in: true",
    ),
    (
        "unknown-tls-mode",
        "server",
        {"registry_server_tls_mode": "letsencrypt"},
        "value of registry_server_tls_mode must be one of: selfsigned, provided, acme, none, "
        "got: letsencrypt",
    ),
    (
        "missing-archive",
        "server",
        {"registry_server_image_archive": "/nonexistent.tar"},
        "/nonexistent.tar",
    ),
    (
        "mtls-without-ca",
        "server",
        {
            "registry_server_tls_mode": "none",
            "registry_server_tls_none_opt_in": True,
            "registry_server_auth_over_http_opt_in": True,
            "registry_server_tls_client_auth": True,
        },
        "registry_server_tls_client_auth needs registry_server_tls_mode: selfsigned",
    ),
    (
        "s3-bucket-grammar",
        "server",
        dict(S3, registry_server_storage_s3_bucket="Bad_Bucket"),
        "registry_server_storage_s3_bucket ('Bad_Bucket') is not an S3 bucket name",
    ),
    (
        "s3-region-missing",
        "server",
        dict(S3, registry_server_storage_s3_region=""),
        "registry_server_storage_s3_region ('') is not a region name",
    ),
    (
        "redis-cache-without-redis",
        "server",
        {"registry_server_storage_cache_blobdescriptor": "redis"},
        "registry_server_redis_host ('') is empty",
    ),
    (
        "redis-db-out-of-range",
        "server",
        {"registry_server_redis_host": "cache.example.test", "registry_server_redis_db": 16},
        "registry_server_redis_db (16) is outside 0-15",
    ),
    (
        "s3-chunk-too-small",
        "server",
        dict(S3, registry_server_storage_s3_chunksize=1024),
        "registry_server_storage_s3_chunksize is 1024; S3 multipart parts must be at least",
    ),
    (
        "s3-half-keys",
        "server",
        dict(S3, registry_server_storage_s3_accesskey="AK"),
        "Set both registry_server_storage_s3_accesskey",
    ),
    (
        "s3-secret-newline",
        "server",
        dict(
            S3,
            registry_server_storage_s3_accesskey="AK",
            registry_server_storage_s3_secretkey="a\nb",
        ),
        "registry_server_storage_s3_secretkey contains a line break",
    ),
    (
        "s3-endpoint-url",
        "server",
        dict(S3, registry_server_storage_s3_regionendpoint="storage:8333"),
        "registry_server_storage_s3_regionendpoint ('storage:8333') is not a http or https URL",
    ),
    (
        "purge-age",
        "server",
        {"registry_server_storage_uploadpurging_age": "7 days"},
        "registry_server_storage_uploadpurging_age ('7 days') is not a duration",
    ),
    (
        "health-interval",
        "server",
        {"registry_server_health_storagedriver_interval": "10"},
        "registry_server_health_storagedriver_interval ('10') is not a duration",
    ),
    (
        "storage-secret-name",
        "server",
        {"registry_server_storage_secrets": {"bad-key": "x"}},
        "registry_server_storage_secrets has the key 'bad-key'",
    ),
    (
        # Passed preflight once: the units were written (changed=2), then systemd refused
        # to load the timer and the host kept a broken unit.
        "gc-calendar-systemd-cannot-read",
        "server",
        {"registry_maintenance_gc_timer_on_calendar": "every tuesday-ish"},
        "registry_maintenance_gc_timer_on_calendar ('every tuesday-ish') is not a calendar "
        "this host's systemd can read",
    ),
    (
        "backup-delay-systemd-cannot-read",
        "server",
        dict(BACKUP, registry_maintenance_backup_timer_randomized_delay="half an hour"),
        "registry_maintenance_backup_timer_randomized_delay ('half an hour') is not a time span",
    ),
    (
        "gc-calendar-injection",
        "server",
        {"registry_maintenance_gc_timer_on_calendar": "Sun\nExecStartPre=/bin/true"},
        "registry_maintenance_gc_timer_on_calendar ('Sun\\nExecStartPre=/bin/true') contains "
        "a line break",
    ),
    (
        "token-rule-grammar",
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_acl": [{"account": "alice", "repository": "Alice/*"}],
        },
        "registry_token_acl[0]: repository 'Alice/*' may hold only lower-case letters",
    ),
    (
        "moved-variables",
        "server",
        {"registry_server_acl": [], "registry_server_gc_timer_enabled": True},
        "registry_server_acl is now registry_token_acl, registry_server_gc_timer_enabled is now "
        "registry_maintenance_gc_timer_enabled (0.3.0",
    ),
    (
        "ready-timeout",
        "server",
        {"registry_server_ready_timeout": 0},
        "registry_server_ready_timeout (0) is outside 1-3600",
    ),
    (
        "ca-constraint-grammar",
        "server",
        {"registry_pki_ca_name_constraints": ["not a domain"]},
        "registry_pki_ca_name_constraints [0] (not a domain) is neither a DNS name",
    ),
    (
        "client-host-url",
        "client",
        dict(CLIENT, registry_client_registry_host="https://registry:5000"),
        "registry_client_registry_host ('https://registry:5000') is neither a DNS name",
    ),
    (
        "client-port-zero",
        "client",
        dict(CLIENT, registry_client_registry_port=0),
        "registry_client_registry_port (0) is outside 1-65535",
    ),
    (
        "client-password-newline",
        "client",
        dict(CLIENT, registry_client_password="pw\nX=1"),
        "registry_client_password contains a line break",
    ),
    (
        "client-runtime",
        "client",
        dict(CLIENT, registry_client_runtimes=["rkt"]),
        "value of registry_client_runtimes must be one or more of: docker, containerd, podman. "
        "Got no match for: rkt",
    ),
    (
        "client-priority",
        "client",
        dict(CLIENT, registry_client_podman_conf_priority=100),
        "registry_client_podman_conf_priority (100) is outside 0-99",
    ),
    (
        "client-no-password",
        "client",
        dict(CLIENT, registry_client_password=""),
        "registry_client_password is empty",
    ),
    ("web-port-zero", "web", {"registry_web_port": 0}, "registry_web_port (0) is outside 1-65535"),
    (
        "web-base-dir-etc",
        "web",
        {"registry_web_base_dir": "/etc"},
        "registry_web_base_dir ('/etc') is a system directory",
    ),
    (
        "web-url-scheme",
        "web",
        {"registry_web_registry_url": "ftp://registry:5000"},
        "registry_web_registry_url ('ftp://registry:5000') is not a http or https URL",
    ),
    (
        "web-server-name",
        "web",
        {"registry_web_server_names": ["bad name"]},
        "registry_web_server_names [0] (bad name) is neither a DNS name",
    ),
    (
        "web-proxy-timeout",
        "web",
        {"registry_web_proxy_timeout": 0},
        "registry_web_proxy_timeout (0) is outside",
    ),
    (
        "web-hsts",
        "web",
        {"registry_web_hsts_max_age": -1},
        "registry_web_hsts_max_age (-1) is outside",
    ),
]
GROUPS = {"server": "registry_servers", "client": "registry_clients", "web": "registry_web"}
# Good settings: each alias "accepted-NAME" must pass its role's preflight, every path of
# the registry's (token service, ACME) included.
ACCEPTED = {
    "server": ("server", {}),
    "server-token": (
        "server",
        {
            "registry_server_auth_mode": "token",
            "registry_token_acl": [
                {"account": "*", "repository": "${account}/*", "actions": ["pull"]}
            ],
        },
    ),
    "server-acme": (
        "server",
        {"registry_server_tls_mode": "acme", "registry_pki_acme_domains": ["registry.example.com"]},
    ),
    "server-acme-token": (
        "server",
        {
            "registry_server_tls_mode": "acme",
            "registry_server_port": 443,
            "registry_pki_acme_domains": ["registry.example.com"],
            "registry_server_auth_mode": "token",
        },
    ),
    "server-backup": (
        "server",
        dict(BACKUP, registry_maintenance_backup_check_read_data_subset="5%"),
    ),
    "server-s3-backup-bucket-copy": (
        "server",
        dict(
            S3,
            **dict(BACKUP, registry_maintenance_backup_repository="s3:http://storage:8333/b"),
            registry_maintenance_backup_bucket_copy=dict(
                BUCKET_COPY, endpoint="http://storage:8333"
            ),
        ),
    ),
    "client": ("client", dict(CLIENT)),
    "web": ("web", {}),
}
# Hosts of the deployment besides the cases (the first server is the registry the
# fronts and clients use).
BASE = {
    "registry_servers": {"registry": {}},
    "registry_clients": {"client-a": dict(CLIENT)},
    "registry_web": {},
}


def alias(case):
    kind = next(entry[1] for entry in CASES if entry[0] == case)
    return "refused-%s-%s" % (kind, case)


@pytest.fixture(scope="module")
def preflight_run(tmp_path_factory):
    """The one playbook run of every case and of the accepted aliases."""
    inventory = {group: {"hosts": dict(hosts)} for group, hosts in BASE.items()}
    for name, (kind, variables) in ACCEPTED.items():
        inventory[GROUPS[kind]]["hosts"]["accepted-" + name] = dict(variables)
    for case, kind, variables, _message in CASES:
        inventory[GROUPS[kind]]["hosts"][alias(case)] = dict(variables)
    inventory["all"] = {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            # As the scenarios' inventories give them (extensions/molecule/config.yml).
            "registry_server_users": USERS,
        }
    }
    path = tmp_path_factory.mktemp("preflight") / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
    )
    result = subprocess.run(
        ["ansible-playbook", "-i", str(path), "--forks", "20", str(PLAYBOOK)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert result.stdout.lstrip().startswith("{"), result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


def failure_message(result, host):
    for play in result["plays"]:
        for task in play["tasks"]:
            answer = task["hosts"].get(host)
            if answer and answer.get("failed"):
                return answer.get("msg", "")
    return None


def test_each_case_has_a_name_of_its_own_and_expects_the_reason():
    """A case that matched only the variable's name would pass on any refusal of it."""
    assert len({entry[0] for entry in CASES}) == len(CASES)
    bare = [case for case, _kind, _variables, message in CASES if message.isidentifier()]
    assert bare == []


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_good_settings_pass_the_same_preflight(preflight_run, name):
    stats = preflight_run["stats"]["accepted-" + name]
    assert stats["failures"] == 0, failure_message(preflight_run, "accepted-" + name)
    assert stats["ok"] > 0


@pytest.mark.parametrize(("case", "kind", "variables", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_the_variable_named(
    preflight_run, case, kind, variables, message
):
    stats = preflight_run["stats"][alias(case)]
    assert stats["failures"] == 1, stats
    assert stats["changed"] == 0, stats
    failed = failure_message(preflight_run, alias(case))
    assert failed is not None
    assert message in failed, failed


def test_a_refused_endpoint_is_not_echoed(preflight_run):
    """An endpoint with credentials in it is refused without showing them."""
    failed = failure_message(preflight_run, alias("bucket-copy-endpoint-credentials"))
    assert failed, "the case was not refused"
    assert "k:s@" not in failed, failed
