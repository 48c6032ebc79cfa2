#!/usr/bin/python
# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_tls
short_description: Keep a private CA and certificates signed by it, or check provided ones
version_added: 0.1.0
description:
  - Creates a private certificate authority and a server (or client) key and certificate
    signed by it, or keeps the existing ones when they are still right.
  - The certificate is reissued only when needed - missing files, a key that does not match,
    a different set of subject alternative names or common name, expiry within
    O(renew_before_days), a different purpose, or a certificate the current CA did not sign.
  - The CA is replaced only when it is missing, its key does not match, or it expires within
    O(renew_before_days), and only where O(create_ca) allows it. Clients must then fetch the
    new CA again. A CA file or key that cannot be parsed (for example a key encrypted by the
    operator) fails the module; it is never overwritten.
  - With O(state=verify) nothing is written - operator-provided material is checked - the
    certificate file (the leaf, optionally followed by its intermediates) must chain to the
    CA file, be valid now, match the key and be fit for O(purpose); names it lacks are
    reported.
  - Private keys are written atomically with mode C(0600) whatever O(mode) says;
    certificates with O(mode) (default C(0644)).
author:
  - privreg.registry contributors (@privreg)
requirements:
  - cryptography >= 3.3 on the managed host
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details: Reports what would be created or reissued and why, without writing.
  diff_mode:
    support: full
    details: Shows subjects, names, expiry and fingerprints; never key material.
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) creates or keeps the CA and the certificate.
      - V(verify) only checks existing files and fails when they cannot work together.
    type: str
    choices: [present, verify]
    default: present
  purpose:
    description:
      - V(server) - a TLS server certificate (extended key usage serverAuth).
      - V(client) - a client certificate for mutual TLS (clientAuth), issued from the existing
        CA.
    type: str
    choices: [server, client]
    default: server
  create_ca:
    description:
      - Whether a missing or expiring CA may be created here.
      - Defaults to V(true) for O(purpose=server) and V(false) for O(purpose=client).
      - Set it to V(false) wherever the CA belongs to someone else - the module then issues
        from the existing CA only and fails when there is none.
    type: bool
  ca_cert_path:
    description:
      - Path of the CA certificate (PEM). With O(state=verify) it may hold several CAs;
        the certificate must chain to one of them.
      - Required with O(state=present). With O(state=verify) this, O(ca_cert_content) or
        neither - without a CA the chain is checked only within itself (each certificate
        signed by the next, every one valid now), for a certificate from a public CA that
        the clients' own trust stores hold.
    type: path
  ca_cert_content:
    description:
      - With O(state=verify) - the CA certificate(s) as PEM text instead of O(ca_cert_path),
        so that material is checked before it is written anywhere.
    type: str
  cert_content:
    description: With O(state=verify) - the certificate (and its intermediates) as PEM text instead of O(cert_path).
    type: str
  key_content:
    description: With O(state=verify) - the private key as PEM text instead of O(key_path). Never logged.
    type: str
  required_sans:
    description:
      - With O(state=verify) - names and addresses the certificate must cover; it is refused
        when one is missing (other O(subject_alt_names) only warn).
    type: list
    elements: str
    default: []
  ca_key_path:
    description:
      - Path of the CA private key (PEM, unencrypted). Required with O(state=present).
    type: path
  cert_path:
    description:
      - Path of the certificate (PEM). With O(state=verify) it may be followed by its
        intermediate CA certificates (a full chain).
      - Required with O(state=present); with O(state=verify) this or O(cert_content).
    type: path
  key_path:
    description:
      - Path of the private key (PEM, unencrypted).
      - Required with O(state=present); with O(state=verify) this or O(key_content).
    type: path
  common_name:
    description:
      - Common name of the certificate. Defaults to the first DNS name in
        O(subject_alt_names). Clients ignore it; the names that matter are the SANs.
    type: str
  subject_alt_names:
    description:
      - Every DNS name and IP address clients use to reach the server.
      - Bare values that parse as IP addresses become IP SANs, others DNS SANs;
        C(DNS:) and C(IP:) prefixes are accepted too.
      - With O(state=verify), names the certificate lacks are returned in RV(missing_sans).
    type: list
    elements: str
    default: []
  ca_name_constraints:
    description:
      - Name constraints of a CA this module creates - DNS domains (each also covers its
        subdomains) and IP networks (a bare address is a network of one) that the CA may
        vouch for. Clients refuse a certificate from it for any other name.
      - Empty - an unconstrained CA. An existing CA keeps what it has.
      - A certificate whose names lie outside the CA's constraints is refused before
        anything is written.
    type: list
    elements: str
    default: []
  ca_common_name:
    description: Common name of the CA certificate when one is created.
    type: str
    default: privreg registry CA
  valid_days:
    description: Lifetime of a newly issued certificate, in days.
    type: int
    default: 365
  ca_valid_days:
    description: Lifetime of a newly created CA certificate, in days.
    type: int
    default: 3650
  renew_before_days:
    description: Reissue a certificate (or replace the CA) that expires within this many days.
    type: int
    default: 30
  key_type:
    description: Type of newly generated private keys.
    type: str
    choices: [rsa, ecdsa]
    default: rsa
  key_size:
    description:
      - Bits for RSA keys (at least 2048), or the curve size for ECDSA keys (256, 384, 521).
      - Defaults to 2048 for RSA and 256 for ECDSA. Existing keys are kept even when
        this changes; remove the key file to roll it.
    type: int
  force:
    description: Reissue the certificate even when nothing requires it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Keep the registry's CA and server certificate
  privreg.registry.registry_tls:
    ca_cert_path: /opt/registry/certs/ca.crt
    ca_key_path: /opt/registry/security/ca.key
    cert_path: /opt/registry/certs/server.crt
    key_path: /opt/registry/certs/server.key
    subject_alt_names:
      - registry.example.com
      - registry
      - 10.0.0.5
  register: registry_cert

- name: A client certificate for mutual TLS, from the registry's CA (on the server)
  privreg.registry.registry_tls:
    purpose: client
    create_ca: false
    common_name: build01.example.com
    ca_cert_path: /opt/registry/certs/ca.crt
    ca_key_path: /opt/registry/security/ca.key
    cert_path: /opt/registry/security/clients/build01.example.com.crt
    key_path: /opt/registry/security/clients/build01.example.com.key
  delegate_to: registry.example.com

- name: Check certificates an operator provided (Let's Encrypt, corporate CA)
  privreg.registry.registry_tls:
    state: verify
    ca_cert_path: /opt/registry/certs/ca.crt
    cert_path: /opt/registry/certs/server.crt
    key_path: /opt/registry/certs/server.key
    subject_alt_names: [registry.example.com]

- name: Refuse a certificate before it is written (wrong key, other names)
  privreg.registry.registry_tls:
    state: verify
    ca_cert_content: "{{ lookup('ansible.builtin.file', 'root.pem') }}"
    cert_content: "{{ lookup('ansible.builtin.file', 'fullchain.pem') }}"
    key_content: "{{ lookup('ansible.builtin.file', 'registry.key') }}"
    required_sans: [registry.example.com]
"""

RETURN = r"""
ca_cert_path:
  description: Path of the CA certificate.
  returned: always
  type: str
cert_path:
  description: Path of the certificate.
  returned: always
  type: str
key_path:
  description: Path of the private key.
  returned: always
  type: str
subject_alt_names:
  description: SANs of the certificate (as it is, or would be after this run).
  returned: always
  type: list
  elements: str
  sample: ["DNS:registry.example.com", "IP:10.0.0.5"]
not_after:
  description: Expiry of the certificate, UTC.
  returned: always
  type: str
  sample: "2027-11-22T10:00:00Z"
fingerprint:
  description: SHA-256 fingerprint of the certificate. Empty in check mode when it would be reissued.
  returned: always
  type: str
ca_not_after:
  description: Expiry of the CA certificate, UTC.
  returned: always
  type: str
ca_fingerprint:
  description: SHA-256 fingerprint of the CA certificate. Empty in check mode when it would be created.
  returned: always
  type: str
ca_changed:
  description: Whether the CA was (or would be) created or replaced. Clients need the new CA then.
  returned: always
  type: bool
reasons:
  description:
    - Why the certificate was (or would be) issued, for example C(missing),
      C(sans_changed), C(expiring), C(key_mismatch), C(not_issued_by_ca), C(ca_renewed),
      C(usage_changed), or C(ca_missing) in check mode when the CA does not exist yet.
    - With O(state=verify), the problems found.
  returned: always
  type: list
  elements: str
missing_sans:
  description: Requested names the certificate does not cover (mostly useful with O(state=verify)).
  returned: always
  type: list
  elements: str
chain_length:
  description: Number of certificates in the certificate file (the leaf and its intermediates).
  returned: with O(state=verify)
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.privreg.registry.plugins.module_utils import tls
from ansible_collections.privreg.registry.plugins.module_utils.certificates import RegistryTLS
from ansible_collections.privreg.registry.plugins.module_utils.module_support import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "verify"], default="present"),
            purpose=dict(type="str", choices=["server", "client"], default="server"),
            create_ca=dict(type="bool"),
            ca_cert_path=dict(type="path"),
            ca_key_path=dict(type="path"),
            cert_path=dict(type="path"),
            key_path=dict(type="path", no_log=False),
            ca_cert_content=dict(type="str"),
            cert_content=dict(type="str"),
            key_content=dict(type="str", no_log=True),
            required_sans=dict(type="list", elements="str", default=[]),
            common_name=dict(type="str"),
            subject_alt_names=dict(type="list", elements="str", default=[]),
            ca_common_name=dict(type="str", default="privreg registry CA"),
            ca_name_constraints=dict(type="list", elements="str", default=[]),
            valid_days=dict(type="int", default=365),
            ca_valid_days=dict(type="int", default=3650),
            renew_before_days=dict(type="int", default=30),
            key_type=dict(type="str", choices=["rsa", "ecdsa"], default="rsa"),
            key_size=dict(type="int"),
            force=dict(type="bool", default=False),
        ),
        add_file_common_args=True,
        required_if=[
            ("state", "present", ["ca_key_path", "ca_cert_path", "cert_path", "key_path"])
        ],
        required_one_of=[
            ("cert_path", "cert_content"),
            ("key_path", "key_content"),
        ],
        mutually_exclusive=[
            ("ca_cert_path", "ca_cert_content"),
            ("cert_path", "cert_content"),
            ("key_path", "key_content"),
        ],
        supports_check_mode=True,
    )
    run_backend(module, tls.CRYPTOGRAPHY, RegistryTLS, tls.TLSMaterialError)


if __name__ == "__main__":
    main()
