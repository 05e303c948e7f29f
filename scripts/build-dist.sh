#!/bin/sh
# The deployable nexthop: one static-pie executable (glibc linked in, no ld.so, libm or
# libgcc_s at run time), fat LTO, one codegen unit. Copy it to any x86-64/aarch64 Linux host
# with the same or a newer kernel; it needs no shared libraries. Prints the binary's path.
#
# Why: a route server runs for months and its resident memory is mostly code. Static linking
# maps only the parts of libc it calls (1.2 MB less resident than the dynamic build at idle,
# BENCHMARKS.md "Route server race"), and LTO drops what no caller reaches.
# nexthop resolves no host names (config addresses are IP literals), so glibc's static NSS
# limitation does not apply.
set -eu
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps build scripts and proc-macros dynamic (they are loaded by the compiler) and
# puts the static build in its own directory: target/$triple/dist/.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --profile dist --target "$triple" -p nexthop "$@" >&2
echo "target/$triple/dist/nexthop"
