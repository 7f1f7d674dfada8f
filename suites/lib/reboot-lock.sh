#!/bin/bash
# A cluster-wide reboot lock in etcd, as Flatcar's locksmith takes one: at most one node
# updates and reboots at a time. The key holds the holder's name; taking it is an etcd
# transaction that succeeds only if the key does not exist (or already names the holder).
#
#   reboot-lock.sh take HOLDER      exit 0: taken; exit 1: held by someone else (named)
#   reboot-lock.sh release HOLDER   exit 0: released; exit 1: not held by HOLDER
#   reboot-lock.sh holder           prints the holder, or "none"
set -euo pipefail
export ETCDCTL_API=3
KEY=/aviary/reboot-lock
holder() { local h; h=$(etcdctl get --print-value-only "$KEY"); echo "${h:-none}"; }
case ${1:-} in
    take)
        me=$2
        out=$(printf 'create("%s") = "0"\n\nput %s %s\n\n\n' "$KEY" "$KEY" "$me" | etcdctl txn)
        if [ "$(head -1 <<< "$out")" = SUCCESS ] || [ "$(holder)" = "$me" ]; then
            echo "reboot lock taken by $me"
        else
            echo "reboot lock is held by $(holder); $me waits" >&2; exit 1
        fi ;;
    release)
        me=$2
        out=$(printf 'value("%s") = "%s"\n\ndel %s\n\n\n' "$KEY" "$me" "$KEY" | etcdctl txn)
        [ "$(head -1 <<< "$out")" = SUCCESS ] || { echo "reboot lock is held by $(holder), not $me" >&2; exit 1; }
        echo "reboot lock released by $me" ;;
    holder) holder ;;
    *) echo "usage: reboot-lock.sh take|release HOLDER, or holder" >&2; exit 2 ;;
esac
