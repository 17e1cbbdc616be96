#!/usr/bin/env bash
# Builds a Debian package with plain dpkg-deb (no debhelper, no cargo-deb needed):
#   packaging/debian/build-deb.sh                            # for this machine
#   packaging/debian/build-deb.sh aarch64-unknown-linux-gnu  # arm64, e.g. a Raspberry Pi
# Output: target/debian/otpbox_<version>_<arch>.deb
# Set DEB_MAINTAINER="Name <mail>" to fill the Maintainer field. OTPBOX_DEB_BIN=PATH packages
# that binary instead of building a release one (the test suite inspects a package of its
# debug build this way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

target="${1:-}"
if [ -n "${OTPBOX_DEB_BIN:-}" ]; then
    bin="$OTPBOX_DEB_BIN"
    target="${target:-$(rustc -vV | sed -n 's/^host: //p')}"
elif [ -n "$target" ]; then
    cargo build --release --locked --target "$target"
    bin="target/$target/release/otpbox"
else
    cargo build --release --locked
    bin="target/release/otpbox"
    target="$(rustc -vV | sed -n 's/^host: //p')"
fi

case "$target" in
    x86_64-*-linux-gnu) arch=amd64 ;;
    aarch64-*-linux-gnu) arch=arm64 ;;
    armv7-*-linux-gnueabihf) arch=armhf ;;
    *) echo "build-deb.sh: no Debian architecture known for $target" >&2; exit 2 ;;
esac

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
maintainer="${DEB_MAINTAINER:-otpbox maintainers <root@localhost>}"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/otpbox_${version}_${arch}"

install -D -m 0755 "$bin" "$root/usr/bin/otpbox"
install -D -m 0644 packaging/systemd/otpbox.service "$root/lib/systemd/system/otpbox.service"
install -D -m 0640 packaging/otpbox.conf.example "$root/etc/otpbox/otpbox.conf"
doc="$root/usr/share/doc/otpbox"
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 ARCHITECTURE.md "$doc/ARCHITECTURE.md"
install -D -m 0644 packaging/README.md "$doc/packaging.md"
install -D -m 0644 packaging/otpbox.conf.example "$doc/examples/otpbox.conf.example"
install -D -m 0644 packaging/nginx/otpbox.conf "$doc/examples/nginx/otpbox.conf"
install -D -m 0644 packaging/caddy/Caddyfile "$doc/examples/caddy/Caddyfile"
install -D -m 0644 packaging/litestream/litestream.yml "$doc/examples/litestream/litestream.yml"
install -D -m 0644 packaging/litestream/litestream.service "$doc/examples/litestream/litestream.service"
# Gateway bridges for gammu-smsd and smstools3 (python3 scripts, used only if installed).
for bridge in otpbox-gammu otpbox-smstools; do
    install -D -m 0755 "packaging/bridges/$bridge" "$root/usr/share/otpbox/bridges/$bridge"
done

install -d -m 0755 "$root/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
size="$(du -sk "$root" | cut -f1)"
sed -e "s|@VERSION@|$version|" \
    -e "s|@ARCH@|$arch|" \
    -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$size|" \
    packaging/debian/control >"$root/DEBIAN/control"

mkdir -p target/debian
out="target/debian/otpbox_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out"
echo "built $out"
