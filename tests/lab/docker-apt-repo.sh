#!/bin/sh
# An apt repository laid out as Docker's (download.docker.com/linux/debian), for the
# docker_engine role's upstream path without the internet: the signing key at
# linux/debian/gpg, suites bookworm and trixie with the component stable, signed InRelease
# and Release.gpg. Run once at image build (Dockerfile.docker-apt-repo).
#
# The packages are Debian's, repackaged under Docker's names, as Docker's replace Debian's
# (Conflicts, Replaces and Provides the Debian name; Debian's docker.io conflicts with
# docker-ce, so packages that only depend on Debian's cannot be installed): docker-ce is the
# suite's docker.io, containerd.io its containerd, docker-ce-cli Debian 13's docker-cli (on
# Debian 12, docker.io holds the client: there docker-ce-cli only depends on docker-ce), and
# docker-compose-plugin is Debian 13's compose v2 in both suites (Debian 12 has no compose
# v2; its binary needs glibc 2.34, Debian 12 has 2.36). Their other dependencies (runc,
# iptables, ...) come from Debian's archive, as with Docker's repository.
#
# A second key, which signs nothing, is served as stranger.asc: the negative control that
# apt refuses the repository under a key other than its own.
set -eu

SERVE=/srv/docker-apt
ROOT=$SERVE/linux/debian
WORK=$(mktemp -d)
export GNUPGHOME="$WORK/gnupg"
mkdir -m 0700 "$GNUPGHOME"
mkdir -p "$ROOT"

new_key() {
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "$1" rsa3072 sign never
}
new_key 'privreg test Docker repository <docker-apt@privreg.test>'
new_key 'privreg test stranger <stranger@privreg.test>'
gpg --armor --export docker-apt@privreg.test >"$ROOT/gpg"
gpg --armor --export stranger@privreg.test >"$SERVE/stranger.asc"

# Debian's packages of both releases (the builder runs on Debian 13 with 12 added).
echo 'deb http://deb.debian.org/debian bookworm main' >/etc/apt/sources.list.d/bookworm.list
apt-get update -qq
mkdir -p "$WORK/bookworm" "$WORK/trixie"
(cd "$WORK/bookworm" && apt-get download -qq docker.io/bookworm containerd/bookworm)
(cd "$WORK/trixie" && apt-get download -qq docker.io/trixie docker-cli/trixie \
  containerd/trixie docker-compose/trixie)
rm /etc/apt/sources.list.d/bookworm.list

# repackage DEB NEW_NAME OUT_DIR [DEBIAN_NAME=DOCKER_NAME ...]: DEB under NEW_NAME, with
# the renamed packages renamed in its relations too.
repackage() {
  python3 - "$@" <<'PY'
import os, re, subprocess, sys, tempfile

deb, new, out_dir = sys.argv[1:4]
renames = dict(pair.split("=", 1) for pair in sys.argv[4:])
docker_names = set(renames.values()) | {"docker-ce-rootless-extras", new}
tree = tempfile.mkdtemp()
subprocess.run(["dpkg-deb", "-R", deb, tree], check=True)
control_path = os.path.join(tree, "DEBIAN", "control")
fields = []
for line in open(control_path, encoding="utf-8").read().splitlines():
    if line.startswith((" ", "\t")):
        fields[-1][1] += "\n" + line
    else:
        name, value = line.split(":", 1)
        fields.append([name, value.strip()])
control = dict(fields)
old = control["Package"]

def relations(value, drop_docker):
    kept = []
    for alternative in (item.strip() for item in value.split(",")):
        name = re.split(r"[\s(:]", alternative, maxsplit=1)[0]
        if drop_docker and name in docker_names:
            continue
        if name in renames:
            alternative = renames[name] + alternative[len(name):]
        kept.append(alternative)
    return ", ".join(kept)

for name, value in fields:
    if name in ("Depends", "Pre-Depends", "Recommends", "Suggests"):
        control[name] = relations(value, drop_docker=False)
    elif name in ("Conflicts", "Breaks", "Replaces"):
        control[name] = relations(value, drop_docker=True)
control.pop("Static-Built-Using", None)
control["Package"] = new
control["Version"] = control["Version"] + "~privreg"
for name in ("Conflicts", "Replaces", "Provides"):
    control[name] = ", ".join(filter(None, [control.get(name, ""), old]))
with open(control_path, "w", encoding="utf-8") as handle:
    for name, value in control.items():
        if value:
            handle.write("%s: %s\n" % (name, value))
os.makedirs(out_dir, exist_ok=True)
out = os.path.join(out_dir, "%s_%s_%s.deb" % (new, control["Version"].split(":")[-1], control["Architecture"]))
subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, out], check=True, stdout=subprocess.DEVNULL)
PY
}

# A package that holds nothing and depends on another: SUITE NAME DEPENDS
thin_package() {
  dir=$WORK/thin/$1/$2
  mkdir -p "$dir/DEBIAN"
  cat >"$dir/DEBIAN/control" <<CONTROL
Package: $2
Version: 5:0~privreg~$1
Architecture: amd64
Maintainer: privreg.registry tests <tests@privreg.test>
Depends: $3
Description: test stand-in for Docker's $2
 On Debian 12, docker.io (here docker-ce) holds the Docker client.
CONTROL
  dpkg-deb --root-owner-group -b "$dir" "$ROOT/pool/$1/stable/${2}_0~privreg~${1}_amd64.deb" >/dev/null
}

RENAMES='docker.io=docker-ce docker-cli=docker-ce-cli containerd=containerd.io docker-compose=docker-compose-plugin'
for suite in bookworm trixie; do
  for deb in "$WORK/$suite"/*.deb; do
    name=$(dpkg-deb -f "$deb" Package)
    new=$(printf '%s\n' $RENAMES | sed -n "s/^$name=//p")
    pool=$ROOT/pool/$suite/stable
    [ "$name" != docker-compose ] || pool=$ROOT/pool/any/stable
    # shellcheck disable=SC2086
    repackage "$deb" "$new" "$pool" $RENAMES
  done
done
thin_package bookworm docker-ce-cli docker-ce

cd "$ROOT"
for suite in bookworm trixie; do
  index=dists/$suite/stable/binary-amd64
  mkdir -p "$index"
  apt-ftparchive packages "pool/$suite" >"$index/Packages"
  apt-ftparchive packages pool/any >>"$index/Packages"
  gzip -9kn "$index/Packages"
  apt-ftparchive \
    -o APT::FTPArchive::Release::Origin=Docker \
    -o APT::FTPArchive::Release::Label=Docker \
    -o APT::FTPArchive::Release::Suite="$suite" \
    -o APT::FTPArchive::Release::Codename="$suite" \
    -o APT::FTPArchive::Release::Architectures=amd64 \
    -o APT::FTPArchive::Release::Components=stable \
    release "dists/$suite" >"$WORK/Release"
  mv "$WORK/Release" "dists/$suite/Release"
  gpg --batch --yes --local-user docker-apt@privreg.test --digest-algo SHA512 \
    --clearsign -o "dists/$suite/InRelease" "dists/$suite/Release"
  gpg --batch --yes --local-user docker-apt@privreg.test --digest-algo SHA512 \
    --armor --detach-sign -o "dists/$suite/Release.gpg" "dists/$suite/Release"
done
rm -rf "$WORK"
