#!/bin/sh
# Run the Kubernetes experiments of this folder one after the other (the chaos overlay's Job does) and judge
# each from its journal, not from `chaos run`'s exit code, which is 0 for runs a gate must fail
# (chaoslab.chaos.verdict). Rollbacks always run, so an injected fault is cleared even when a run fails.
#   sh chaos/k8s/run-experiments.sh [experiment.json ...]      (default: every experiment here)
set -u
here="$(cd "$(dirname "$0")" && pwd)"
journals="${CHAOSLAB_JOURNAL_DIR:-/tmp/chaoslab-journals}"
mkdir -p "$journals"
[ "$#" -gt 0 ] || set -- "$here"/payments-pod-kill.json "$here"/payments-all-down.json \
                        "$here"/payments-network-deny.json
failed=0
for experiment in "$@"; do
    name="$(basename "$experiment" .json)"
    journal="$journals/$name.json"
    chaos --no-version-check --no-log-file --log-format json run --rollback-strategy always \
          --journal-path "$journal" "$experiment"
    if ! python -c 'import json, sys
from chaoslab.chaos.verdict import compute
verdict = compute(json.load(open(sys.argv[1])))
print(json.dumps({"experiment": verdict.title, "passed": verdict.passed, "failures": verdict.failures}))
sys.exit(0 if verdict.passed else 1)' "$journal"; then
        echo "chaoslab: $name FAILED" >&2
        failed=1
    fi
done
exit "$failed"
