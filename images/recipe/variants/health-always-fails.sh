#!/bin/bash
# Variant: a broken candidate whose boot-health check always fails, so its slot is
# never marked good. An upgrade to it must fall back to the previous slot on the
# next reboot; a suite that expects the new slot to stay must fail on it.
#   health-always-fails.sh ROOTDIR
set -euo pipefail
root=$1
install -d -m 0755 "$root/etc/aviary/health.d"
cat > "$root/etc/aviary/health.d/50-variant-broken" <<'CHECK'
#!/bin/sh
echo "variant health-always-fails: this candidate is broken on purpose" >&2
exit 1
CHECK
chmod 0755 "$root/etc/aviary/health.d/50-variant-broken"
