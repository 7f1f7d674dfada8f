#!/bin/sh
# This node's member of a 3-member etcd test cluster (node-a, node-b, node-c on
# 10.77.0.11-13), on its cluster address. Data in /var/lib/etcd (the STATE partition:
# kept across A/B updates). Elections are slow under TCG: heartbeat 250 ms, election
# timeout 5 s.
n=$(hostname)
a=$(ip -o -4 addr show | awk '$4 ~ /^10[.]77[.]0[.]/ { split($4, p, "/"); print p[1]; exit }')
[ -n "$a" ] || { echo "etcd-member: no 10.77.0.x address" >&2; exit 1; }
exec /usr/bin/etcd --name "$n" --data-dir /var/lib/etcd/aviary \
    --listen-peer-urls "http://$a:2380" --initial-advertise-peer-urls "http://$a:2380" \
    --listen-client-urls "http://$a:2379,http://127.0.0.1:2379" --advertise-client-urls "http://$a:2379" \
    --initial-cluster node-a=http://10.77.0.11:2380,node-b=http://10.77.0.12:2380,node-c=http://10.77.0.13:2380 \
    --initial-cluster-state new --initial-cluster-token aviary \
    --heartbeat-interval 250 --election-timeout 5000
