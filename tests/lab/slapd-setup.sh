#!/bin/sh
# A directory for the token service's LDAP sign-in tests (Dockerfile.slapd): OpenLDAP with
# the suffix dc=privreg,dc=test, LDAPS on 636 and StartTLS on 389 with a certificate from a
# CA made here (served as /srv/ldap-ca.crt for the tests to trust), a service account that
# may search, people and groups (groupOfNames). Passwords are the test's own. frank is
# disabled the way OpenLDAP disables an account (ppolicy: locked for good); grace is an
# admin only through a nested group (registry-ops, a member of registry-admins).
set -eu

SUFFIX=dc=privreg,dc=test
TLS=/etc/ldap/tls
mkdir -p "$TLS"

# The CA and the server's certificate, for the names the tests use.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj '/CN=privreg test directory CA' -keyout "$TLS/ca.key" -out "$TLS/ca.crt" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=ldap' \
  -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
printf '%s\n' 'subjectAltName=DNS:ldap,DNS:ldap.privreg.test,DNS:localhost,IP:127.0.0.1' 'extendedKeyUsage=serverAuth' \
  'keyUsage=critical,digitalSignature' 'authorityKeyIdentifier=keyid' >"$TLS/ext"
openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
  -CAcreateserial -days 3650 -extfile "$TLS/ext" -out "$TLS/server.crt" 2>/dev/null
rm -f "$TLS/ca.key" "$TLS/server.csr" "$TLS/ext"
chown openldap:openldap "$TLS/server.key"
chmod 0600 "$TLS/server.key"
cp "$TLS/ca.crt" /srv/ldap-ca.crt

slapd -h ldapi:/// -u openldap -g openldap
for _ in $(seq 50); do ldapsearch -Q -Y EXTERNAL -H ldapi:/// -b cn=config -s base >/dev/null 2>&1 && break; sleep 0.2; done

ldapmodify -Q -Y EXTERNAL -H ldapi:/// <<LDIF
dn: cn=config
changetype: modify
replace: olcTLSCACertificateFile
olcTLSCACertificateFile: $TLS/ca.crt
-
replace: olcTLSCertificateFile
olcTLSCertificateFile: $TLS/server.crt
-
replace: olcTLSCertificateKeyFile
olcTLSCertificateKeyFile: $TLS/server.key

dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcAccess
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break
olcAccess: {1}to attrs=userPassword by anonymous auth by * none
olcAccess: {2}to * by dn.exact="cn=registry-search,$SUFFIX" read by * none

dn: cn=module{0},cn=config
changetype: modify
add: olcModuleLoad
olcModuleLoad: ppolicy

dn: olcOverlay=ppolicy,olcDatabase={1}mdb,cn=config
changetype: add
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: ppolicy
olcPPolicyDefault: cn=default,ou=policies,$SUFFIX
LDIF

hash() { slappasswd -h '{SSHA}' -s "$1"; }
# person UID PASSWORD: a person's entry under ou=people.
person() {
  printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: Directory\nuserPassword: %s\n' \
    "$1" "$SUFFIX" "$1" "$1" "$(hash "$2")"
}
ldapadd -Q -Y EXTERNAL -H ldapi:/// <<LDIF
dn: cn=registry-search,$SUFFIX
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: registry-search
userPassword: $(hash 'search pw: ldap $ecret')

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

$(person dave dave-ldap-pw)

$(person erin erin-ldap-pw)

$(person alice alice-ldap-pw)

$(person frank frank-ldap-pw)
pwdAccountLockedTime: 000001010000Z

$(person grace grace-ldap-pw)

dn: ou=policies,$SUFFIX
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,$SUFFIX
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
# Without it ppolicy ignores pwdAccountLockedTime; no pwdMaxFailure: failures lock nobody.
pwdLockout: TRUE

dn: cn=registry-ops,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: registry-ops
member: uid=grace,ou=people,$SUFFIX

dn: cn=registry-admins,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: registry-admins
member: uid=dave,ou=people,$SUFFIX
member: cn=registry-ops,ou=groups,$SUFFIX

dn: cn=registry-readers,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: registry-readers
member: uid=erin,ou=people,$SUFFIX
member: uid=frank,ou=people,$SUFFIX
LDIF

kill "$(cat /run/slapd/slapd.pid)"
for _ in $(seq 50); do [ -e /run/slapd/slapd.pid ] || break; sleep 0.2; done
sed -i 's#^SLAPD_SERVICES=.*#SLAPD_SERVICES="ldap:/// ldaps:/// ldapi:///"#' /etc/default/slapd
