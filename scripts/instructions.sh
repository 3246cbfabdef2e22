#!/usr/bin/env bash
# Instructions per hub operation, beside tokio's current-thread runtime,
# counted by callgrind (user-space instructions, deterministic): each
# kernel of examples/instructions.rs runs at N and at 2N operations, and
# the difference divided by N is the cost of one operation, setup and
# teardown cancelled out. Takes about a minute.
#
#   scripts/instructions.sh            # the table
#   N=20000 scripts/instructions.sh    # another N
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

N=${N:-10000}
cargo build --release --example instructions -q
bin=target/release/examples/instructions

# Instructions of one run of kernel $1 at $2 operations.
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

# Instructions per operation of kernel $1 (differenced).
per_op() {
    local a b
    a=$(count "$1" "$N")
    b=$(count "$1" $((2 * N)))
    echo $(((b - a + N / 2) / N))
}

printf '| %-32s | %12s | %22s |\n' "operation (N=$N, 2N differenced)" "greenlet hub" "tokio current-thread"
printf '|%s|%s|%s|\n' "----------------------------------" "-------------:" "-----------------------:"
row() {
    printf '| %-32s | %12s | %22s |\n' "$1" "$(per_op "hub-$2")" "$(per_op "tokio-$2")"
}
row "ping-pong via bounded(1), per hop" pingpong
row "yield_now among 2, per yield" yield2
row "yield_now among 1,000, per yield" yield1000
row "spawn + join from main" spawn-join
row "bounded(1024), per item" bounded1024
