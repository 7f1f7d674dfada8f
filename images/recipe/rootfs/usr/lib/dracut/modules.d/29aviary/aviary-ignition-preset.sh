#!/bin/sh
# Apply the presets Ignition wrote for units with "enabled: true|false".
set -eu
units=
for preset in /sysroot/etc/systemd/system-preset/*ignition*.preset; do
    [ -f "$preset" ] || continue
    units="$units $(sed -n 's/^[[:space:]]*\(enable\|disable\)[[:space:]]\{1,\}\([^[:space:]]\{1,\}\).*/\2/p' "$preset")"
done
set -- $units
if [ "$#" -eq 0 ]; then
    echo "aviary: no Ignition presets to apply"
    exit 0
fi
echo "aviary: applying Ignition presets to /sysroot: $*"
exec systemctl --root=/sysroot preset "$@"
