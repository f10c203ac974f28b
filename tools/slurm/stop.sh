#!/usr/bin/env bash
# Stop the cluster tools/slurm/start.sh DIR started: cancel its jobs (a failed test may leave some
# running), then stop the daemons by their pid files and wait until they are gone.
set -uo pipefail
dir=$(realpath -m "${1:?usage: $0 DIR}")
export SLURM_CONF=$dir/etc/slurm.conf

alive() { [[ -s $dir/run/$1.pid ]] && kill -0 "$(<"$dir/run/$1.pid")" 2>/dev/null; }

if alive slurmctld; then
    for _ in $(seq 10); do
        jobs=$(timeout 5 squeue -h -t PENDING,RUNNING,COMPLETING -o %A 2>/dev/null) || break
        [[ -z $jobs ]] && break
        timeout 5 scancel $jobs 2>/dev/null
        sleep 0.2
    done
fi
pids=()
for name in slurmd slurmctld munged; do
    alive "$name" && pids+=("$(<"$dir/run/$name.pid")")
done
((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null
for _ in $(seq 50); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || break
    sleep 0.2
done
if ((${#alive[@]})); then
    kill -9 "${alive[@]}" 2>/dev/null
    echo "killed ${alive[*]} after 10 s" >&2
fi
[[ -s $dir/run/munge-socket-dir ]] && rm -rf "$(<"$dir/run/munge-socket-dir")"
exit 0
