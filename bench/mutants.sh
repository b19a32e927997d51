#!/usr/bin/env bash
# Mutation check: applies one-line breaks of the product code, one at a time, to a
# scratch copy of the tree (target/mutants/tree; the working tree is never touched),
# runs the tests that should notice, and prints a table: caught (the tests failed) or
# MISSED (they passed). Needs root, like the tests. Exit status: the number missed
# (or not built). The v1 mutants are exercised only where the host has v1 controllers.
#
#   bash bench/mutants.sh            # every mutant
#   bash bench/mutants.sh NAME...    # only these
set -uo pipefail
cd "$(dirname "$0")/.."
src=$PWD
work=$src/target/mutants
tree=$work/tree
# A target dir of its own that stays between runs: each mutant rebuilds only the
# crates it touches.
export CARGO_TARGET_DIR=$work/target

mkdir -p "$tree"
# The tree as committed plus local changes, without build output or git metadata.
tar -C "$src" --exclude=./target --exclude=./.git -cf - . | tar -C "$tree" -xf -

# NAME|FILE|TEXT|REPLACEMENT|TEST ARGS (cargo test ARGS; several runs separated by ;)
mutants() {
    cat <<'LIST'
dfs-later-services|config/src/dependencies.rs|for start in 0..edges.len() {|for start in 0..1.min(edges.len()) {|-p appliance-config --test cycles
duplicate-keys|config/src/tree.rs|if let Some(first) = seen.get(&name) {|if let Some(first) = seen.get(&name).filter(\|_\| false) {|-p appliance-config
config-dotdot|config/src/paths.rs|if path.components().any(\|c\| c == Component::ParentDir) {|if false {|-p appliance-config
archive-dotdot|images/src/archive_path.rs|Component::ParentDir => return Err("refused: path contains '..'"),|Component::ParentDir => {}|-p appliance-images;-p integration-tests --test images
start-order|config/src/dependencies.rs|for dep in deps.into_iter().filter(\|&d\| d != i) {|for dep in deps.into_iter().filter(\|_\| false) {|-p appliance-config;-p integration-tests --test supervisor -- start_and_stop
images-resolve-in-root|supervisor/rootfs/src/sys.rs|.resolve(ResolveFlag::RESOLVE_IN_ROOT \| ResolveFlag::RESOLVE_NO_MAGICLINKS);|.resolve(ResolveFlag::RESOLVE_NO_MAGICLINKS);|-p appliance-images;-p integration-tests --test images
init-128-plus-signal|init/src/reap.rs|128 + libc::WTERMSIG(status)|libc::WTERMSIG(status)|-p integration-tests --test init
v1-cpu-usage-unit|supervisor/cgroups/src/v1.rs|.map(\|ns\| ns / 1000)|.map(\|ns\| ns)|-p integration-tests --test supervisor -- stats_are
v1-memory-usage|supervisor/cgroups/src/v1.rs|"memory.usage_in_bytes"|"memory.limit_in_bytes"|-p integration-tests --test supervisor -- stats_are
v1-pids-limit|supervisor/cgroups/src/v1.rs|fsops::write(&dir.join("pids.max"), &pids.to_string())?;|fsops::write(&dir.join("pids.max"), "max")?;|-p integration-tests --test cgroups -- limits
freeze-returns-early|supervisor/cgroups/src/unified.rs|if notify::wait_for(&events, "frozen", want, deadline)? {|if true {|-p integration-tests --test cgroups -- frozen;-p integration-tests --test supervisor -- freeze_stops
backoff-doubling|supervisor/src/daemon/supervised.rs|.saturating_mul(2)|.saturating_mul(1)|-p integration-tests --test supervisor -- restart_backoff
backoff-cap|supervisor/src/daemon/supervised.rs|.min(self.service.restart_delay_max)||-p integration-tests --test supervisor -- restart_backoff
backoff-reset|supervisor/src/daemon/services.rs|if ran >= RESET_BACKOFF_AFTER {|if ran >= RESET_BACKOFF_AFTER * 100 {|-p integration-tests --test supervisor -- restart_backoff
stop-order|supervisor/src/daemon/services.rs|if waiting && !self.has_stopping_dependent(idx) {|if waiting {|-p integration-tests --test supervisor -- start_and_stop
sighup-reload|supervisor/src/daemon/event_loop.rs|if let Err(err) = self.reload() {|if let Err(err) = Ok::<(), String>(()) {|-p integration-tests --test supervisor -- sighup_reloads
writable-layer-kept|supervisor/src/container/handle.rs|match std::fs::remove_dir_all(layer) {|match Ok::<(), std::io::Error>(()) {|-p integration-tests --test supervisor -- stop_leaves
socket-mode|supervisor/src/daemon/control.rs|None => 0o600,|None => 0o666,|-p integration-tests --test supervisor -- control_socket
notify-sender-check|supervisor/src/daemon/readiness.rs|if !self.list[idx].sent_from_inside(datagram.pid) {|if false {|-p integration-tests --test readiness -- a_notify_service_is_ready
healthy-waits|supervisor/src/daemon/readiness.rs|s if s.is_up() => Some(self.is_ready()),|s if s.is_up() => Some(true),|-p integration-tests --test readiness -- service_healthy
one-shot-rerun|supervisor/src/daemon/services.rs|let completed = dep != name && self.completed_for(&dep, &needed_list);|let completed = dep != name \&\& false;|-p integration-tests --test readiness -- service_completed
LIST
}

wanted=("$@")
caught=0 missed=0 broken=0
printf '%-24s %-8s %s\n' MUTANT RESULT SECONDS
# shellcheck disable=SC2162 # without -r, `\|` in the list is a literal `|`
while IFS='|' read name file from to tests; do
    [ -n "$name" ] || continue
    if [ ${#wanted[@]} -gt 0 ] && [[ " ${wanted[*]} " != *" $name "* ]]; then continue; fi
    cp "$src/$file" "$tree/$file"
    FROM=$from TO=$to perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$tree/$file"
    if cmp -s "$src/$file" "$tree/$file"; then
        echo "bench/mutants.sh: $name: text not found in $file (the code moved: update the list)" >&2
        exit 255
    fi
    start=$(date +%s)
    result=MISSED
    IFS=';' read -ra runs <<<"$tests"
    for run in "${runs[@]}"; do
        # shellcheck disable=SC2086 # the list's test arguments are words
        if ! (cd "$tree" && timeout 1200 cargo test -q $run >"$work/$name.log" 2>&1); then
            result=caught
            # A mutant that does not build says nothing about the tests.
            if grep -q 'error: could not compile' "$work/$name.log"; then
                result=no-build
            fi
            break
        fi
    done
    cp "$src/$file" "$tree/$file"
    case $result in
        caught) caught=$((caught + 1)) ;;
        MISSED) missed=$((missed + 1)) ;;
        *) broken=$((broken + 1)) ;;
    esac
    printf '%-24s %-8s %s\n' "$name" "$result" $(($(date +%s) - start))
done < <(mutants)
echo "caught $caught, missed $missed, did not build $broken (logs in $work)"
exit $((missed + broken))
