#!/usr/bin/env bash
# Installs Canh on an edge box as a systemd service, or removes it.
#
#   sudo systemd/install.sh                 # install (build first: scripts/setup.sh)
#   sudo systemd/install.sh --uninstall     # remove the program and units; keep config and state
#   sudo systemd/install.sh --uninstall --purge   # also /etc/canh and /var/lib/canh
#
# Installs, under PREFIX (default /usr/local): bin/canh, lib/canh/libonnxruntime.so (from
# .ort/), share/canh/models, share/canh/pipelines and share/doc/canh (README, config and
# message references); /etc/canh/site.toml from configs/example-site.toml and the broker's
# password file /etc/canh/mqtt-password (mode 0600, the unit's LoadCredential=) if there are
# none (edit both, then `canh check --config /etc/canh/site.toml --credentials /etc/canh`); the
# units canh.service and canh@.service (one site per instance: /etc/canh/NAME.toml, its password
# in /etc/canh/NAME/mqtt-password, which the instance needs to start: make it, mode 0600, even
# empty for a broker without one) in /etc/systemd/system. It enables canh.service but does not
# start it: start it when the site file is right.
#
# DESTDIR=/some/root installs into a staging tree (packaging, tests); systemctl is then not run.
set -euo pipefail

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
uninstall=false
purge=false
for arg in "$@"; do
    case "$arg" in
        --uninstall) uninstall=true ;;
        --purge) purge=true ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "[install] $*"; }
root="$DESTDIR"
units="$root/etc/systemd/system"
# systemctl only for a real install on a machine that runs systemd.
systemd_running=false
if [[ -z "$DESTDIR" && -d /run/systemd/system ]]; then systemd_running=true; fi
if [[ -z "$DESTDIR" && $EUID -ne 0 ]]; then
    echo "install.sh: run as root (sudo), or set DESTDIR to stage into a folder" >&2
    exit 1
fi

if $uninstall; then
    if $systemd_running; then
        systemctl disable --now canh.service 2>/dev/null || true
        systemctl disable --now 'canh@*.service' 2>/dev/null || true
    fi
    rm -f "$units/canh.service" "$units/canh@.service"
    rm -f "$root$PREFIX/bin/canh"
    rm -rf "$root$PREFIX/lib/canh" "$root$PREFIX/share/canh" "$root$PREFIX/share/doc/canh"
    if $purge; then
        rm -rf "$root/etc/canh" "$root/var/lib/canh" "$root/var/lib/private/canh"
        say "removed Canh, its configuration and its state"
    else
        say "removed Canh; kept /etc/canh and /var/lib/canh (--purge removes them)"
    fi
    if $systemd_running; then systemctl daemon-reload; fi
    exit 0
fi

binary="$here/target/release/canh"
library="$(ls "$here"/.ort/libonnxruntime.so.* 2>/dev/null | head -n1 || true)"
if [[ ! -x "$binary" || -z "$library" ]]; then
    echo "install.sh: build first: scripts/setup.sh (needs $binary and .ort/libonnxruntime.so.*)" >&2
    exit 1
fi

say "program into $root$PREFIX"
install -D -m 0755 "$binary" "$root$PREFIX/bin/canh"
install -D -m 0644 "$library" "$root$PREFIX/lib/canh/libonnxruntime.so"
rm -rf "$root$PREFIX/share/canh"
mkdir -p "$root$PREFIX/share/canh"
cp -r "$here/models" "$here/pipelines" "$root$PREFIX/share/canh/"
rm -rf "$root$PREFIX/share/canh/models/fixtures"
install -D -m 0644 "$here/README.md" "$root$PREFIX/share/doc/canh/README.md"
install -D -m 0644 "$here/configs/README.md" "$root$PREFIX/share/doc/canh/configs.md"
install -D -m 0644 "$here/docs/messages.md" "$root$PREFIX/share/doc/canh/messages.md"

if [[ -e "$root/etc/canh/site.toml" ]]; then
    say "keeping the existing /etc/canh/site.toml"
else
    say "example site file into /etc/canh/site.toml: edit it for your cameras and broker"
    # Readable by the service's throwaway user; the secret is in the credential file.
    install -D -m 0644 "$here/configs/example-site.toml" "$root/etc/canh/site.toml"
fi
if [[ -e "$root/etc/canh/mqtt-password" ]]; then
    say "keeping the existing /etc/canh/mqtt-password"
else
    say "placeholder broker password into /etc/canh/mqtt-password (mode 0600): put the real one there"
    (umask 077 && mkdir -p "$root/etc/canh" && printf 'change-me\n' > "$root/etc/canh/mqtt-password")
fi

say "units into $units"
mkdir -p "$units"
sed "s#/usr/local/#$PREFIX/#g" "$here/systemd/canh.service" > "$units/canh.service"
# The template: the same service, one instance per site file /etc/canh/NAME.toml, each with its
# own state folder /var/lib/canh/NAME.
sed -e 's#/etc/canh/site.toml#/etc/canh/%i.toml#g' \
    -e 's#/etc/canh/mqtt-password#/etc/canh/%i/mqtt-password#g' \
    -e 's#^StateDirectory=canh$#StateDirectory=canh/%i#' \
    -e 's#^Description=.*#&, site %i#' \
    "$units/canh.service" > "$units/canh@.service"
chmod 0644 "$units/canh.service" "$units/canh@.service"

if $systemd_running; then
    systemctl daemon-reload
    systemctl enable canh.service
    say "enabled canh.service; when /etc/canh/site.toml is right: systemctl start canh"
else
    say "systemd is not running here (or DESTDIR is set): enable with 'systemctl enable --now canh' on the box"
fi
