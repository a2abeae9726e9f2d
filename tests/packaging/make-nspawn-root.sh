#!/bin/bash
# Make the Debian root file system that tests/packaging/test_systemd_nspawn.py boots with systemd-nspawn:
#   tests/packaging/make-nspawn-root.sh [ROOT]     (root; default ROOT: /var/cache/auditimds-test/nspawn-<codename>)
#
# debootstrap --variant=minbase of this machine's Debian release (the .deb's venv is built for this machine's
# python3.N, so the container must have the same one) with systemd as init and what the .deb depends on
# (python3, adduser), from the mirror this machine's apt uses. A complete root (marker file .auditimds-root,
# holding the package list it was made with) is reused as is; an incomplete one is made again. Building goes
# to ROOT.new and is renamed at the end, so an interrupted run never leaves a root that looks complete.
# .ci/run calls this in its set-up; the test calls it itself when the root is missing (needs the mirror).
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "make-nspawn-root.sh: needs root (debootstrap)" >&2; exit 2; }

# shellcheck disable=SC1091
SUITE=${AUDITIMDS_NSPAWN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
ROOT=${1:-/var/cache/auditimds-test/nspawn-$SUITE}
# systemd + systemd-sysv + dbus: systemd as PID 1 with systemctl working; python3 and adduser: the .deb's
# Depends (python3.N, adduser); procps: ps for the test.
INCLUDE=systemd,systemd-sysv,dbus,python3,adduser,procps
MARK="$ROOT/.auditimds-root"
WANT="suite=$SUITE include=$INCLUDE"

mirror() {
  if [ -n "${AUDITIMDS_DEBIAN_MIRROR:-}" ]; then echo "$AUDITIMDS_DEBIAN_MIRROR"; return; fi
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # the first URIs of a stanza for the main archive (not -security)
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "make-nspawn-root.sh: no Debian mirror in this machine's apt sources: set AUDITIMDS_DEBIAN_MIRROR" >&2; return 1; }
  echo "$m"
}

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9  # two callers at once (CI set-up, a test run): the second waits and then finds the root complete

if [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$WANT" ]; then
  echo "$ROOT"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "make-nspawn-root.sh: apt-get install debootstrap" >&2; exit 2; }
NEW="$ROOT.new"
drop_new() {
  # debootstrap mounts /proc and /sys in the new root while it works: an interrupted run may leave them
  # (grep finds none in the usual case: not an error under pipefail)
  findmnt -rn -o TARGET | { grep -F "$NEW/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$NEW"
}
drop_new
MIRROR=$(mirror) || exit 1
echo "make-nspawn-root.sh: debootstrap $SUITE from $MIRROR into $ROOT (a few minutes)" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$NEW" "$MIRROR" >"$ROOT.log" 2>&1 || {
  tail -20 "$ROOT.log" >&2
  drop_new
  exit 1
}
# downloaded .debs are not needed any more; an empty machine-id lets nspawn give each boot a transient one
rm -f "$NEW"/var/cache/apt/archives/*.deb
: > "$NEW/etc/machine-id"
echo "$WANT" > "$NEW/.auditimds-root"
rm -rf "$ROOT"
mv "$NEW" "$ROOT"
rm -f "$ROOT.log"
echo "$ROOT"
