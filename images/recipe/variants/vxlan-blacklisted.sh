#!/bin/bash
# Variant: a candidate whose kernel cannot make VXLAN devices (the vxlan module is
# blacklisted and its loading refused), as when a kernel config or packaging change
# drops a module. Host-gw pod networking still works; an overlay must fail, and say why.
#   vxlan-blacklisted.sh ROOTDIR
set -euo pipefail
root=$1
install -d -m 0755 "$root/etc/modprobe.d"
cat > "$root/etc/modprobe.d/50-aviary-variant-no-vxlan.conf" <<'CONF'
# variant vxlan-blacklisted: this candidate's kernel has no usable vxlan module
blacklist vxlan
install vxlan /bin/false
CONF
