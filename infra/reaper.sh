#!/usr/bin/env bash
# reaper.sh <supervisor-pid> <pid-dir>
# Runs detached beside a supervisor (npm start, the test setup). When the
# supervisor dies without cleaning up (SIGKILL, a killed terminal), stops every
# process group whose pid file is still in <pid-dir>: SIGTERM, then SIGKILL
# after 10 s. A supervisor that stops its children removes their pid files,
# so after an orderly exit this does nothing.
sup="$1"; dir="$2"
while kill -0 "$sup" 2>/dev/null; do sleep 1; done
pids=()
for f in "$dir"/*.pid; do
  [ -f "$f" ] || continue
  p="$(cat "$f" 2>/dev/null)"
  case "$p" in ''|*[!0-9]*) continue ;; esac
  pids+=("$p")
  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
done
for _ in $(seq 1 100); do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
for f in "$dir"/*.pid; do
  [ -f "$f" ] || continue
  p="$(cat "$f" 2>/dev/null)"
  kill -0 "$p" 2>/dev/null || rm -f "$f"
done
