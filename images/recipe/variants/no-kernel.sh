#!/bin/bash
# Variant: a broken candidate whose slot A kernel is not a kernel (the file is there, so
# GRUB's "[ -f ]" check passes, but its contents are garbage), as when an image is cut from a
# truncated or corrupted build. GRUB starts, picks slot A, and its `linux` command fails
# ("invalid magic number"); no kernel ever starts, so nothing comes after GRUB's messages.
# A harness must report that the boot stopped in the boot loader (GRUB's error), not wait
# for SSH.
#   no-kernel.sh ROOTDIR
set -euo pipefail
root=$1
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] && [ -f "${kernels[0]}" ] || { echo "no-kernel.sh: expected one /boot/vmlinuz-*" >&2; exit 1; }
# 64 KiB of text: no bzImage header (boot_flag 0xAA55 at 0x1FE, "HdrS" at 0x202).
head -c 65536 < <(yes 'aviary variant no-kernel: this is not a kernel image') > "${kernels[0]}"
