#!/bin/bash
# Fuzz the compiled core's byte-level half (auditimds/csrc/core.c) with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer, seeded with the real logs.
#
#   bash tests/fuzz/run.sh [SECONDS] [WORKDIR]
#
# Needs clang with its runtime (Debian: clang, libclang-rt-14-dev).  Exit status 0 when the run ended with no
# finding; a finding leaves its input in WORKDIR (crash-*, leak-*, timeout-*) and exits non-zero.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
secs=${1:-60}
work=${2:-$(mktemp -d /tmp/auditimds-fuzz.XXXXXX)}
mkdir -p "$work/corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror \
  -I "$repo/auditimds/csrc" "$here/fuzz_core.c" "$repo/auditimds/csrc/core.c" -o "$work/fuzz_core"
python3 "$here/seeds.py" "$work/seeds"
cd "$work"
exec ./fuzz_core -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$work/seeds"
