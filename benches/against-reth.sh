#!/usr/bin/env bash
# Whole-process comparison with reth on one generated chain, as ../shared/peers/README.md asks:
# ours is `init` + `import` + `run --exit-at-head` on the embedded store with the default config,
# reth's is `reth import` (all its stages, the state root checked); each from an empty data
# directory, alternating, after one warm-up of each. Prints every run's wall time, CPU (user +
# system) and peak RSS, then the medians and ours/reth.
#
#   benches/against-reth.sh CHAIN_DIR [ROUNDS]      (make bench-reth runs it on the bench chain)
#
# EVM_EXECUTOR_BIN picks our binary (default target/release/evm-executor), RETH_BIN reth's
# (default: unpacked from ../shared/peers once, to $TMPDIR/reth-2.5.1); WORK_DIR holds both
# data directories (default: a fresh temporary directory, removed at the end).
set -euo pipefail

chain=${1:?usage: $0 CHAIN_DIR [ROUNDS]}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
ours=${EVM_EXECUTOR_BIN:-$here/target/release/evm-executor}
peers=$here/../shared/peers
reth=${RETH_BIN:-${TMPDIR:-/tmp}/reth-2.5.1}

for file in "$chain/genesis.json" "$chain/chain.rlp" "$ours"; do
    [ -e "$file" ] || { echo "missing $file" >&2; exit 1; }
done
if [ ! -x "$reth" ]; then
    [ -f "$peers/reth-2.5.1-x86_64-linux.zst" ] ||
        { echo "no reth: set RETH_BIN or put the build in $peers" >&2; exit 1; }
    zstd -qdc "$peers/reth-2.5.1-x86_64-linux.zst" > "$reth.part"
    chmod +x "$reth.part" && mv "$reth.part" "$reth"
fi
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }

work=${WORK_DIR:-$(mktemp -d)}
[ -n "${WORK_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
results=$work/results
: > "$results"

# One measured run: `label round command...`; appends "label wall cpu peak_kb" to $results.
measure() {
    local label=$1 round=$2 out
    shift 2
    out=$work/$label.time
    /usr/bin/time -o "$out" -f "%e %U %S %M" "$@" > "$work/$label.log" 2>&1 ||
        { echo "$label failed; its log:" >&2; tail -20 "$work/$label.log" >&2; exit 1; }
    read -r wall user sys peak < "$out"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')
    printf '%-5s round %s: wall %6.2f s  cpu %6.2f s  peak %5d MiB\n' \
        "$label" "$round" "$wall" "$cpu" $((peak / 1024))
    [ "$round" = warm-up ] || echo "$label $wall $cpu $peak" >> "$results"
}

run_ours() {
    rm -rf "$work/ours" && mkdir -p "$work/ours"
    measure ours "$1" env EVM_EXECUTOR_CHAIN_NAME=custom EVM_EXECUTOR_STORAGE_BACKEND=embedded \
        EVM_EXECUTOR_STORAGE_EMBEDDED_PATH="$work/ours/store.redb" EVM_EXECUTOR_METRICS_ENABLED=false \
        sh -c "'$ours' init --genesis '$chain/genesis.json' &&
            '$ours' import '$chain/chain.rlp' && '$ours' run --exit-at-head"
}

run_reth() {
    rm -rf "$work/reth"
    measure reth "$1" "$reth" import --chain "$chain/genesis.json" --datadir "$work/reth" \
        "$chain/chain.rlp"
}

run_ours warm-up
run_reth warm-up
for round in $(seq "$rounds"); do
    run_ours "$round"
    run_reth "$round"
done

median() { # label column
    awk -v l="$1" -v c="$2" '$1 == l {print $c}' "$results" | sort -g |
        awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}
for label in ours reth; do
    printf '%-5s median: wall %6.2f s  cpu %6.2f s  peak %5d MiB\n' "$label" \
        "$(median "$label" 2)" "$(median "$label" 3)" "$(( $(median "$label" 4 | cut -d. -f1) / 1024 ))"
done
awk -v w1="$(median ours 2)" -v w2="$(median reth 2)" -v c1="$(median ours 3)" \
    -v c2="$(median reth 3)" -v p1="$(median ours 4)" -v p2="$(median reth 4)" \
    'BEGIN {printf "ours/reth: wall %.2f x, cpu %.2f x, peak %.2f x\n", w1 / w2, c1 / c2, p1 / p2}'
