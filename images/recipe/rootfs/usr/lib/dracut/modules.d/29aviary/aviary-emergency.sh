#!/bin/sh
# Report why the first-boot initramfs failed, then power off.
echo "aviary-emergency: the first-boot initramfs failed; powering off"
systemctl --no-legend --plain --failed 2>/dev/null | while read -r unit _; do
    echo "aviary-emergency: failed unit: $unit"
done
journalctl -q -b -o cat -t ignition 2>/dev/null \
    | grep -E 'CRITICAL|ERROR|failed' | tail -n 20 | sed 's/^/aviary-emergency: ignition: /'
# emergency.service powers off when this exits (SuccessAction/FailureAction).
