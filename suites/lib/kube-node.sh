#!/bin/bash
# What kubelet, a CNI network plugin and kube-proxy do on a Kubernetes node, done by hand
# with the node's real containerd, CNI plugins (bridge, host-local, portmap) and kernel —
# the reference images carry no kubelet (no package is reachable here). Suites copy this
# file into their nodes and run it with sudo. Node N (cluster address 10.77.0.1N) owns the
# pod CIDR 10.244.N.0/24.
#
#   kube-node.sh init [MTU]            CNI config for this node's pod CIDR; containerd up; image in
#   kube-node.sh routes host-gw N…     pod CIDRs of nodes N… via their cluster addresses
#   kube-node.sh routes vxlan N…       the same over a VXLAN overlay (VNI 42, UDP 4789)
#   kube-node.sh pod NAME [HOSTPORT:PORT] -- CMD…   a pod: netns, CNI ADD, container in it
#   kube-node.sh ip NAME               the pod's IP
#   kube-node.sh exec NAME CMD…        run CMD in the pod's network namespace
#   kube-node.sh service VIP PORT IP…  kube-proxy's job: VIP:PORT DNATed at random to IP:PORT…
set -euo pipefail
die() { echo "kube-node: $*" >&2; exit 1; }
CNI_BIN=/usr/lib/cni
CONF=/etc/cni/net.d/10-aviary-pods.conflist
STATE=/run/aviary-pods
IMAGE=docker.io/aviary/busybox:1.35
NS=k8s.io
ctr() { command ctr -n "$NS" "$@"; }

cluster_dev() {  # the NIC holding this node's 10.77.0.x address
    ip -o -4 addr show | awk '$4 ~ /^10\.77\.0\./ { print $2; exit }'
}
node_index() {
    local a; a=$(ip -o -4 addr show dev "$(cluster_dev)" | awk '{ split($4, p, "/"); print p[1] }')
    [[ $a =~ ^10\.77\.0\.1([1-9])$ ]] || die "this node's cluster address $a is not 10.77.0.1N"
    echo "${BASH_REMATCH[1]}"
}

cmd_init() {
    local mtu=${1:-1500} n; n=$(node_index)
    mkdir -p "$(dirname "$CONF")" "$STATE"
    cat > "$CONF" <<JSON
{ "cniVersion": "1.0.0", "name": "aviary-pods", "plugins": [
  { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "mtu": $mtu,
    "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.244.$n.0/24" }]],
              "routes": [{ "dst": "0.0.0.0/0" }] } },
  { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true } ] }
JSON
    sysctl -qw net.ipv4.ip_forward=1
    systemctl start containerd
    gunzip -kf /var/tmp/busybox.tar.gz
    ctr images import --all-platforms /var/tmp/busybox.tar > /dev/null
    local images; images=$(ctr images ls -q)
    grep -qx "$IMAGE" <<< "$images" || die "image $IMAGE not imported (containerd has: $images)"
    echo "node $n: pod CIDR 10.244.$n.0/24, MTU $mtu"
}

cmd_routes() {
    local mode=$1; shift
    local me; me=$(node_index)
    local dev; dev=$(cluster_dev)
    if [ "$mode" = vxlan ]; then
        if ! ip link show vxlan0 > /dev/null 2>&1; then
            local err
            err=$(ip link add vxlan0 type vxlan id 42 dstport 4789 local "10.77.0.1$me" dev "$dev" 2>&1) \
                || die "this kernel cannot make a VXLAN device (ip link add … type vxlan: $err; modprobe vxlan: $(modprobe vxlan 2>&1 || true))"
            ip addr add "10.245.0.$me/24" dev vxlan0
            ip link set vxlan0 mtu $(( $(cat "/sys/class/net/$dev/mtu") - 50 )) up
        fi
    fi
    for n in "$@"; do
        [ "$n" = "$me" ] && continue
        case $mode in
            host-gw) ip route replace "10.244.$n.0/24" via "10.77.0.1$n" dev "$dev" ;;
            vxlan)
                bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst "10.77.0.1$n"
                ip route replace "10.244.$n.0/24" via "10.245.0.$n" dev vxlan0 ;;
            *) die "routes: mode must be host-gw or vxlan, not $mode" ;;
        esac
    done
    ip route show | grep '^10\.244\.'
}

# Runs each plugin of the conflist for ADD, chaining prevResult, as a runtime does.
cni_add() {
    local name=$1 ports=$2 prev=null conf plugin
    local count; count=$(jq '.plugins | length' "$CONF")
    for ((i = 0; i < count; i++)); do
        plugin=$(jq -c ".plugins[$i]" "$CONF")
        conf=$(jq -c --argjson prev "$prev" --argjson ports "$ports" --argjson p "$plugin" \
            '{cniVersion, name} + $p
             + (if $prev == null then {} else {prevResult: $prev} end)
             + (if ($p.capabilities.portMappings // false) then {runtimeConfig: {portMappings: $ports}} else {} end)' "$CONF")
        prev=$(CNI_COMMAND=ADD CNI_CONTAINERID="$name" CNI_NETNS="/var/run/netns/$name" CNI_IFNAME=eth0 \
            CNI_PATH=$CNI_BIN "$CNI_BIN/$(jq -r .type <<< "$plugin")" <<< "$conf") \
            || die "CNI ADD failed in plugin $(jq -r .type <<< "$plugin"): $prev"
    done
    echo "$prev" > "$STATE/$name.json"
}

cmd_pod() {
    local name=$1; shift
    local ports='[]'
    if [ "${1:-}" != -- ]; then
        local hp=${1%%:*} cp=${1##*:}; shift
        ports="[{\"hostPort\": $hp, \"containerPort\": $cp, \"protocol\": \"tcp\"}]"
    fi
    [ "${1:-}" = -- ] || die "pod: expected -- before the command"; shift
    ip netns add "$name"
    ip netns exec "$name" ip link set lo up
    cni_add "$name" "$ports"
    ctr run -d --with-ns "network:/var/run/netns/$name" --env "POD_NAME=$name" "$IMAGE" "$name" "$@" > /dev/null
    echo "pod $name: $(cmd_ip "$name")"
}

cmd_ip() { jq -r '.ips[0].address' "$STATE/$1.json" | cut -d/ -f1; }

# Like a debug container sharing the pod's network namespace: the node's own tools (curl,
# ping -M do, bash's /dev/tcp) with the pod's interfaces, address and routes. (busybox wget
# run through `ctr tasks exec` segfaulted here, so clients are not run inside the pod's
# container.)
cmd_exec() {
    local name=$1; shift
    [ -e "/var/run/netns/$name" ] || die "no pod $name on this node"
    ip netns exec "$name" "$@"
}

cmd_service() {
    local vip=$1 port=$2; shift 2
    [ "$#" -gt 0 ] || die "service: no backends"
    local map="" i=0
    for b in "$@"; do map+="${map:+, }$i : $b"; i=$((i + 1)); done
    local t="svc_${vip//./_}_$port"   # a table per service port
    nft -f - <<NFT
table ip $t
delete table ip $t
table ip $t {
    chain services {
        ip daddr $vip tcp dport $port dnat to numgen random mod $# map { $map }
    }
    chain prerouting { type nat hook prerouting priority dstnat; jump services; }
    chain output { type nat hook output priority -100; jump services; }
}
NFT
    echo "service $vip:$port → $*"
}

[ "$(id -u)" -eq 0 ] || die "run me as root (sudo)"
c=${1:-}; shift || true
case $c in
    init | routes | pod | ip | exec | service) "cmd_$c" "$@" ;;
    *) die "unknown command '$c' (init, routes, pod, ip, exec, service)" ;;
esac
