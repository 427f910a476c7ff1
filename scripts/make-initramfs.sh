#!/usr/bin/env bash
# scripts/make-initramfs.sh [OUTPUT]: a gzipped initramfs (newc cpio) whose
# /init is a static busybox shell on the serial console, for booting a real
# Linux under tsvmm (README, "Booting a real Linux kernel"). Checks its tools
# first and names the Debian package of each one missing; checks what it
# made, so it never leaves a small broken image behind. OUTPUT defaults to
# initramfs.cpio.gz. Runs as any user: without root, /dev/console cannot be
# created in the image, so /init mounts devtmpfs and opens the console itself.
set -euo pipefail

out=${1:-initramfs.cpio.gz}
if [ $# -gt 1 ] || [ "$out" = "-h" ] || [ "$out" = "--help" ]; then
  echo "usage: scripts/make-initramfs.sh [OUTPUT]   (default: initramfs.cpio.gz)" >&2
  [ "$out" = "-h" ] || [ "$out" = "--help" ] && exit 0
  exit 2
fi

fail() { echo "make-initramfs: $*" >&2; exit 1; }

missing=()
command -v cpio >/dev/null || missing+=("cpio (apt-get install cpio)")
command -v gzip >/dev/null || missing+=("gzip (apt-get install gzip)")
busybox=${BUSYBOX:-$(command -v busybox || true)}
if [ -z "$busybox" ]; then
  missing+=("busybox (apt-get install busybox-static)")
elif ldd "$busybox" >/dev/null 2>&1; then
  # A dynamic busybox would need the host's libc in the image: /init would not start.
  missing+=("a static busybox: $busybox is dynamically linked (apt-get install busybox-static, which replaces it)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  fail "missing $(IFS=';'; echo "${missing[*]}" | sed 's/;/; /g')"
fi

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging"/{bin,dev,proc,sys}
cp "$busybox" "$staging/bin/busybox"
cat > "$staging/init" <<'INIT'
#!/bin/busybox sh
# The kernel runs this as PID 1. Without /dev/console in the image its
# stdio is closed: mount devtmpfs and open the console first.
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "initramfs: $(uname -sr), busybox shell on the console; reboot -f ends tsvmm (exit 0)"
exec setsid cttyhack sh
INIT
chmod 755 "$staging/init"
if [ "$(id -u)" -eq 0 ]; then
  # The kernel opens it for /init's stdio before /init runs.
  mknod -m 600 "$staging/dev/console" c 5 1
fi

tmp_out="$out.tmp.$$"
(cd "$staging" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -9 > "$tmp_out" \
  || { rm -f "$tmp_out"; fail "cpio or gzip failed; nothing written to $out"; }

# What came out must hold /init and busybox and be about busybox's size: a
# pipeline with a missing tool "succeeds" with a 20-byte archive.
listing=$(gzip -dc "$tmp_out" | cpio --quiet -t 2>/dev/null || true)
size=$(stat -c %s "$tmp_out")
min_size=$(( $(stat -c %s "$busybox") / 4 ))
if ! grep -qx 'init' <<<"$listing" || ! grep -qx 'bin/busybox' <<<"$listing" || [ "$size" -lt "$min_size" ]; then
  rm -f "$tmp_out"
  fail "the image came out wrong ($size bytes; /init or bin/busybox missing, or smaller than $min_size bytes); nothing written to $out"
fi
mv "$tmp_out" "$out"
echo "make-initramfs: $out ($size bytes): /init runs a busybox shell on ttyS0; boot it with --initrd $out --cmdline rdinit=/init"
