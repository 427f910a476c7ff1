// Reading and loading a bzImage (boot.rst, "The Real-Mode Kernel Header" and
// "Loading The Rest of The Kernel"). tsvmm enters through the 64-bit entry
// point, so the real-mode setup code is never run: only its header is kept
// (for the zero page) and the protected-mode part is loaded, at 1 MiB like
// crosvm does, or at pref_address for a kernel that cannot be relocated.

import { GuestMemory, hex } from './guest-memory';
import { HIGH_MEMORY_START, KERNEL_START, MMIO_GAP_START } from '../layout';
import { BOOT_FLAG_MAGIC, BOOT_KERNEL_ALIGNMENT, HDRS_MAGIC, LOADFLAGS_LOADED_HIGH, SETUP_HEADER } from './boot-params';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** boot.rst counts the setup in 512-byte sectors. */
const SECTOR_BYTES = 512;
/** "If the setup_sects field contains 0, the real value is 4." */
const DEFAULT_SETUP_SECTS = 4;
/**
 * The least protected-mode code a file must hold to be worth loading: up to
 * and past the 64-bit entry at +0x200. A file shorter than syssize promises
 * is loaded as it is (QEMU and GRUB do the same; Debian's memtest86+ 6.10
 * promises 8 bytes more than it holds), the rest of the promise zero-filled.
 */
const MIN_PAYLOAD_BYTES = 0x200 + 16;
/** The setup header lies in the first two sectors, which is all a loader needs to read first. */
const MIN_IMAGE_BYTES = 2 * SECTOR_BYTES;
/** syssize counts 16-byte paragraphs. */
const PARAGRAPH_BYTES = 16;
/** The jump at 0x200 is a short jmp (0xeb) whose signed offset from 0x202 marks the end of the header. */
const SHORT_JUMP_OPCODE = 0xeb;
/** Where the jump's offset is counted from. */
const JUMP_BASE = SETUP_HEADER.jump + 2;
/** Protocol 2.06 added cmdline_size; older kernels are not supported. */
const MIN_BOOT_PROTOCOL = 0x0206;
/** The protocol version that introduced each field read here only when present. */
const PROTOCOL_2_10 = 0x020a; // pref_address, init_size, min_alignment
const PROTOCOL_2_11 = 0x020b; // handover_offset
const PROTOCOL_2_12 = 0x020c; // xloadflags
const PROTOCOL_2_15 = 0x020f; // kernel_info_offset
/** xloadflags bit 0: the kernel has the 64-bit entry point at load address + 0x200. */
const XLF_KERNEL_64 = 0x0001;
/** The 64-bit entry point's offset from the start of the protected-mode code (boot.rst, 64-bit Boot Protocol). */
const ENTRY_64_OFFSET = 0x200;

/** The setup header fields a loader reads, with setup_sects already resolved (0 means 4). */
export interface BzImageHeader {
  setupSects: number;
  /** File offset of the protected-mode code: (setupSects + 1) * 512. */
  setupBytes: number;
  /** Size of the protected-mode code in 16-byte paragraphs. */
  syssize: number;
  /** syssize * 16: the bytes loaded into guest memory. */
  protectedModeBytes: number;
  /** Boot protocol, (major << 8) | minor. */
  version: number;
  loadflags: number;
  kernelAlignment: number;
  relocatable: boolean;
  /** Minimum alignment as a power of two (2.10+), 0 when absent. */
  minAlignment: number;
  xloadflags: number;
  /** Longest command line the kernel accepts, without the NUL. */
  cmdlineSize: number;
  /** Address of the highest byte an initrd may occupy. */
  initrdAddrMax: number;
  /** 0 when absent (before 2.10). */
  prefAddress: number;
  /** Bytes the kernel needs from its run address before it reads the memory map; 0 before 2.10. */
  initSize: number;
  handoverOffset: number;
  kernelInfoOffset: number;
  /** File offset one past the setup header (0x202 + the jump's offset). */
  headerEnd: number;
}

export interface BzImageLoad {
  /** Where the vCPU starts in 64-bit mode, with %rsi at the zero page. */
  entry64: number;
  /** Where the protected-mode code was loaded. */
  kernelStart: number;
  /** One past everything the kernel uses before it reads the e820 map (its load and its init_size window). */
  kernelEnd: number;
  /** File bytes 0x1f1..headerEnd, to copy into the zero page at the same offset. */
  setupHeaderBytes: Uint8Array;
  header: BzImageHeader;
}

export class BzImageError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

export function parseBzImage(image: Uint8Array): BzImageHeader {
  if (image.length < MIN_IMAGE_BYTES) {
    throw new BzImageError(`the kernel file is ${image.length} bytes, too small for a bzImage whose header alone needs the first ${MIN_IMAGE_BYTES}; pass a bzImage (vmlinuz)`);
  }
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const u8 = (offset: number): number => view.getUint8(offset);
  const u16 = (offset: number): number => view.getUint16(offset, true);
  const u32 = (offset: number): number => view.getUint32(offset, true);
  const u64 = (offset: number): number => Number(view.getBigUint64(offset, true));

  const bootFlag = u16(SETUP_HEADER.boot_flag);
  if (bootFlag !== BOOT_FLAG_MAGIC) {
    throw new BzImageError(`boot_flag at ${hex(SETUP_HEADER.boot_flag)} is ${hex(bootFlag)}, not ${hex(BOOT_FLAG_MAGIC)}: this is not a Linux kernel image; pass a bzImage (vmlinuz)`);
  }
  if (u32(SETUP_HEADER.header) !== HDRS_MAGIC) {
    throw new BzImageError(`no "HdrS" magic at ${hex(SETUP_HEADER.header)}: this is not a bzImage of boot protocol 2.00 or later; pass a newer kernel or its ELF vmlinux`);
  }
  const version = u16(SETUP_HEADER.version);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new BzImageError(`the kernel speaks boot protocol ${protocolName(version)}, older than the ${protocolName(MIN_BOOT_PROTOCOL)} tsvmm needs; use a kernel from 2.6.22 or later`);
  }
  const xloadflags = version >= PROTOCOL_2_12 ? u16(SETUP_HEADER.xloadflags) : 0;
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new BzImageError(`the kernel has no 64-bit entry point (xloadflags bit XLF_KERNEL_64 is clear, protocol ${protocolName(version)}); tsvmm boots 64-bit x86_64 kernels only`);
  }
  const loadflags = u8(SETUP_HEADER.loadflags);
  if ((loadflags & LOADFLAGS_LOADED_HIGH) === 0) {
    throw new BzImageError('loadflags bit LOADED_HIGH is clear: this is a zImage meant for 0x10000, not a bzImage; rebuild the kernel as a bzImage');
  }
  if (u8(SETUP_HEADER.jump) !== SHORT_JUMP_OPCODE || u8(SETUP_HEADER.jump + 1) >= 0x80) {
    throw new BzImageError(`the jump at ${hex(SETUP_HEADER.jump)} is not a forward short jmp, so the setup header's length is unknown; the image is damaged`);
  }
  const headerEnd = JUMP_BASE + u8(SETUP_HEADER.jump + 1);

  const setupSects = u8(SETUP_HEADER.setup_sects) || DEFAULT_SETUP_SECTS;
  const setupBytes = (setupSects + 1) * SECTOR_BYTES;
  const syssize = u32(SETUP_HEADER.syssize);
  const protectedModeBytes = syssize * PARAGRAPH_BYTES;
  if (syssize === 0) throw new BzImageError('syssize is 0: the image has no protected-mode kernel; pass a complete bzImage');
  if (image.length < setupBytes + Math.min(protectedModeBytes, MIN_PAYLOAD_BYTES)) {
    throw new BzImageError(
      `the kernel file is ${image.length} bytes but its header promises ${setupBytes} bytes of setup and ${protectedModeBytes} of kernel (${setupBytes + protectedModeBytes}); the file is truncated, copy it again`,
    );
  }
  return {
    setupSects,
    setupBytes,
    syssize,
    protectedModeBytes,
    version,
    loadflags,
    kernelAlignment: u32(SETUP_HEADER.kernel_alignment),
    relocatable: u8(SETUP_HEADER.relocatable_kernel) !== 0,
    minAlignment: version >= PROTOCOL_2_10 ? u8(SETUP_HEADER.min_alignment) : 0,
    xloadflags,
    cmdlineSize: u32(SETUP_HEADER.cmdline_size),
    initrdAddrMax: u32(SETUP_HEADER.initrd_addr_max),
    prefAddress: version >= PROTOCOL_2_10 ? u64(SETUP_HEADER.pref_address) : 0,
    initSize: version >= PROTOCOL_2_10 ? u32(SETUP_HEADER.init_size) : 0,
    handoverOffset: version >= PROTOCOL_2_11 ? u32(SETUP_HEADER.handover_offset) : 0,
    kernelInfoOffset: version >= PROTOCOL_2_15 ? u32(SETUP_HEADER.kernel_info_offset) : 0,
    headerEnd,
  };
}

/**
 * Loads the protected-mode part and says where it runs. A relocatable kernel
 * goes to KERNEL_START; its 64-bit entry then moves itself to
 * max(align_up(load, kernel_alignment), pref_address) (head_64.S, with the
 * BOOT_KERNEL_ALIGNMENT the zero page carries) and needs init_size bytes
 * from there, so that whole window must be RAM below the 32-bit gap.
 */
export function loadBzImage(image: Uint8Array, mem: GuestMemory): BzImageLoad {
  const header = parseBzImage(image);
  const loadAddress = !header.relocatable && header.prefAddress !== 0 ? header.prefAddress : KERNEL_START;
  const runStart = header.relocatable ? Math.max(alignUp(loadAddress, BOOT_KERNEL_ALIGNMENT), header.prefAddress) : loadAddress;
  const kernelEnd = Math.max(loadAddress + header.protectedModeBytes, runStart + header.initSize);

  if (loadAddress < HIGH_MEMORY_START) {
    throw new BzImageError(
      `the kernel is not relocatable and asks to be loaded at pref_address ${hex(loadAddress)}, below ${hex(HIGH_MEMORY_START)}, where the boot tables (zero page, page tables, MP table at 0x9fc00) live; use a relocatable kernel or one linked at 1 MiB or above`,
    );
  }
  if (kernelEnd > MMIO_GAP_START) {
    throw new BzImageError(
      `the kernel needs ${hex(loadAddress)}..${hex(kernelEnd)} (init_size ${mib(header.initSize)} from ${hex(runStart)}), which reaches into the 32-bit MMIO gap at ${hex(MMIO_GAP_START)}; this kernel cannot run here`,
    );
  }
  if (!mem.contains(loadAddress, kernelEnd - loadAddress)) {
    throw new BzImageError(
      `the kernel needs RAM at ${hex(loadAddress)}..${hex(kernelEnd)} (init_size ${mib(header.initSize)} from ${hex(runStart)}) but guest RAM there ends at ${hex(ramEndAt(mem, loadAddress))}; give the guest more memory (--mem)`,
    );
  }
  const present = image.subarray(header.setupBytes, header.setupBytes + header.protectedModeBytes);
  mem.write(loadAddress, present);
  mem.fill(loadAddress + present.length, header.protectedModeBytes - present.length, 0);
  return {
    entry64: loadAddress + ENTRY_64_OFFSET,
    kernelStart: loadAddress,
    kernelEnd,
    setupHeaderBytes: image.slice(SETUP_HEADER.setup_sects, header.headerEnd),
    header,
  };
}

/** One past the RAM region holding `address` (or `address` itself when it is not RAM). */
function ramEndAt(mem: GuestMemory, address: number): number {
  const region = mem.regions.find((r) => address >= r.guestAddress && address < r.guestAddress + r.size);
  return region === undefined ? address : region.guestAddress + region.size;
}

function protocolName(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
