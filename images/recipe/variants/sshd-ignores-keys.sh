#!/bin/bash
# Variant: a broken candidate whose sshd no longer reads Ignition's key file: an earlier
# sshd_config.d drop-in (sshd keeps the first value it reads) sets AuthorizedKeysFile to
# .ssh/authorized_keys only, overriding 50-aviary.conf's .ssh/authorized_keys.d/ignition.
# The machine boots and is provisioned (the key is in ~core/.ssh/authorized_keys.d/ignition),
# sshd answers with its banner, and refuses the run's key.
# A harness must report that SSH answered but refused the key (authentication), not a boot failure.
#   sshd-ignores-keys.sh ROOTDIR
set -euo pipefail
root=$1
grep -q '^AuthorizedKeysFile .*authorized_keys.d/ignition' "$root/etc/ssh/sshd_config.d/50-aviary.conf" \
    || { echo "sshd-ignores-keys.sh: 50-aviary.conf does not set AuthorizedKeysFile" >&2; exit 1; }
cat > "$root/etc/ssh/sshd_config.d/10-aviary-variant.conf" <<'CONF'
# variant sshd-ignores-keys: read only ~/.ssh/authorized_keys (not Ignition's authorized_keys.d/ignition).
AuthorizedKeysFile .ssh/authorized_keys
CONF
chmod 0644 "$root/etc/ssh/sshd_config.d/10-aviary-variant.conf"
