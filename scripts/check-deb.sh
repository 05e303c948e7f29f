#!/usr/bin/env bash
# Checks a nexthop .deb without installing it on this machine: its contents, the binary and the
# example config it carries (unpacked with dpkg -x), its maintainer scripts' syntax, and its
# systemd units (`systemd-analyze verify`, where systemd exists: any warning fails).
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
echo "$deb: ok"
