// The Linux zero page (struct boot_params) that a 64-bit kernel finds through
// %rsi at entry. Filled the way crosvm's configure_system does: start from
// zeroes, copy the kernel's own setup header when booting a bzImage, then set
// the fields a boot loader must write (boot.rst "Details of Header Fields").

import { GuestMemory, hex } from './guest-memory';
import { ZERO_PAGE_SIZE, ZERO_PAGE_START } from '../layout';
import { E820_ENTRY_SIZE, E820_MAX_ENTRIES, E820Entry } from './e820';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/**
 * Byte offsets inside struct boot_params, including its embedded struct
 * setup_header (which sits at 0x1f1 in both the zero page and the bzImage
 * file). Source: arch/x86/include/uapi/asm/bootparam.h, Documentation/arch/x86/
 * zero-page.rst and boot.rst ("The Real-Mode Kernel Header").
 */
const BOOT_PARAMS = {
  acpi_rsdp_addr: 0x070, // u64
  ext_ramdisk_image: 0x0c0, // u32, ramdisk_image high 32 bits
  ext_ramdisk_size: 0x0c4, // u32, ramdisk_size high 32 bits
  ext_cmd_line_ptr: 0x0c8, // u32, cmd_line_ptr high 32 bits
  e820_entries: 0x1e8, // u8
  sentinel: 0x1ef, // u8, must stay 0 or the kernel zeroes fields it assumes a broken loader left
  hdr: 0x1f1, // struct setup_header
  edd_mbr_sig_buffer: 0x290, // first field after the setup header's hole
  e820_table: 0x2d0, // struct boot_e820_entry[128]
} as const;

/** struct setup_header fields, as offsets in the zero page (and in the bzImage file). Source: boot.rst. */
export const SETUP_HEADER = {
  setup_sects: 0x1f1, // u8, 0 means 4
  root_flags: 0x1f2, // u16
  syssize: 0x1f4, // u32, protected-mode size in 16-byte paragraphs
  ram_size: 0x1f8, // u16
  vid_mode: 0x1fa, // u16
  root_dev: 0x1fc, // u16
  boot_flag: 0x1fe, // u16, 0xaa55
  jump: 0x200, // u16, 0xeb then the header length - 2 as a signed byte
  header: 0x202, // u32, "HdrS"
  version: 0x206, // u16
  realmode_swtch: 0x208, // u32
  start_sys_seg: 0x20c, // u16
  kernel_version: 0x20e, // u16
  type_of_loader: 0x210, // u8
  loadflags: 0x211, // u8
  setup_move_size: 0x212, // u16
  code32_start: 0x214, // u32
  ramdisk_image: 0x218, // u32
  ramdisk_size: 0x21c, // u32
  bootsect_kludge: 0x220, // u32
  heap_end_ptr: 0x224, // u16
  ext_loader_ver: 0x226, // u8
  ext_loader_type: 0x227, // u8
  cmd_line_ptr: 0x228, // u32
  initrd_addr_max: 0x22c, // u32
  kernel_alignment: 0x230, // u32
  relocatable_kernel: 0x234, // u8
  min_alignment: 0x235, // u8
  xloadflags: 0x236, // u16
  cmdline_size: 0x238, // u32
  hardware_subarch: 0x23c, // u32
  hardware_subarch_data: 0x240, // u64
  payload_offset: 0x248, // u32
  payload_length: 0x24c, // u32
  setup_data: 0x250, // u64
  pref_address: 0x258, // u64
  init_size: 0x260, // u32
  handover_offset: 0x264, // u32
  kernel_info_offset: 0x268, // u32
} as const;

/** The space boot_params reserves for the setup header: it may never grow past edd_mbr_sig_buffer. */
const SETUP_HEADER_MAX_BYTES = BOOT_PARAMS.edd_mbr_sig_buffer - BOOT_PARAMS.hdr;

/** boot_flag: the 0xAA55 boot-sector signature, "the closest thing old Linux kernels have to a magic number". */
export const BOOT_FLAG_MAGIC = 0xaa55;
/** header: "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x53726448;
/** type_of_loader: 0xff is "undefined", for loaders without an assigned id. */
const LOADER_TYPE_UNDEFINED = 0xff;
/** loadflags bit 0: the protected-mode code is loaded at 0x100000. */
export const LOADFLAGS_LOADED_HIGH = 0x01;
/** vid_mode 0xffff: "normal" text mode (boot.rst "vga=normal"), an obligatory field. */
const VID_MODE_NORMAL = 0xffff;
/**
 * kernel_alignment written for every kernel, as crosvm does: the 64-bit entry
 * (head_64.S) aligns its run address up to this value, so it must be nonzero;
 * 16 MiB is the x86_64 default CONFIG_PHYSICAL_START and never below the
 * kernel's own alignment.
 */
export const BOOT_KERNEL_ALIGNMENT = 0x100_0000;
/**
 * Protocol version written when no bzImage header is copied (ELF vmlinux):
 * 2.15, the newest, so the kernel trusts every field we fill (setup_data needs
 * 2.09, the ext_* high halves 2.12).
 */
const DEFAULT_BOOT_PROTOCOL_VERSION = 0x020f;

/** Largest value of a u32 field. */
const MAX_U32 = 0xffff_ffff;
/** 2^32: splits a 64-bit value into the setup header's low half and the ext_* high half. */
const HIGH_HALF = 0x1_0000_0000;

export interface BootParamsOptions {
  /**
   * The bzImage's setup header: file bytes from 0x1f1 to the header's end
   * (loadBzImage().setupHeaderBytes). Omitted for an ELF vmlinux.
   */
  setupHeader?: Uint8Array;
  /** Where the NUL-terminated command line was written, and its length without the NUL. */
  commandLine: { address: number; length: number };
  initrd?: { address: number; size: number };
  /** Guest address of the first struct setup_data, or 0 for none (writeSetupData's result). */
  setupData?: number;
  e820: readonly E820Entry[];
}

export class BootParamsError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

/** Writes struct boot_params at ZERO_PAGE_START; everything not set here is zero. */
export function writeBootParams(mem: GuestMemory, opts: BootParamsOptions): void {
  checkOptions(opts);
  if (!mem.contains(ZERO_PAGE_START, ZERO_PAGE_SIZE)) {
    throw new BootParamsError(`the zero page ${hex(ZERO_PAGE_START)}..${hex(ZERO_PAGE_START + ZERO_PAGE_SIZE)} is not inside guest RAM; the guest needs RAM from address 0`);
  }
  const page = new DataView(new ArrayBuffer(ZERO_PAGE_SIZE));
  const bytes = new Uint8Array(page.buffer);

  let version = DEFAULT_BOOT_PROTOCOL_VERSION;
  if (opts.setupHeader !== undefined) {
    bytes.set(opts.setupHeader, BOOT_PARAMS.hdr);
    version = page.getUint16(SETUP_HEADER.version, true);
  }
  page.setUint16(SETUP_HEADER.version, version, true);
  page.setUint16(SETUP_HEADER.vid_mode, VID_MODE_NORMAL, true);
  page.setUint16(SETUP_HEADER.boot_flag, BOOT_FLAG_MAGIC, true);
  page.setUint32(SETUP_HEADER.header, HDRS_MAGIC, true);
  page.setUint8(SETUP_HEADER.type_of_loader, LOADER_TYPE_UNDEFINED);
  page.setUint8(SETUP_HEADER.loadflags, page.getUint8(SETUP_HEADER.loadflags) | LOADFLAGS_LOADED_HIGH);
  page.setUint32(SETUP_HEADER.kernel_alignment, BOOT_KERNEL_ALIGNMENT, true);

  setSplitU64(page, SETUP_HEADER.cmd_line_ptr, BOOT_PARAMS.ext_cmd_line_ptr, opts.commandLine.address);
  // cmdline_size is the kernel's own limit for a bzImage (boot.rst: the
  // loader reads it), so the image's value stays. An ELF vmlinux brings no
  // header: then, as crosvm and Firecracker do, it is this line's length.
  if (opts.setupHeader === undefined) page.setUint32(SETUP_HEADER.cmdline_size, opts.commandLine.length, true);

  if (opts.initrd !== undefined) {
    setSplitU64(page, SETUP_HEADER.ramdisk_image, BOOT_PARAMS.ext_ramdisk_image, opts.initrd.address);
    setSplitU64(page, SETUP_HEADER.ramdisk_size, BOOT_PARAMS.ext_ramdisk_size, opts.initrd.size);
  }
  page.setBigUint64(SETUP_HEADER.setup_data, BigInt(opts.setupData ?? 0), true);

  page.setUint8(BOOT_PARAMS.e820_entries, opts.e820.length);
  opts.e820.forEach((entry, index) => {
    const at = BOOT_PARAMS.e820_table + index * E820_ENTRY_SIZE;
    page.setBigUint64(at, BigInt(entry.address), true);
    page.setBigUint64(at + 8, BigInt(entry.size), true);
    page.setUint32(at + 16, entry.type, true);
  });

  mem.write(ZERO_PAGE_START, bytes);
}

function checkOptions(opts: BootParamsOptions): void {
  const header = opts.setupHeader;
  if (header !== undefined && (header.length < SETUP_HEADER.version + 2 - BOOT_PARAMS.hdr || header.length > SETUP_HEADER_MAX_BYTES)) {
    throw new BootParamsError(
      `a setup header of ${header.length} bytes cannot be right: it must reach the version field and fit the ${SETUP_HEADER_MAX_BYTES} bytes boot_params keeps for it; pass loadBzImage().setupHeaderBytes`,
    );
  }
  if (opts.e820.length === 0 || opts.e820.length > E820_MAX_ENTRIES) {
    throw new BootParamsError(`the zero page holds 1 to ${E820_MAX_ENTRIES} e820 entries, got ${opts.e820.length}; build the map with e820Map()`);
  }
  const length = opts.commandLine.length;
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_U32) {
    throw new BootParamsError(`command line length ${length} does not fit the 32-bit cmdline_size field; pass the length without the NUL`);
  }
  const values: Array<[string, number]> = [['command line address', opts.commandLine.address], ['setup_data address', opts.setupData ?? 0]];
  if (opts.initrd !== undefined) values.push(['initrd address', opts.initrd.address], ['initrd size', opts.initrd.size]);
  for (const [name, value] of values) {
    if (!Number.isSafeInteger(value) || value < 0) throw new BootParamsError(`${name} ${value} is not a non-negative whole number`);
  }
}

/** Writes a 64-bit value whose low half lives in the setup header and high half in an ext_* field. */
function setSplitU64(page: DataView, lowOffset: number, highOffset: number, value: number): void {
  page.setUint32(lowOffset, value % HIGH_HALF, true);
  page.setUint32(highOffset, Math.floor(value / HIGH_HALF), true);
}
