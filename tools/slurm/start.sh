#!/usr/bin/env bash
# Start a throwaway one-node SLURM cluster (munged, slurmctld, slurmd) whose files all live under DIR.
#   tools/slurm/start.sh DIR      then run the line it prints (export SLURM_CONF=... PATH=...); sbatch ...
#   tools/slurm/stop.sh DIR       cancels its jobs and stops the daemons (by their pid files)
# For tests and trying the slurm profile on one machine; needs root and Debian's slurm-wlm + munge.
# The node advertises one fake GPU (gres.conf: File=/dev/null) so that --gpus=1 submissions are accepted.
set -euo pipefail
dir=$(realpath -m "${1:?usage: $0 DIR}")
# Two free ports, not SLURM's defaults: a real local cluster, or a second test cluster, may be running.
read -r ctld_port d_port < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("", 0))
print(*(s.getsockname()[1] for s in socks))')
host=$(hostname -s)
here=$(dirname "$(realpath "$0")")

mkdir -p "$dir"/{bin,etc,munge,run,log,spool/ctld,spool/d}
rm -f "$dir"/run/*.pid
chmod 700 "$dir/munge"  # munged refuses a key others can read
# munged wants every directory above its socket searchable by all, which DIR may not be (pytest's is
# not): the socket gets a directory of its own, removed by stop.sh.
socket_dir=$(mktemp -d /tmp/lrstudy-munge.XXXXXX)
chmod 755 "$socket_dir"
echo "$socket_dir" >"$dir/run/munge-socket-dir"
[[ -f $dir/munge/munge.key ]] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$dir/munge/munge.key"; }

# The node's real CPUs and sockets, as slurmd itself reports them. Its memory is claimed to be at least
# 16 GB so that profiles/slurm's requests (8 GB for a run) are accepted on a small CI runner; nothing
# enforces memory here, and the demo's jobs use well under 1 GB.
node=$(slurmd -C | head -1)
cpus=$(grep -o 'CPUs=[0-9]*' <<<"$node" | cut -d= -f2)
mem=$(grep -o 'RealMemory=[0-9]*' <<<"$node" | cut -d= -f2)
node=${node/RealMemory=$mem/RealMemory=$((mem > 16384 ? mem : 16384))}
sed -e "s|@DIR@|$dir|g" -e "s|@SOCKET@|$socket_dir/munge.socket|g" -e "s|@HOST@|$host|g" \
    -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@D_PORT@|$d_port|g" -e "s|@NODE@|$node|" -e "s|@DEFMEM@|$((mem / cpus))|" \
    "$here/slurm.conf.in" >"$dir/etc/slurm.conf"
echo "NodeName=$host Name=gpu File=/dev/null" >"$dir/etc/gres.conf"
export SLURM_CONF=$dir/etc/slurm.conf
# snakemake-executor-plugin-slurm-jobstep 0.6.1 removes every SLURM_* variable but the job's ids before
# it calls srun inside a job, SLURM_CONF included: this srun, first on PATH, puts it back.
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$dir/bin/srun"
chmod +x "$dir/bin/srun"

munged --socket="$socket_dir/munge.socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# Ready when the node takes jobs. A daemon that died, or 30 s without, ends this with the logs.
for _ in $(seq 60); do
    state=$(timeout 5 sinfo -h -N -o %T 2>/dev/null || true)
    [[ $state == idle* ]] && { echo "export SLURM_CONF=$SLURM_CONF PATH=$dir/bin:\$PATH"; exit 0; }
    for name in munged slurmctld slurmd; do  # a daemon writes its pid file once it has forked
        pidfile=$dir/run/$name.pid
        [[ -s $pidfile ]] && ! kill -0 "$(<"$pidfile")" 2>/dev/null && { state="$name exited"; break 2; }
    done
    sleep 0.5
done
echo "SLURM did not come up (${state:-no node state}); logs in $dir/log:" >&2
tail -n 20 "$dir"/log/*.log >&2
exit 1
