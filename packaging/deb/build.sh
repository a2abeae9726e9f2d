#!/bin/bash
# Build the auditimds .deb: packaging/deb/build.sh OUTDIR   (on Debian 12, as root or not; needs network to PyPI)
#
# Self-contained: a virtual environment at /opt/auditimds made with Debian's /usr/bin/python3 (3.11 on
# Debian 12, whatever python3 comes first in PATH) holds auditimds and its Python dependencies, so the
# package needs python3.11 from Debian and nothing from pip on the target host. The venv is built in a staging
# copy of its final path and its absolute paths are rewritten; bytecode is compiled for the final paths.
set -euo pipefail

OUT=${1:?usage: build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${AUDITIMDS_DEB_PYTHON:-/usr/bin/python3}
PREFIX=/opt/auditimds

command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb not found (not a Debian system?)" >&2; exit 2; }
[ -x "$PY" ] || { echo "build.sh: $PY not found: apt-get install python3" >&2; exit 2; }
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "build.sh: $PY cannot make a venv: apt-get install python3-venv" >&2; exit 2
  fi
fi
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)
ARCH=$(dpkg --print-architecture)
DEBVER="${VERSION}-1"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/auditimds-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"
STAGE="$ROOT$PREFIX"

# 1. the source, copied so that the build leaves no build/ or egg-info in the checkout
mkdir -p "$WORK/src"
cp -a "$REPO/pyproject.toml" "$REPO/setup.py" "$REPO/README.md" "$REPO/auditimds" "$REPO/config" "$WORK/src/"  # builtin_rules -> ../config/rules
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
find "$WORK/src" -name '*.so' -delete  # the compiled core is built below, for $PY

# 2. the venv with the app and its dependencies
"$PY" -m venv "$STAGE"
"$STAGE/bin/python" -m pip install -q --disable-pip-version-check --no-compile --no-warn-script-location \
  "$WORK/src"
# the package ships the compiled core (auditimds._core): without a compiler or $PY's headers pip quietly
# installs the pure-Python core, which is not what a .deb should carry
if ! "$STAGE/bin/python" -c 'import auditimds._core' 2>/dev/null; then
  echo "build.sh: the compiled core was not built for $PY: apt-get install gcc python3-dev (python$PYVER-dev)" >&2
  exit 2
fi
"$STAGE/bin/python" -m pip uninstall -q -y pip setuptools >/dev/null 2>&1 || true
rm -f "$STAGE"/bin/Activate.ps1 "$STAGE"/bin/pip "$STAGE"/bin/pip3*
# direct_url.json records the temporary source directory the app was installed from: not for the target host
for d in "$STAGE"/lib/python*/site-packages/auditimds-*.dist-info; do
  rm -f "$d/direct_url.json"
  sed -i '/direct_url\.json/d' "$d/RECORD"
done
# absolute staging paths (script shebangs, activate scripts) -> final paths
grep -rlI --null "$STAGE" "$STAGE" | xargs -0 -r sed -i "s#$STAGE#$PREFIX#g"
# the interpreter by its versioned name: the venv's packages are for $PYVER only, whatever python3 becomes
ln -sfn "/usr/bin/python$PYVER" "$STAGE/bin/python3"
ln -sfn python3 "$STAGE/bin/python"
ln -sfn python3 "$STAGE/bin/python$PYVER"
sed -i -e "s#^home = .*#home = /usr/bin#" -e "/^command = /d" "$STAGE/pyvenv.cfg"
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
"/usr/bin/python$PYVER" -m compileall -q -j0 -s "$ROOT" -p / "$STAGE/lib" >/dev/null

# 3. the rest of the file system
install -d "$ROOT/usr/bin" "$ROOT/lib/systemd/system" "$ROOT/etc/auditimds" "$ROOT/etc/audit/rules.d" \
  "$ROOT/usr/share/auditimds/audit" "$ROOT/usr/share/auditimds/audisp" "$ROOT/usr/share/doc/auditimds" \
  "$ROOT/usr/share/auditimds/rules/hardened" "$ROOT/DEBIAN"
cat > "$ROOT/usr/bin/auditimds" <<WRAP
#!/bin/sh
# auditimds: the application lives in the virtual environment $PREFIX (package auditimds).
exec $PREFIX/bin/python3 -I -m auditimds "\$@"
WRAP
chmod 0755 "$ROOT/usr/bin/auditimds"
install -m 0644 "$REPO/packaging/systemd/auditimds.service" "$ROOT/lib/systemd/system/auditimds.service"
install -m 0644 "$REPO/config/auditimds.toml" "$ROOT/etc/auditimds/auditimds.toml"
install -m 0640 "$REPO/packaging/audit/auditimds.rules" "$ROOT/etc/audit/rules.d/auditimds.rules"
install -m 0644 "$REPO/packaging/audit/auditimds.rules" "$REPO/packaging/audit/auditimds-lowvolume.rules" \
  "$ROOT/usr/share/auditimds/audit/"
install -m 0644 "$REPO/packaging/audisp/auditimds.conf" "$ROOT/usr/share/auditimds/audisp/auditimds.conf"
# the opt-in hardened rule pack: enable with [rules] paths = ["/usr/share/auditimds/rules/hardened"]
install -m 0644 "$REPO"/config/rules/hardened/* "$ROOT/usr/share/auditimds/rules/hardened/"
install -m 0644 "$REPO/README.md" "$ROOT/usr/share/doc/auditimds/README.md"
[ -f "$REPO/docs/operations.md" ] && install -m 0644 "$REPO/docs/operations.md" "$ROOT/usr/share/doc/auditimds/"
cat > "$ROOT/usr/share/doc/auditimds/copyright" <<'COPY'
auditimds: Apache-2.0 (see the project's pyproject.toml).
Bundled detection rule (auditimds/builtin_rules): Elastic License 2.0, see
/opt/auditimds/lib/python3*/site-packages/auditimds/builtin_rules/. The hardened pack in
/usr/share/auditimds/rules/hardened: rules derived from Elastic's carry the Elastic License 2.0 (see its README).
Bundled Python dependencies under /opt/auditimds: each under its own licence (see its dist-info).
COPY

# 4. control files
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<CTRL
Package: auditimds
Version: $DEBVER
Architecture: $ARCH
Section: admin
Priority: optional
Maintainer: auditimds developers <root@localhost>
Installed-Size: $SIZE
Depends: python$PYVER, adduser
Recommends: auditd
Description: detect cloud instance-metadata (IMDS) credential theft from auditd logs
 auditimds follows auditd's log, rebuilds Elastic-Defend-shaped ECS events and runs
 Elastic's EQL rule "Unusual Instance Metadata Service (IMDS) API Request" on them,
 writing alerts as JSON lines. Runs as the hardened systemd service auditimds.service
 under its own system user; audit rules in /etc/audit/rules.d/auditimds.rules.
 The application and its Python dependencies live in a virtual environment in
 $PREFIX (built for Debian's python$PYVER).
CTRL
printf '%s\n' /etc/auditimds/auditimds.toml /etc/audit/rules.d/auditimds.rules > "$ROOT/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "$HERE/$s" "$ROOT/DEBIAN/$s"
done

DEB="$OUT/auditimds_${DEBVER}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz -z6 --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
