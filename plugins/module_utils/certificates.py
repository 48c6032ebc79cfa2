# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the registry_tls module does: compare what is on disk with what is wanted,
then create, keep or verify. The module file only declares the interface."""

from __future__ import annotations

from ansible_collections.privreg.registry.plugins.module_utils import tls
from ansible_collections.privreg.registry.plugins.module_utils.fileio import (
    atomic_write,
    ensure_attributes,
    read_bytes,
)

KEY_MODE = "0600"
CERT_MODE = "0644"
DEFAULT_KEY_SIZES = {"rsa": 2048, "ecdsa": 256}


def _summary_text(label, cert):
    info = tls.describe(cert)
    if info is None:
        return "%s: absent\n" % label
    return (
        "{label}:\n  subject: {subject}\n  subject_alt_names: {sans}\n"
        "  not_after: {not_after}\n  fingerprint: {fingerprint}\n"
    ).format(label=label, sans=", ".join(info["subject_alt_names"]), **info)


class RegistryCertificates:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.now = tls.utcnow()
        self.sans = tls.normalize_sans(self.params["subject_alt_names"])
        self.key_size = self.params["key_size"] or DEFAULT_KEY_SIZES[self.params["key_type"]]
        if self.params["key_type"] == "rsa" and self.key_size < 2048:
            raise tls.TLSMaterialError("key_size: RSA keys need at least 2048 bits")

    # -- reading -----------------------------------------------------------------------
    def _load(self, path, loader, what):
        data = read_bytes(path) if path else None
        if data is None:
            return None, None
        try:
            return loader(data, "%s (%s)" % (what, path)), data
        except tls.TLSMaterialError:
            if self.params["state"] == "verify":
                raise
            # Unreadable material is replaced like missing material, and said so.
            self.module.warn("%s at %s could not be parsed; it will be replaced" % (what, path))
            return None, None

    def _common_name(self):
        if self.params["common_name"]:
            return self.params["common_name"]
        if self.params["purpose"] == "client" and not self.params["subject_alt_names"]:
            raise tls.TLSMaterialError("purpose=client needs common_name (the client's name)")
        # The first name as the operator listed it, not as sorted: adding a name later
        # must not change the subject.
        in_given_order = [tls.normalize_sans([name]) for name in self.params["subject_alt_names"]]
        in_given_order = [names[0] for names in in_given_order if names]
        for san in in_given_order:
            if san.startswith("DNS:"):
                return san[4:]
        if in_given_order:
            return in_given_order[0].split(":", 1)[1]
        raise tls.TLSMaterialError("subject_alt_names: give at least one name or address")

    # -- entry point -------------------------------------------------------------------
    def run(self):
        if self.params["state"] == "verify":
            return self.verify()
        return self.ensure()

    def verify(self):
        p = self.params
        ca_cert, _ = self._load(p["ca_cert_path"], tls.load_certificate, "CA certificate")
        cert, _ = self._load(p["cert_path"], tls.load_certificate, "server certificate")
        key, _ = self._load(p["key_path"], tls.load_private_key, "server private key")
        missing = [
            name
            for name, value in (
                ("ca_cert_path", ca_cert),
                ("cert_path", cert),
                ("key_path", key),
            )
            if value is None
        ]
        if missing:
            raise tls.TLSMaterialError(
                "state=verify: no file at %s; provide the certificate, key and CA first"
                % ", ".join("%s=%s" % (name, p[name]) for name in missing)
            )
        problems = []
        if not tls.key_matches(key, cert):
            problems.append(tls.KEY_MISMATCH)
        if not tls.issued_by(cert, ca_cert) and cert.issuer != cert.subject:
            problems.append(tls.NOT_ISSUED_BY_CA)
        if tls.not_after(cert) <= self.now:
            problems.append("expired")
        covered = set(tls.certificate_sans(cert))
        missing_sans = [san for san in self.sans if san not in covered]
        result = self._result(ca_cert, cert, False, problems, missing_sans)
        if problems:
            self.module.fail_json(
                msg="The provided TLS material cannot serve the registry: %s. Check the "
                "certificate, key and CA you gave (cert_path=%s)."
                % (", ".join(problems), p["cert_path"]),
                **result,
            )
        if missing_sans:
            self.module.warn(
                "The provided certificate does not cover %s; clients using those names "
                "will get certificate errors." % ", ".join(missing_sans)
            )
        return result

    def ensure(self):
        p = self.params
        check = self.module.check_mode
        cn = self._common_name()

        ca_cert, ca_cert_pem = self._load(p["ca_cert_path"], tls.load_certificate, "CA certificate")
        ca_key, _ = self._load(p["ca_key_path"], tls.load_private_key, "CA private key")
        cert, _ = self._load(p["cert_path"], tls.load_certificate, "server certificate")
        key, _ = self._load(p["key_path"], tls.load_private_key, "server private key")
        before_ca, before_cert = ca_cert, cert

        ca_reasons = tls.ca_problems(ca_cert, ca_key, p["renew_before_days"], self.now)
        usage = p["purpose"]
        if usage == "client" and ca_reasons:
            # Client certificates come from the registry's CA; never a new one.
            raise tls.TLSMaterialError(
                "purpose=client needs the registry's CA at ca_cert_path=%s and ca_key_path=%s "
                "(%s); deploy the registry server first"
                % (p["ca_cert_path"], p["ca_key_path"], ", ".join(ca_reasons))
            )
        reasons = tls.server_problems(
            cert, key, ca_cert, self.sans, cn, p["renew_before_days"], self.now, usage
        )
        if ca_reasons:
            reasons = sorted(set(reasons) | {tls.CA_RENEWED})
        if p["force"] and not reasons:
            reasons = [tls.FORCED]

        if not check:
            if ca_reasons:
                if ca_key is None or tls.KEY_MISMATCH in ca_reasons:
                    ca_key = tls.generate_private_key(p["key_type"], self.key_size)
                    atomic_write(p["ca_key_path"], tls.key_to_pem(ca_key), int(KEY_MODE, 8))
                ca_cert = tls.build_ca(ca_key, p["ca_common_name"], p["ca_valid_days"], self.now)
                ca_cert_pem = tls.cert_to_pem(ca_cert)
                atomic_write(p["ca_cert_path"], ca_cert_pem, int(CERT_MODE, 8))
            if reasons:
                # A key that is present and readable is kept: reissuing does not roll it.
                if key is None:
                    key = tls.generate_private_key(p["key_type"], self.key_size)
                    atomic_write(p["key_path"], tls.key_to_pem(key), int(KEY_MODE, 8))
                cert = tls.build_server_certificate(
                    ca_key, ca_cert, key, cn, self.sans, p["valid_days"], self.now, usage
                )
                atomic_write(p["cert_path"], tls.cert_to_pem(cert), int(CERT_MODE, 8))

        changed = bool(ca_reasons or reasons)
        for path, mode in (
            (p["ca_key_path"], KEY_MODE),
            (p["key_path"], KEY_MODE),
            (p["ca_cert_path"], CERT_MODE),
            (p["cert_path"], CERT_MODE),
        ):
            if read_bytes(path) is not None:
                changed = ensure_attributes(
                    self.module, path, mode, p["owner"], p["group"], changed
                )

        result = self._result(
            ca_cert if not (check and ca_reasons) else None,
            cert if not (check and reasons) else None,
            changed,
            reasons,
            [],
        )
        result["ca_changed"] = bool(ca_reasons)
        if check and reasons:
            result["subject_alt_names"] = self.sans
        if self.module._diff:
            result["diff"] = {
                "before": _summary_text("ca", before_ca) + _summary_text("server", before_cert),
                "after": self._after_text(check, ca_reasons, reasons, ca_cert, cert, cn),
            }
        return result

    def _after_text(self, check, ca_reasons, reasons, ca_cert, cert, cn):
        if not check:
            return _summary_text("ca", ca_cert) + _summary_text("server", cert)
        ca_text = (
            "ca: (new CA would be created: %s)\n" % ", ".join(ca_reasons)
            if ca_reasons
            else _summary_text("ca", ca_cert)
        )
        if not reasons:
            return ca_text + _summary_text("server", cert)
        return ca_text + (
            "server:\n  subject: %s\n  subject_alt_names: %s\n  (would be reissued: %s)\n"
            % (cn, ", ".join(self.sans), ", ".join(reasons))
        )

    def _result(self, ca_cert, cert, changed, reasons, missing_sans):
        p = self.params
        ca_info = tls.describe(ca_cert) or {}
        info = tls.describe(cert) or {}
        return {
            "changed": changed,
            "ca_cert_path": p["ca_cert_path"],
            "cert_path": p["cert_path"],
            "key_path": p["key_path"],
            "subject_alt_names": info.get("subject_alt_names", []),
            "not_after": info.get("not_after", ""),
            "fingerprint": info.get("fingerprint", ""),
            "ca_not_after": ca_info.get("not_after", ""),
            "ca_fingerprint": ca_info.get("fingerprint", ""),
            "ca_changed": False,
            "reasons": list(reasons),
            "missing_sans": missing_sans,
        }
