#!/usr/bin/env bash
# Proves the Debian package and the systemd unit (run by tests/run.sh): builds the .deb with
# packaging/debian/build-deb.sh around the debug binary, then inspects it with dpkg-deb
# (control fields, files and their modes, conffiles, maintainer scripts) and verifies the
# unit with systemd-analyze where the machine has it. Docker and aarch64 images are not built
# here (see packaging/README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { echo "FAILED (packaging): $*" >&2; exit 1; }
if ! command -v dpkg-deb >/dev/null; then
    echo "NOTE: dpkg-deb is not installed: the package test did not run"
    exit 0
fi

out="$(OTPBOX_DEB_BIN=target/debug/otpbox packaging/debian/build-deb.sh | tail -n 1)"
deb="${out#built }"
[ -f "$deb" ] || fail "build-deb.sh did not say where the package is: $out"

info="$(dpkg-deb --info "$deb")"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
for field in "Package: otpbox" "Version: $version" "Architecture: " "Maintainer: " "Description: "; do
    grep -q "^ $field" <<<"$info" || fail "control has no '$field':"$'\n'"$info"
done

contents="$(dpkg-deb --contents "$deb")"
expect() { # mode path
    grep -Eq "^$1 .* \./$2\$" <<<"$contents" || fail "no $2 with mode $1 in the package:"$'\n'"$contents"
}
expect -rwxr-xr-x usr/bin/otpbox
expect -rw-r--r-- lib/systemd/system/otpbox.service
expect -rw-r----- etc/otpbox/otpbox.conf
expect -rw-r--r-- usr/share/doc/otpbox/README.md
expect -rw-r--r-- usr/share/doc/otpbox/examples/litestream/litestream.yml
expect -rwxr-xr-x usr/share/otpbox/bridges/otpbox-gammu

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg-deb --raw-extract "$deb" "$work/root"
grep -qx "/etc/otpbox/otpbox.conf" "$work/root/DEBIAN/conffiles" || fail "the config is not a conffile"
for script in postinst prerm postrm; do
    [ -x "$work/root/DEBIAN/$script" ] || fail "no executable $script"
    sh -n "$work/root/DEBIAN/$script" || fail "$script does not parse"
done
"$work/root/usr/bin/otpbox" --version >/dev/null || fail "the packaged binary does not run"

if command -v systemd-analyze >/dev/null; then
    # The unit as installed, with its ExecStart pointed at the packaged binary.
    # systemd-analyze exits 0 on directives it ignores, so any word from it is a failure.
    unit="$work/otpbox.service"
    sed "s|/usr/bin/otpbox|$work/root/usr/bin/otpbox|" \
        "$work/root/lib/systemd/system/otpbox.service" >"$unit"
    verdict="$(systemd-analyze verify "$unit" 2>&1)" || fail "systemd-analyze verify:"$'\n'"$verdict"
    [ -z "$verdict" ] || fail "systemd-analyze verify otpbox.service:"$'\n'"$verdict"
    # The Litestream example unit too (its binary stood in by true).
    sed "s|/usr/bin/litestream|$(command -v true)|" \
        packaging/litestream/litestream.service >"$work/litestream.service"
    verdict="$(systemd-analyze verify "$work/litestream.service" 2>&1)" \
        || fail "systemd-analyze verify litestream.service:"$'\n'"$verdict"
    [ -z "$verdict" ] || fail "systemd-analyze verify litestream.service:"$'\n'"$verdict"
    echo "packaging: $deb inspected; systemd-analyze verify passed"
else
    echo "packaging: $deb inspected (systemd-analyze not installed: the unit was not verified)"
fi
