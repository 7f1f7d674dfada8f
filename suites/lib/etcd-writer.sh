#!/bin/bash
# A workload of the etcd test cluster: one write a second through the local member, to
# /aviary/<host>/<i>; logs "<unix time> <i> ok|FAIL" to /run/etcd-writes.
#   etcd-writer.sh            (as etcd-writer.service)
#   etcd-writer.sh since T    counts: "ok N FAIL M" for the writes at or after time T
set -u
export ETCDCTL_API=3
if [ "${1:-}" = since ]; then
    exec awk -v t0="$2" '$1 >= t0 { n[$3]++ } END { printf "ok %d FAIL %d\n", n["ok"], n["FAIL"] }' /run/etcd-writes
fi
i=0
while :; do
    i=$((i + 1))
    if etcdctl --command-timeout=3s put "/aviary/$(hostname)/$i" "$(date +%s)" > /dev/null 2>&1; then r=ok; else r=FAIL; fi
    echo "$(date +%s) $i $r" >> /run/etcd-writes
    sleep 1
done
