#!/usr/bin/env bash
# Instructions per operation, counted by callgrind (user-space
# instructions, deterministic): each kernel runs at N and at 2N operations,
# and the difference divided by N is the cost of one operation, set-up and
# teardown cancelled out. Two tables: the switch (examples/
# instructions_switch.rs, beside raw corosensei) and the hub (examples/
# instructions.rs, beside tokio's current-thread runtime). A few minutes.
#
#   scripts/instructions.sh            # both tables
#   N=20000 scripts/instructions.sh    # another N
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

N=${N:-10000}
cargo build --release --example instructions --example instructions_switch -q

# Instructions of one run of binary $1, kernel $2, at $3 operations.
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

# Instructions per operation of binary $1, kernel $2 (differenced).
per_op() {
    local a b
    a=$(count "$1" "$2" "$N")
    b=$(count "$1" "$2" $((2 * N)))
    echo $(((b - a + N / 2) / N))
}

switch=target/release/examples/instructions_switch
printf '| %-40s | %12s |\n' "switch (N=$N, 2N differenced)" "instructions"
printf '|%s|%s|\n' "------------------------------------------" "-------------:"
srow() {
    printf '| %-40s | %12s |\n' "$1" "$(per_op "$switch" "$2")"
}
srow "main <-> child round trip" main_child
srow "child <-> child round trip" child_child
srow "create -> first switch -> finish, pooled" create_finish
srow "raw corosensei round trip (floor)" corosensei
srow "greenlet::Generator, per item" generator
srow "corosensei generator, per item (floor)" corosensei_generator
srow "create, start, kill (dropped handle)" create_kill
echo

hub=target/release/examples/instructions
printf '| %-40s | %12s | %22s |\n' "hub operation (N=$N, 2N differenced)" "greenlet hub" "tokio current-thread"
printf '|%s|%s|%s|\n' "------------------------------------------" "-------------:" "-----------------------:"
row() {
    printf '| %-40s | %12s | %22s |\n' "$1" "$(per_op "$hub" "hub-$2")" "$(per_op "$hub" "tokio-$2")"
}
row "ping-pong via bounded(1), per hop" pingpong
row "yield_now among 2, per yield" yield2
row "yield_now among 1,000, per yield" yield1000
row "spawn + join from main" spawn-join
row "bounded(1024), per item" bounded1024
row "unbounded, per item" unbounded
