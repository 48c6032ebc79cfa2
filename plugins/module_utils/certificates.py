# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the registry_tls module does: compare what is on disk with what is wanted,
then create, keep or verify. The module file only declares the interface."""

from __future__ import annotations

from ansible_collections.privreg.registry.plugins.module_utils import tls
from ansible_collections.privreg.registry.plugins.module_utils.fileio import (
    atomic_write,
    ensure_attributes,
    file_mode,
    read_bytes,
)

KEY_MODE = 0o600
DEFAULT_CERT_MODE = "0644"
DEFAULT_KEY_SIZES = {"rsa": 2048, "ecdsa": 256}
CA_MISSING = "ca_missing"


def _summary_text(label, cert):
    info = tls.describe(cert)
    if info is None:
        return "%s: absent\n" % label
    return (
        "{label}:\n  subject: {subject}\n  subject_alt_names: {sans}\n"
        "  not_after: {not_after}\n  fingerprint: {fingerprint}\n"
    ).format(label=label, sans=", ".join(info["subject_alt_names"]), **info)


class Material:
    """The four files as they are on disk, parsed."""

    def __init__(self, ca_cert=None, ca_key=None, cert=None, key=None):
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.cert = cert
        self.key = key


class RegistryTLS:
    """A private CA and a leaf certificate signed by it, kept on disk."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.now = tls.utcnow()
        self.sans = tls.normalize_sans(self.params["subject_alt_names"])
        self.ca_constraints = tls.normalize_constraints(self.params["ca_name_constraints"] or [])
        self.key_size = self.params["key_size"] or DEFAULT_KEY_SIZES[self.params["key_type"]]
        if self.params["key_type"] == "rsa" and self.key_size < 2048:
            raise tls.TLSMaterialError("key_size: RSA keys need at least 2048 bits")
        create_ca = self.params["create_ca"]
        # Client certificates come from the registry's CA, never a new one.
        self.create_ca = self.params["purpose"] == "server" if create_ca is None else create_ca
        if self.create_ca and self.params["purpose"] == "client":
            raise tls.TLSMaterialError(
                "create_ca=true with purpose=client: client certificates come from the "
                "registry's existing CA; drop create_ca"
            )

    # -- reading -----------------------------------------------------------------------
    def _load(self, path, loader, what, replaceable):
        """The parsed file, or None when it is missing. A file that cannot be parsed is
        replaced like a missing one when `replaceable` (a leaf can be reissued); anything
        else fails, so nothing the operator made is overwritten."""
        data = read_bytes(path) if path else None
        if data is None:
            return None
        try:
            return loader(data, "%s (%s)" % (what, path))
        except tls.TLSMaterialError as exc:
            if not replaceable:
                raise tls.TLSMaterialError(
                    "%s. Nothing was changed: this module does not overwrite it. Restore "
                    "the file, or move it away to have a new one made (clients must then "
                    "trust the new CA)" % exc
                ) from exc
            self.module.warn("%s at %s could not be parsed; it will be replaced" % (what, path))
            return None

    def _read(self):
        p = self.params
        return Material(
            ca_cert=self._load(p["ca_cert_path"], tls.load_certificate, "CA certificate", False),
            ca_key=self._load(p["ca_key_path"], tls.load_private_key, "CA private key", False),
            cert=self._load(p["cert_path"], tls.load_certificate, "certificate", True),
            key=self._load(p["key_path"], tls.load_private_key, "private key", True),
        )

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
        return self.present()

    # -- state=verify --------------------------------------------------------------------
    def verify(self):
        """Check operator-provided material: a leaf (with its intermediates) that chains to
        the CA (when one is given; else only within itself), fits its key, is valid now,
        is fit to serve TLS and covers the names that must be on it. The material comes
        from files or, before it is written anywhere, from the *_content options."""
        p = self.params
        given_ca = p["ca_cert_path"] or p["ca_cert_content"]
        roots = self._load_bundle("ca_cert", "CA certificate") if given_ca else []
        chain = self._load_bundle("cert", "certificate")
        key_data = self._material("key")
        if key_data is None:
            raise tls.TLSMaterialError(
                "state=verify: no file at key_path=%s; provide the key first" % p["key_path"]
            )
        key = tls.load_private_key(key_data, "private key (%s)" % self._source("key"))
        leaf = chain[0]
        problems = []
        if not tls.key_matches(key, leaf):
            problems.append("the private key is not the certificate's (%s)" % tls.KEY_MISMATCH)
        problems += tls.chain_problems(chain, roots, self.now)
        problems += tls.key_usage_problems(leaf, p["purpose"])
        covered = set(tls.certificate_sans(leaf))
        missing_sans = [san for san in self.sans if san not in covered]
        required = tls.normalize_sans(p["required_sans"])
        missing_required = [san for san in required if san not in covered]
        if missing_required:
            problems.append(
                "the certificate is not for %s (it covers %s)"
                % (", ".join(missing_required), ", ".join(sorted(covered)) or "no names")
            )
        result = self._result(roots[0] if roots else None, leaf, False, problems, missing_sans)
        result["chain_length"] = len(chain)
        if problems:
            self.module.fail_json(
                msg="The provided TLS material cannot serve the registry: %s. Check the "
                "certificate, key and CA you gave (%s)."
                % ("; ".join(problems), self._source("cert")),
                **result,
            )
        if missing_sans:
            self.module.warn(
                "The provided certificate does not cover %s; clients using those names "
                "will get certificate errors." % ", ".join(missing_sans)
            )
        return result

    def _material(self, name):
        """The bytes of ca_cert, cert or key: the *_content option, else the file (None
        when it is missing)."""
        content = self.params.get(name + "_content")
        if content:
            return content.encode("utf-8")
        return read_bytes(self.params[name + "_path"])

    def _source(self, name):
        if self.params.get(name + "_content"):
            return "%s_content" % name
        return "%s_path=%s" % (name, self.params[name + "_path"])

    def _load_bundle(self, name, what):
        data = self._material(name)
        if data is None:
            raise tls.TLSMaterialError(
                "state=verify: no %s at %s; provide the certificate, key and CA first"
                % (what, self.params[name + "_path"])
            )
        return tls.load_certificates(data, "%s (%s)" % (what, self._source(name)))

    # -- state=present -------------------------------------------------------------------
    def present(self):
        before = self._read()
        cn = self._common_name()
        ca_reasons, reasons = self._plan(before, cn)
        check = self.module.check_mode
        after = before if check else self._write(before, cn, ca_reasons, reasons)
        changed = self._ensure_attributes(bool(ca_reasons or reasons))
        result = self._result(
            None if check and ca_reasons else after.ca_cert,
            None if check and reasons else after.cert,
            changed,
            reasons,
            [],
        )
        result["ca_changed"] = bool(ca_reasons) and CA_MISSING not in ca_reasons
        if check and reasons:
            result["subject_alt_names"] = self.sans
        if self.module._diff:
            result["diff"] = {
                "before": _summary_text("ca", before.ca_cert)
                + _summary_text(self.params["purpose"], before.cert),
                "after": self._after_text(check, ca_reasons, reasons, after, cn),
            }
        return result

    def _plan(self, material, cn):
        """(reasons to make the CA, reasons to issue the leaf); empty lists keep them."""
        p = self.params
        ca_reasons = tls.ca_problems(
            material.ca_cert, material.ca_key, p["renew_before_days"], self.now
        )
        if ca_reasons and not self.create_ca:
            if tls.MISSING in ca_reasons and self.module.check_mode:
                # A run of the whole deployment creates the CA before anyone asks it.
                self.module.warn(
                    "The CA at %s does not exist yet; a real run needs the registry server "
                    "deployed first." % p["ca_cert_path"]
                )
                return [CA_MISSING], [CA_MISSING]
            raise tls.TLSMaterialError(
                "A %s certificate needs the registry's CA at ca_cert_path=%s and "
                "ca_key_path=%s (%s), and this module does not create one here (create_ca "
                "is false). Deploy the registry server (with its own CA) first; a registry "
                "with provided or no TLS has no CA key to issue from"
                % (p["purpose"], p["ca_cert_path"], p["ca_key_path"], ", ".join(ca_reasons))
            )
        # A CA that may only vouch for some names: a leaf for others would be refused by
        # every client, so it is refused here, before anything is written.
        constraints = self.ca_constraints if ca_reasons else tls.ca_constraints(material.ca_cert)
        outside = tls.names_outside(self.sans, constraints)
        if outside:
            raise tls.TLSMaterialError(
                "The registry's CA may only vouch for %s (its name constraints), so a "
                "certificate for %s would be refused by every client. Use names inside "
                "those, or rotate the CA with a wider registry_server_tls_ca_name_constraints "
                "(see the README's security section)" % (", ".join(constraints), ", ".join(outside))
            )
        reasons = tls.leaf_problems(
            material.cert,
            material.key,
            material.ca_cert,
            self.sans,
            cn,
            p["renew_before_days"],
            self.now,
            p["purpose"],
        )
        if ca_reasons:
            reasons = sorted(set(reasons) | {tls.CA_RENEWED})
        if p["force"] and not reasons:
            reasons = [tls.FORCED]
        return ca_reasons, reasons

    def _write(self, material, cn, ca_reasons, reasons):
        p = self.params
        ca_cert, ca_key, cert, key = material.ca_cert, material.ca_key, material.cert, material.key
        cert_mode = file_mode(p["mode"], int(DEFAULT_CERT_MODE, 8))
        if ca_reasons:
            if ca_key is None or tls.KEY_MISMATCH in ca_reasons:
                ca_key = tls.generate_private_key(p["key_type"], self.key_size)
                atomic_write(p["ca_key_path"], tls.key_to_pem(ca_key), KEY_MODE)
            ca_cert = tls.build_ca(
                ca_key, p["ca_common_name"], p["ca_valid_days"], self.now, self.ca_constraints
            )
            atomic_write(p["ca_cert_path"], tls.cert_to_pem(ca_cert), cert_mode)
        if reasons:
            # A key that is present and readable is kept: reissuing does not roll it.
            if key is None:
                key = tls.generate_private_key(p["key_type"], self.key_size)
                atomic_write(p["key_path"], tls.key_to_pem(key), KEY_MODE)
            cert = tls.build_leaf_certificate(
                ca_key, ca_cert, key, cn, self.sans, p["valid_days"], self.now, p["purpose"]
            )
            atomic_write(p["cert_path"], tls.cert_to_pem(cert), cert_mode)
        return Material(ca_cert, ca_key, cert, key)

    def _ensure_attributes(self, changed):
        """Owner, group and mode of the files that exist (keys stay 0600 whatever mode says)."""
        p = self.params
        paths = [(p["key_path"], "0600"), (p["cert_path"], p["mode"] or DEFAULT_CERT_MODE)]
        if self.create_ca:
            paths += [
                (p["ca_key_path"], "0600"),
                (p["ca_cert_path"], p["mode"] or DEFAULT_CERT_MODE),
            ]
        for path, mode in paths:
            if read_bytes(path) is not None:
                changed = ensure_attributes(self.module, path, mode, changed)
        return changed

    def _after_text(self, check, ca_reasons, reasons, after, cn):
        if not check:
            return _summary_text("ca", after.ca_cert) + _summary_text(
                self.params["purpose"], after.cert
            )
        if CA_MISSING in ca_reasons:
            ca_text = "ca: absent (the registry server creates it)\n"
        elif ca_reasons:
            ca_text = "ca: (new CA would be created: %s)\n" % ", ".join(ca_reasons)
        else:
            ca_text = _summary_text("ca", after.ca_cert)
        if not reasons:
            return ca_text + _summary_text(self.params["purpose"], after.cert)
        return ca_text + (
            "%s:\n  subject: %s\n  subject_alt_names: %s\n  (would be issued: %s)\n"
            % (self.params["purpose"], cn, ", ".join(self.sans), ", ".join(reasons))
        )

    def _result(self, ca_cert, cert, changed, reasons, missing_sans):
        p = self.params
        ca_info = tls.describe(ca_cert) or {}
        info = tls.describe(cert) or {}
        return {
            "changed": changed,
            "ca_cert_path": p["ca_cert_path"] or "",
            "cert_path": p["cert_path"] or "",
            "key_path": p["key_path"] or "",
            "subject_alt_names": info.get("subject_alt_names", []),
            "not_after": info.get("not_after", ""),
            "fingerprint": info.get("fingerprint", ""),
            "ca_not_after": ca_info.get("not_after", ""),
            "ca_fingerprint": ca_info.get("fingerprint", ""),
            "ca_changed": False,
            "reasons": list(reasons),
            "missing_sans": missing_sans,
        }
