#!/usr/bin/env bash
# scripts/make-disk-images.sh OUTDIR [mbr|grub ...]
#
# Builds raw disk images for booting SeaBIOS from a (virtio-blk) disk:
#
#   OUTDIR/mbr.img   1 MiB: guests/mbr (sector 0 + stage 2 from LBA 1; built here with make)
#                    and 16 pattern sectors at LBA 16..31 that it reads and checks:
#                    byte i of sector s = (s*7 + i) & 0xff, bytes 0..3 = s (32-bit LE).
#   OUTDIR/grub.img  9 MiB: Debian's GRUB (grub-pc-bin), installed the way grub-install
#                    does it but with no loop device, mount or root: boot.img in sector 0
#                    (BPB/partition table kept, drive check nop'ed, kernel sector 1),
#                    core.img (grub-mkimage -O i386-pc) in the post-MBR gap at LBA 1..,
#                    one FAT16 partition (type 0x06, LBA 2048.., 8 MiB, mkfs.vfat + mcopy)
#                    holding /boot/grub/grub.cfg and /hello.txt. grub.cfg switches GRUB to
#                    COM1, echoes a marker, cats /hello.txt and reboots.
#
# Without image names it builds both. Every tool is checked first; each missing one
# is one line on stderr naming its Debian package (npm run setup installs them;
# this script installs nothing).
# The output is byte-for-byte reproducible (fixed volume id and timestamps).
# Exit status: 0 built, 1 a tool is missing or a step failed, 2 bad arguments.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [mbr|grub ...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1
shift
want_mbr=0 want_grub=0
[ $# -eq 0 ] && set -- mbr grub
for image in "$@"; do
  case $image in
    mbr) want_mbr=1 ;;
    grub) want_grub=1 ;;
    *) echo "make-disk-images: unknown image '$image' (mbr or grub)" >&2; usage ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GRUB_DIR=/usr/lib/grub/i386-pc
# the GRUB modules built into core.img: nothing is loaded from the disk later
GRUB_MODULES="biosdisk part_msdos fat normal serial terminal cat echo configfile reboot halt"
MBR_SECTORS=2048           # mbr.img: 1 MiB
PAT_LBA=16 PAT_COUNT=16    # what guests/mbr/mbr.S checks
PART_START=2048            # grub.img: the FAT partition at 1 MiB, 8 MiB long
PART_SECTORS=16384
FIXED_TIME='2024-01-01 00:00:00 UTC'

# ---- tools ----
missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)")
}
check_tools() {
  missing=()
  need dd coreutils
  need truncate coreutils
  need cmp diffutils
  if [ $want_mbr = 1 ]; then
    need make make; need gcc gcc; need ld binutils; need objcopy binutils
  fi
  if [ $want_grub = 1 ]; then
    need grub-mkimage grub-common
    [ -f $GRUB_DIR/boot.img ] && [ -f $GRUB_DIR/kernel.img ] || missing+=("$GRUB_DIR/boot.img (Debian package grub-pc-bin)")
    need mkfs.vfat dosfstools
    need mcopy mtools; need mmd mtools
  fi
}
check_tools
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "make-disk-images: missing $m" >&2; done
  exit 1
fi

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- helpers ----
# le32 VALUE: four bytes, little endian, as printf escapes
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
# put FILE OFFSET BYTES-AS-PRINTF-ESCAPES: overwrite bytes in place
put() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# ---- mbr.img ----
if [ $want_mbr = 1 ]; then
  make -s -C "$root/guests/mbr" >&2
  bin=$root/guests/out/mbr.bin
  size=$(stat -c %s "$bin")
  if [ "$size" -gt $((PAT_LBA * 512)) ]; then
    echo "make-disk-images: $bin is $size bytes; it must end before the pattern at LBA $PAT_LBA" >&2
    exit 1
  fi
  img=$tmp/mbr.img
  truncate -s $((MBR_SECTORS * 512)) "$img"
  dd if="$bin" of="$img" conv=notrunc status=none
  pattern=
  for ((s = PAT_LBA; s < PAT_LBA + PAT_COUNT; s++)); do
    pattern+=$(le32 $s)
    for ((i = 4; i < 512; i++)); do printf -v byte '\\x%02x' $(((s * 7 + i) & 255)); pattern+=$byte; done
  done
  printf "$pattern" > "$tmp/pattern.bin"
  [ "$(stat -c %s "$tmp/pattern.bin")" = $((PAT_COUNT * 512)) ] || { echo "make-disk-images: pattern is not $PAT_COUNT sectors" >&2; exit 1; }
  dd if="$tmp/pattern.bin" of="$img" bs=512 seek=$PAT_LBA conv=notrunc status=none
  mv "$img" "$out/mbr.img"
  echo "make-disk-images: $out/mbr.img (guests/mbr $((size / 512)) sectors, pattern at LBA $PAT_LBA..$((PAT_LBA + PAT_COUNT - 1)))" >&2
fi

# ---- grub.img ----
if [ $want_grub = 1 ]; then
  # core.img: diskboot.img (its blocklist already says "LBA 2, N-1 sectors", right for
  # core.img at LBA 1) + the kernel and modules; $prefix on the FAT partition
  grub-mkimage -O i386-pc -d $GRUB_DIR -o "$tmp/core.img" -p '(hd0,msdos1)/boot/grub' $GRUB_MODULES
  core_sectors=$((($(stat -c %s "$tmp/core.img") + 511) / 512))
  if [ $((1 + core_sectors)) -gt $PART_START ]; then
    echo "make-disk-images: core.img is $core_sectors sectors; it does not fit before LBA $PART_START" >&2
    exit 1
  fi

  # the FAT16 partition
  cat > "$tmp/grub.cfg" <<'EOF'
# grub.img (scripts/make-disk-images.sh): prove GRUB ran, read the FAT partition, reset.
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
echo "grub: grub.cfg running"
cat /hello.txt
echo "grub: rebooting"
reboot
EOF
  echo 'grub: hello from the FAT partition' > "$tmp/hello.txt"
  touch -d "$FIXED_TIME" "$tmp/grub.cfg" "$tmp/hello.txt"
  part=$tmp/part.img
  truncate -s $((PART_SECTORS * 512)) "$part"
  mkfs.vfat --invariant -F 16 -s 2 -i 4752554b -n GRUBFAT -h $PART_START "$part" >/dev/null
  export MTOOLS_SKIP_CHECK=1 MTOOLS_NO_VFAT=1
  # mmd/mcopy stamp directories with the current time: fake a fixed clock for them
  SOURCE_DATE_EPOCH=$(date -d "$FIXED_TIME" +%s) mmd -i "$part" ::/boot ::/boot/grub
  mcopy -m -i "$part" "$tmp/grub.cfg" ::/boot/grub/grub.cfg
  mcopy -m -i "$part" "$tmp/hello.txt" ::/hello.txt

  img=$tmp/grub.img
  truncate -s $(((PART_START + PART_SECTORS) * 512)) "$img"
  dd if=$GRUB_DIR/boot.img of="$img" conv=notrunc status=none
  dd if="$tmp/core.img" of="$img" bs=512 seek=1 conv=notrunc status=none
  dd if="$part" of="$img" bs=512 seek=$PART_START conv=notrunc status=none
  # boot.img as grub-bios-setup patches it for a hard disk:
  put "$img" $((0x5c)) "$(le32 1)\\x00\\x00\\x00\\x00"   # kernel sector (64-bit LBA of core.img)
  put "$img" $((0x64)) '\xff'                            # boot drive: 0xff = use DL
  put "$img" $((0x66)) '\x90\x90'                        # drive check jmp -> nops (trust DL >= 0x80)
  # partition table: boot.img has floppy-probe code from 0x1be on, which grub-bios-setup
  # replaces with the disk's table for a hard disk; here: zeros (entries 2..4 empty), the
  # disk signature, then entry 1 = FAT16 (type 0x06), active, LBA,
  # CHS as 0xfe/0xff/0xff ("use LBA"); 0x1fe stays boot.img's 55 aa
  dd if=/dev/zero of="$img" bs=1 seek=$((0x1b8)) count=$((0x1fe - 0x1b8)) conv=notrunc status=none
  put "$img" $((0x1b8)) '\x47\x52\x55\x42\x00\x00'
  put "$img" $((0x1be)) "\\x80\\xfe\\xff\\xff\\x06\\xfe\\xff\\xff$(le32 $PART_START)$(le32 $PART_SECTORS)"
  if ! cmp -s -n 2 -i 510:0 "$img" <(printf '\x55\xaa'); then
    echo "make-disk-images: grub.img lost its boot signature" >&2
    exit 1
  fi
  mv "$img" "$out/grub.img"
  echo "make-disk-images: $out/grub.img (core.img $core_sectors sectors at LBA 1, FAT16 at LBA $PART_START..$((PART_START + PART_SECTORS - 1)))" >&2
fi
