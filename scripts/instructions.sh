#!/usr/bin/env bash
# Instructions per operation under callgrind (user space), for the switch
# scenarios of examples/instructions.rs: each runs at two counts and the
# difference is divided, which cancels start-up and set-up.
#
#   scripts/instructions.sh [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example instructions >/dev/null 2>&1
bin=target/release/examples/instructions
low=1000
high=11000
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(main_child child_child create_finish corosensei)
fi
for s in "${scenarios[@]}"; do
    a=$(count "$s" $low)
    b=$(count "$s" $high)
    printf '%-14s %6.1f instructions per operation\n' "$s" "$(echo "($b - $a) / ($high - $low)" | bc -l)"
done
