#!/usr/bin/env bash
# bench/aead-limit.sh [SECONDS]: bench/aead-limit.c against the mbedTLS that
# scripts/setup built (.deps/mbedtls) and, when installed, Debian's
# libmbedtls-dev (the old stack), one after the other in the same batch.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/bench/.build
mkdir -p "$B"
cc -O2 -isystem "$ROOT/.deps/mbedtls/include" "$ROOT/bench/aead-limit.c" \
    "$ROOT/.deps/mbedtls/lib/libmbedcrypto.a" -o "$B/aead-limit-new"
if [ -f /usr/lib/x86_64-linux-gnu/libmbedcrypto.a ] && [ -f /usr/include/mbedtls/version.h ]; then
    cc -O2 "$ROOT/bench/aead-limit.c" /usr/lib/x86_64-linux-gnu/libmbedcrypto.a -o "$B/aead-limit-old"
fi
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
for exe in "$B/aead-limit-new" "$B/aead-limit-old"; do
    [ -x "$exe" ] && "$exe" "${1:-1}"
done
