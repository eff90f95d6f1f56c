#!/usr/bin/env bash
# Shows that each loom model catches the bug it guards against: builds the workspace
# with one `uringo_loom_mutation` switched on at a time (a weakened ordering or a
# removed check in the real code, see README.md) and checks that the model fails.
#
#   loom-tests/mutations.sh              # every mutation
#   loom-tests/mutations.sh park_token   # just these
#
# Each mutation is a separate RUSTFLAGS build (the whole dependency graph is rebuilt
# when RUSTFLAGS change), in target/loom-mutations. Exits non-zero if a mutated build
# does not compile or a model passes with its mutation in.
set -euo pipefail
cd "$(dirname "$0")/.."

# mutation  model (test name)  what the model sees
MUTATIONS=(
  "steal_ordering      queue::owner_push_pop_vs_stealer"
  "inject_closed_check inject::push_vs_close_and_drain"
  "idle_fence          idle::parking_worker_never_misses_published_work"
  "searcher_handoff    idle::last_searcher_hands_off"
  "remote_notify       idle::parking_worker_sees_injected_work"
  "notified_check      task::wake_while_running"
  "timer_fire_cas      timer::fire_vs_cancel_from_another_thread"
  "count_out_once      task::shutdown_drain_vs_completion_counts_out_once"
  "join_release        task::registry_entry_goes_once_output_taken_or_handle_dropped"
)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/loom-mutations}
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
failed=0
for entry in "${MUTATIONS[@]}"; do
  read -r mutation model <<<"$entry"
  if [ $# -gt 0 ] && [[ ! " $* " == *" $mutation "* ]]; then
    continue
  fi
  export RUSTFLAGS="--cfg loom --cfg uringo_loom_mutation=\"$mutation\""
  echo "== $mutation -> $model"
  if ! cargo test -q -p uringo-loom-tests --release --test models --no-run 2>/tmp/uringo-mutation-build.log; then
    cat /tmp/uringo-mutation-build.log
    echo "!! $mutation: the mutated build does not compile"
    failed=1
    continue
  fi
  start=$(date +%s.%N)
  set +e
  out=$(cargo test -q -p uringo-loom-tests --release --test models -- --exact "$model" 2>&1)
  status=$?
  set -e
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  if [ $status -eq 0 ]; then
    echo "!! $mutation: $model PASSED with the bug in"
    failed=1
  else
    reason=$(grep -m1 -A1 "panicked at" <<<"$out" | tail -1)
    printf '   caught in %.1fs: %s\n' "$elapsed" "$reason"
  fi
done
exit $failed
