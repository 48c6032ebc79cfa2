# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private CA and a server certificate for the registry, on top of `cryptography`.

Pure functions, no Ansible: the module decides what to write, these decide what is
wrong with what is on disk and build what should be there. They work with the
`cryptography` versions that Debian 12 (38) and Debian 13 (43) ship.
"""

from __future__ import annotations

import datetime
import ipaddress
import re

from ansible_collections.privreg.registry.plugins.module_utils.module_support import Dependency

CRYPTOGRAPHY = Dependency("cryptography", "Debian: python3-cryptography")
try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as exc:  # reported by the module (CRYPTOGRAPHY.require)
    CRYPTOGRAPHY.missing(exc)

# Why a certificate gets (re)issued; the module returns these so an operator can see it.
MISSING = "missing"
KEY_MISMATCH = "key_mismatch"
SANS_CHANGED = "sans_changed"
SUBJECT_CHANGED = "subject_changed"
EXPIRING = "expiring"
NOT_ISSUED_BY_CA = "not_issued_by_ca"
CA_RENEWED = "ca_renewed"
FORCED = "forced"
USAGE_CHANGED = "usage_changed"

# What a leaf certificate is for: the registry (server) or a client proving itself to it
# (mutual TLS).
USAGES = {"server": "SERVER_AUTH", "client": "CLIENT_AUTH"}


class TLSMaterialError(ValueError):
    """Input that cannot be turned into a certificate: the message says what to fix."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def normalize_sans(names):
    """Turn ['reg.example', '10.0.0.5', 'DNS:x', 'IP:::1'] into a sorted, unique list
    of 'DNS:name' / 'IP:address' strings. Bare values that parse as an IP are IPs."""
    result = set()
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        kind, separator, value = name.partition(":")
        if separator and kind.upper() in ("DNS", "IP") and value:
            kind = kind.upper()
        else:
            kind, value = None, name
        if kind in (None, "IP"):
            try:
                result.add("IP:" + str(ipaddress.ip_address(value)))
                continue
            except ValueError:
                if kind == "IP":
                    raise TLSMaterialError(
                        "subject_alt_names: %r is marked IP: but is not an IP address" % name
                    ) from None
        value = value.lower().rstrip(".")
        if not value or any(c.isspace() for c in value) or ":" in value or "/" in value:
            raise TLSMaterialError(
                "subject_alt_names: %r is neither a DNS name nor an IP address" % name
            )
        result.add("DNS:" + value)
    return sorted(result)


def _general_names(entries):
    """x509 names of normalized 'DNS:name' / 'IP:address' (SANs) or 'IP:network' (name
    constraints) strings."""
    names = []
    for entry in entries:
        kind, value = entry.split(":", 1)
        if kind == "IP":
            ip = ipaddress.ip_network(value) if "/" in value else ipaddress.ip_address(value)
            names.append(x509.IPAddress(ip))
        else:
            names.append(x509.DNSName(value))
    return names


def certificate_sans(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    sans = ["DNS:" + name.lower() for name in ext.get_values_for_type(x509.DNSName)]
    sans += ["IP:" + str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return sorted(set(sans))


def common_name(cert):
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


def not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def generate_private_key(key_type, key_size):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    if key_type == "ecdsa":
        curves = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}
        if key_size not in curves:
            raise TLSMaterialError("key_size for ecdsa keys must be 256, 384 or 521")
        return ec.generate_private_key(curves[key_size])
    raise TLSMaterialError("key_type must be rsa or ecdsa")


def key_to_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_to_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def load_private_key(data, what):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TLSMaterialError(
            "%s is not an unencrypted PEM private key: %s" % (what, exc)
        ) from exc


def load_certificate(data, what):
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise TLSMaterialError("%s is not a PEM certificate: %s" % (what, exc)) from exc


def load_certificates(data, what):
    """Every certificate in a PEM bundle (a leaf followed by its intermediates, or CAs)."""
    blocks = re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, flags=re.DOTALL
    )
    if not blocks:
        raise TLSMaterialError("%s holds no PEM certificate" % what)
    return [load_certificate(block, what) for block in blocks]


def not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    return value


def key_usage_problems(cert, usage="server"):
    """What keeps a leaf from serving its purpose: a CA flag, a key usage without
    digitalSignature, or an extended key usage without serverAuth (clientAuth)."""
    problems = []
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            problems.append("is a CA certificate, not a %s certificate" % usage)
    except x509.ExtensionNotFound:
        pass
    try:
        if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            problems.append("key usage lacks digitalSignature")
    except x509.ExtensionNotFound:
        pass
    try:
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        if usage not in extended_key_usage(cert):
            problems.append("extended key usage lacks %s" % USAGES[usage].replace("_", "").lower())
    except x509.ExtensionNotFound:
        pass
    return problems


def chain_problems(chain, roots, now):
    """Follow leaf -> intermediates -> one of the roots; say what breaks the chain. With
    no roots, the chain is checked within itself (a public CA's, which clients hold)."""
    problems = []
    for cert in chain:
        if not_before(cert) > now:
            problems.append("%s is not valid before %s" % (common_name(cert), not_before(cert)))
        if not_after(cert) <= now:
            problems.append("%s expired on %s" % (common_name(cert), not_after(cert)))
    for child, parent in zip(chain, chain[1:]):
        if not issued_by(child, parent):
            problems.append(
                "%s is not signed by the next certificate in the file (%s)"
                % (common_name(child), common_name(parent))
            )
    if roots and not any(issued_by(chain[-1], root) for root in roots):
        problems.append(
            "%s is not signed by the CA given (%s)"
            % (common_name(chain[-1]), ", ".join(str(common_name(r)) for r in roots))
        )
    return problems


def _public_der(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches(key, cert):
    return _public_der(key.public_key()) == _public_der(cert.public_key())


def issued_by(cert, ca_cert):
    """True when ca_cert's key signed cert (cryptography 38 has no verify_directly_issued_by)."""
    if cert.issuer != ca_cert.subject:
        return False
    public_key = ca_cert.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                padding.PKCS1v15(),
                cert.signature_hash_algorithm,
            )
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                ec.ECDSA(cert.signature_hash_algorithm),
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _builder(subject, issuer, public_key, days, now):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A little slack for clocks that run behind the issuer's.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def normalize_constraints(values):
    """Turn ['example.com', '10.0.0.0/8', 'DNS:x', 'IP:10.1.2.3'] into sorted 'DNS:name' /
    'IP:network' strings; a bare address becomes a one-address network."""
    result = set()
    for raw in values:
        value = str(raw).strip()
        kind, separator, rest = value.partition(":")
        if separator and kind.upper() in ("DNS", "IP") and rest:
            value = rest
        try:
            result.add("IP:" + str(ipaddress.ip_network(value, strict=False)))
            continue
        except ValueError:
            pass
        name = value.lower().rstrip(".").lstrip(".")
        if not name or any(c.isspace() for c in name) or "/" in name or ":" in name or "*" in name:
            raise TLSMaterialError(
                "ca_name_constraints: %r is neither a DNS domain nor an IP network" % raw
            )
        result.add("DNS:" + name)
    return sorted(result)


def ca_constraints(ca_cert):
    """The CA's permitted subtrees as 'DNS:name' / 'IP:network' strings; None: unconstrained."""
    try:
        ext = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    permitted = []
    for subtree in ext.permitted_subtrees or []:
        if isinstance(subtree, x509.DNSName):
            permitted.append("DNS:" + subtree.value.lower())
        elif isinstance(subtree, x509.IPAddress):
            permitted.append("IP:" + str(subtree.value))
    return sorted(permitted)


def names_outside(sans, constraints):
    """The SANs a CA with these permitted subtrees may not vouch for (RFC 5280 matching, as
    Go, OpenSSL and browsers apply it: a domain covers itself and its subdomains)."""
    if constraints is None:
        return []
    domains = [c[4:] for c in constraints if c.startswith("DNS:")]
    networks = [ipaddress.ip_network(c[3:]) for c in constraints if c.startswith("IP:")]
    outside = []
    for san in sans:
        kind, value = san.split(":", 1)
        if kind == "IP":
            address = ipaddress.ip_address(value)
            ok = not networks or any(address in n for n in networks if n.version == address.version)
        else:
            name = value[2:] if value.startswith("*.") else value
            ok = not domains or any(name == d or name.endswith("." + d) for d in domains)
        if not ok:
            outside.append(san)
    return outside


def build_ca(key, cn, days, now=None, permitted=None):
    """A CA certificate; with `permitted` ('DNS:' and 'IP:' subtrees) it may only vouch for
    names inside them, so a stolen CA key cannot impersonate other sites."""
    now = now or utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = _builder(name, name, key.public_key(), days, now)
    if permitted:
        builder = builder.add_extension(
            x509.NameConstraints(
                permitted_subtrees=_general_names(permitted), excluded_subtrees=None
            ),
            critical=True,
        )
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def extended_key_usage(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return set()
    return {name for name, oid in USAGES.items() if getattr(ExtendedKeyUsageOID, oid) in ext}


def build_leaf_certificate(ca_key, ca_cert, key, cn, sans, days, now=None, usage="server"):
    """A server (serverAuth) or client (clientAuth) certificate signed by the CA."""
    if not sans and usage == "server":
        raise TLSMaterialError("subject_alt_names: at least one name or address is needed")
    now = now or utcnow()
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    builder = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
            ca_cert.subject,
            key.public_key(),
            days,
            now,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=rsa_key,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([getattr(ExtendedKeyUsageOID, USAGES[usage])]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        # Go ignores the CN: every name clients use must be a SAN.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names(sans)), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def ca_problems(ca_cert, ca_key, renew_before_days, now=None):
    """Reasons to replace the CA (an empty list means keep it)."""
    now = now or utcnow()
    if ca_cert is None or ca_key is None:
        return [MISSING]
    problems = []
    if not key_matches(ca_key, ca_cert):
        problems.append(KEY_MISMATCH)
    if not_after(ca_cert) - now < datetime.timedelta(days=renew_before_days):
        problems.append(EXPIRING)
    return problems


def leaf_problems(cert, key, ca_cert, sans, cn, renew_before_days, now=None, usage="server"):
    """Reasons to reissue the leaf certificate (an empty list means keep it)."""
    now = now or utcnow()
    if cert is None or key is None:
        return [MISSING]
    problems = []
    if not key_matches(key, cert):
        problems.append(KEY_MISMATCH)
    if certificate_sans(cert) != list(sans):
        problems.append(SANS_CHANGED)
    if common_name(cert) != cn:
        problems.append(SUBJECT_CHANGED)
    if not_after(cert) - now < datetime.timedelta(days=renew_before_days):
        problems.append(EXPIRING)
    if ca_cert is None or not issued_by(cert, ca_cert):
        problems.append(NOT_ISSUED_BY_CA)
    if usage not in extended_key_usage(cert):
        problems.append(USAGE_CHANGED)
    return problems


def describe(cert):
    """A secret-free summary of a certificate, for diff output and return values."""
    if cert is None:
        return None
    return {
        "subject": common_name(cert),
        "subject_alt_names": certificate_sans(cert),
        "not_after": not_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint": fingerprint(cert),
    }
