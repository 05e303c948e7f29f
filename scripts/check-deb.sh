#!/usr/bin/env bash
# Checks a nexthop .deb without installing it on this machine: its contents, the binary and the
# example config it carries (unpacked with dpkg -x), its maintainer scripts' syntax, its
# systemd units (`systemd-analyze verify`, where systemd exists: any warning fails), and, as
# root with debootstrap, an install, run and removal in a clean Debian 12 (bookworm) root.
#
# Usage: scripts/check-deb.sh DEB
set -euo pipefail
deb=${1:?usage: scripts/check-deb.sh DEB}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-deb.sh: $*" >&2; exit 1; }

dpkg-deb -I "$deb" control | grep -qx "Package: nexthop" || fail "not the nexthop package"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/nexthop ./lib/systemd/system/nexthop.service \
  ./lib/systemd/system/nexthop-agent@.service ./lib/systemd/system/nexthop-lb-mux@.service \
  ./usr/share/man/man1/nexthop.1.gz ./usr/share/bash-completion/completions/nexthop \
  ./usr/share/zsh/vendor-completions/_nexthop ./usr/share/fish/vendor_completions.d/nexthop.fish \
  ./usr/share/doc/nexthop/copyright ./usr/share/doc/nexthop/examples/nexthop.toml; do
  grep -qxF "$f" <<<"$contents" || fail "$f missing from $deb"
done

root="$tmp/root"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$tmp/DEBIAN"
for s in "$tmp"/DEBIAN/postinst "$tmp"/DEBIAN/postrm; do sh -n "$s" || fail "$s: syntax"; done
"$root/usr/bin/nexthop" --version
"$root/usr/bin/nexthop" config check "$root/usr/share/doc/nexthop/examples/nexthop.toml" >/dev/null ||
  fail "the example config does not pass nexthop config check"
zcat "$root/usr/share/man/man1/nexthop.1.gz" | grep -q '^\.TH nexthop 1' || fail "man page"
grep -q 'complete -F _nexthop' "$root/usr/share/bash-completion/completions/nexthop" || fail "bash completion"

if command -v systemd-analyze >/dev/null; then
  mkdir "$tmp/units"
  for u in "$root"/lib/systemd/system/*.service; do
    # The units name /usr/bin/nexthop; here it is the unpacked one.
    sed "s|/usr/bin/nexthop|$root/usr/bin/nexthop|g" "$u" >"$tmp/units/$(basename "$u")"
  done
  out=$(cd "$tmp/units" && systemd-analyze verify --man=no ./*.service 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
  echo "systemd-analyze verify: the units pass"
else
  echo "check-deb.sh: no systemd-analyze here; units not verified"
fi
# Installed on a clean Debian 12 root (root and debootstrap, as in CI): dpkg -i without a
# warning, the binary runs there, the user and directories exist, and removal is clean.
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
  chroot_dir="$tmp/bookworm"
  debootstrap --variant=minbase bookworm "$chroot_dir" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    >"$tmp/debootstrap.log" 2>&1 || fail "debootstrap: $(tail -5 "$tmp/debootstrap.log")"
  cp "$deb" "$chroot_dir/tmp/nexthop.deb"
  in_root() { chroot "$chroot_dir" "$@"; }
  out=$(in_root dpkg -i /tmp/nexthop.deb 2>&1) || fail "dpkg -i in a clean Debian 12 root: $out"
  ! grep -qi "warning" <<<"$out" || fail "dpkg -i warns: $out"
  in_root nexthop --version >/dev/null || fail "nexthop does not run in the clean root"
  in_root nexthop config check /usr/share/doc/nexthop/examples/nexthop.toml >/dev/null ||
    fail "config check fails in the clean root"
  in_root getent passwd nexthop >/dev/null || fail "no nexthop user after install"
  [ "$(in_root stat -c '%U:%G %a' /etc/nexthop)" = "root:nexthop 750" ] || fail "/etc/nexthop: $(in_root stat -c '%U:%G %a' /etc/nexthop)"
  [ "$(in_root stat -c '%U' /var/lib/nexthop)" = nexthop ] || fail "/var/lib/nexthop is not the nexthop user's"
  out=$(in_root dpkg -r nexthop 2>&1) || fail "dpkg -r: $out"
  [ ! -e "$chroot_dir/usr/bin/nexthop" ] || fail "/usr/bin/nexthop left after dpkg -r"
  echo "installed, ran and removed in a clean Debian 12 root (debootstrap minbase)"
else
  echo "check-deb.sh: not root or no debootstrap: not installed in a clean root"
fi
echo "$deb: ok"
