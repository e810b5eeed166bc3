#!/usr/bin/env bash
# `make test`: the whole suite, in two stages, so that it stays under 45 minutes on a 2-core machine.
#
# Stage 1: the container test (tests/containers, about 7 minutes: podman builds the images, then the compose
# experiments mostly wait on compose's 30 s rule evaluation), then the topologies comparison (marker `beside`: labs
# of its own, relative assertions, about 3 minutes), run beside every test that starts no lab (the quick tests and
# the tests of real service processes, each on ports of its own range).
# Stage 2: the tests that start a lab (marker `lab`, the isolated ones included), one after the other: their
# timing bounds assume that no other lab shares the machine.
#
# With arguments (a path, -k, -m, -x ...), they go to one plain pytest run instead: `scripts/test.sh tests/lab`.
# CHAOSLAB_TEST_STAGES=0 runs the whole suite in one pytest, one test after the other (about 52 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
pytest=.venv/bin/pytest

if [ "$#" -gt 0 ] || [ "${CHAOSLAB_TEST_STAGES:-1}" = 0 ]; then
    exec "$pytest" "$@"
fi

temp=$(mktemp -d -t chaoslab-tests.XXXXXX)
trap 'rm -rf "$temp"' EXIT
started=$(date +%s)

echo "== stage 1: the container test and the topologies comparison (in the background, reported below) beside" \
     "the tests that start no lab"
"$pytest" -m "containers or beside" tests/containers tests/monolith --basetemp "$temp/containers" \
    > "$temp/containers.log" 2>&1 &
containers=$!
"$pytest" -m "not lab and not containers" --basetemp "$temp/no-lab"
no_lab=$?
wait "$containers"
container_test=$?
echo "== stage 1: the container test's and the comparison's output"
cat "$temp/containers.log"

echo "== stage 2: the tests that start a lab, one after the other"
"$pytest" -m "lab and not containers and not beside" --basetemp "$temp/lab"
lab=$?

# 5 is pytest's "no test was selected" (a machine where the container test is skipped still selects it: not 5)
status() { case "$1" in 0) echo passed ;; 5) echo "none selected" ;; *) echo "FAILED (exit $1)" ;; esac; }
echo "== the suite in $(( ($(date +%s) - started) / 60 )) min: tests without a lab $(status $no_lab)," \
     "the container test $(status $container_test), the lab tests $(status $lab)"
for code in "$no_lab" "$container_test" "$lab"; do
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then
        exit 1
    fi
done
exit 0
