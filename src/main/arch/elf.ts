// Loads an uncompressed x86_64 kernel (vmlinux, or any ELF64 image linked
// at physical addresses) into guest memory: each PT_LOAD segment goes to its
// p_paddr, and PT_NOTE segments are searched for the Xen PVH entry note.
// The whole image is validated before a single byte is copied, so a bad
// image never leaves a half-written guest. Format: System V gABI "ELF-64
// Object File Format"; PVH note: xen/include/public/elfnote.h; loading rules
// as rust-vmm linux-loader's x86_64 Elf loader.

import { GuestMemory, hex } from './guest-memory';
import { HIGH_MEMORY_START } from '../layout';
import { TsvmmError } from '../../shared/errors';

/** e_ident[0..3]: 0x7f 'E' 'L' 'F'. */
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const;
/** e_ident offsets and the values accepted there. */
const EI_CLASS = 4;
const ELFCLASS64 = 2;
const EI_DATA = 5;
const ELFDATA2LSB = 1;
/** Bytes of e_ident. */
const EI_NIDENT = 16;
/** e_machine value for AMD64 / Intel 64. */
const EM_X86_64 = 62;

/** Elf64_Ehdr size and the offsets of the fields read here. */
const EHDR_BYTES = 64;
const E_MACHINE = 18;
const E_ENTRY = 24;
const E_PHOFF = 32;
const E_PHENTSIZE = 54;
const E_PHNUM = 56;

/** Elf64_Phdr size and field offsets. */
const PHDR_BYTES = 56;
const P_TYPE = 0;
const P_OFFSET = 8;
const P_PADDR = 24;
const P_FILESZ = 32;
const P_MEMSZ = 40;
const P_ALIGN = 48;
/** Program header types used here. */
const PT_LOAD = 1;
const PT_NOTE = 4;

/** Elf64_Nhdr: n_namesz, n_descsz, n_type (32 bits each). */
const NHDR_BYTES = 12;
/** Note name and descriptor are padded to 4 bytes, or to 8 when the segment says p_align = 8. */
const NOTE_ALIGN_DEFAULT = 4;
const NOTE_ALIGN_WIDE = 8;
/** The PVH note: owner "Xen" with its NUL, type XEN_ELFNOTE_PHYS32_ENTRY. */
const XEN_NOTE_NAME = 'Xen\0';
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** The PVH entry is a 32-bit physical address. */
const MAX_PHYS32 = 0xffff_ffff;

/** Which check an ElfError comes from, so callers and tests need not parse messages. */
export type ElfStep =
  | 'magic' | 'class' | 'endianness' | 'machine' | 'header'
  | 'program-headers' | 'segment-file' | 'segment-boot-tables' | 'segment-ram'
  | 'no-load-segment' | 'entry' | 'pvh-note';

export class ElfError extends TsvmmError {
  declare readonly step: ElfStep;

  constructor(step: ElfStep, message: string) {
    super('guest-image', `ELF kernel (${step}): ${message}`, { step });
  }
}

export interface ElfLoadResult {
  /** e_entry: where a 64-bit Linux boot starts (physical, identity-mapped). */
  entry: number;
  /** Lowest guest-physical address a PT_LOAD segment occupies. */
  kernelStart: number;
  /** One past the highest guest-physical address a PT_LOAD segment occupies (bss included). */
  kernelEnd: number;
  /** The XEN_ELFNOTE_PHYS32_ENTRY address, when the kernel supports PVH boot. */
  pvhEntry?: number;
}

interface LoadSegment {
  fileOffset: number;
  fileSize: number;
  guestAddress: number;
  memorySize: number;
}

function safeNumber(value: bigint, step: ElfStep, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(step, `${what} ${hex(value)} is beyond any guest or file address`);
  return Number(value);
}

function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

function checkIdentity(image: Uint8Array): void {
  if (image.length < ELF_MAGIC.length || ELF_MAGIC.some((byte, i) => image[i] !== byte)) {
    throw new ElfError('magic', 'the image does not start with 0x7f "ELF"; pass an uncompressed vmlinux (a bzImage needs the bzImage loader)');
  }
  if (image.length < EI_NIDENT) {
    throw new ElfError('header', `the image is ${image.length} bytes, shorter than the ${EI_NIDENT}-byte ELF identification`);
  }
  if (image[EI_CLASS] !== ELFCLASS64) {
    throw new ElfError('class', `EI_CLASS is ${image[EI_CLASS]}, not ELFCLASS64 (${ELFCLASS64}); build a 64-bit (x86_64) kernel`);
  }
  if (image[EI_DATA] !== ELFDATA2LSB) {
    throw new ElfError('endianness', `EI_DATA is ${image[EI_DATA]}, not little-endian (${ELFDATA2LSB}); x86_64 kernels are little-endian`);
  }
  if (image.length < EHDR_BYTES) {
    throw new ElfError('header', `the image is ${image.length} bytes, shorter than the ${EHDR_BYTES}-byte ELF64 header; the file is truncated`);
  }
}

function readProgramHeaders(image: Uint8Array, view: DataView): { loads: LoadSegment[]; pvhEntry?: number } {
  const phentsize = view.getUint16(E_PHENTSIZE, true);
  const phnum = view.getUint16(E_PHNUM, true);
  const phoff = safeNumber(view.getBigUint64(E_PHOFF, true), 'program-headers', 'e_phoff');
  if (phnum > 0 && phentsize !== PHDR_BYTES) {
    throw new ElfError('program-headers', `e_phentsize is ${phentsize}, not the ${PHDR_BYTES} bytes of an Elf64_Phdr`);
  }
  if (phoff + phnum * PHDR_BYTES > image.length) {
    throw new ElfError('program-headers', `${phnum} program headers at ${hex(phoff)} run past the end of the ${image.length}-byte file; the file is truncated`);
  }

  const loads: LoadSegment[] = [];
  let pvhEntry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PHDR_BYTES;
    const type = view.getUint32(at + P_TYPE, true);
    if (type !== PT_LOAD && type !== PT_NOTE) continue;
    const fileOffset = safeNumber(view.getBigUint64(at + P_OFFSET, true), 'segment-file', `segment ${i} p_offset`);
    const fileSize = safeNumber(view.getBigUint64(at + P_FILESZ, true), 'segment-file', `segment ${i} p_filesz`);
    if (fileOffset + fileSize > image.length) {
      throw new ElfError('segment-file', `segment ${i} (file bytes ${hex(fileOffset)}..${hex(fileOffset + fileSize)}) runs past the end of the ${image.length}-byte file; the file is truncated`);
    }
    if (type === PT_NOTE) {
      const alignment = view.getBigUint64(at + P_ALIGN, true) === BigInt(NOTE_ALIGN_WIDE) ? NOTE_ALIGN_WIDE : NOTE_ALIGN_DEFAULT;
      pvhEntry ??= findPvhEntry(image, view, fileOffset, fileSize, alignment);
      continue;
    }
    const guestAddress = safeNumber(view.getBigUint64(at + P_PADDR, true), 'segment-ram', `segment ${i} p_paddr`);
    const memorySize = safeNumber(view.getBigUint64(at + P_MEMSZ, true), 'segment-ram', `segment ${i} p_memsz`);
    if (fileSize > memorySize) {
      throw new ElfError('segment-file', `segment ${i} has p_filesz ${hex(fileSize)} larger than p_memsz ${hex(memorySize)}; the image is malformed`);
    }
    if (memorySize > 0) loads.push({ fileOffset, fileSize, guestAddress, memorySize });
  }
  return { loads, pvhEntry };
}

/** Scans one PT_NOTE segment for the Xen PHYS32_ENTRY note; undefined when it is not there. */
function findPvhEntry(image: Uint8Array, view: DataView, start: number, size: number, alignment: number): number | undefined {
  const end = start + size;
  let at = start;
  while (at + NHDR_BYTES <= end) {
    const nameSize = view.getUint32(at, true);
    const descSize = view.getUint32(at + 4, true);
    const type = view.getUint32(at + 8, true);
    const nameAt = at + NHDR_BYTES;
    const descAt = nameAt + align(nameSize, alignment);
    if (descAt + descSize > end) {
      throw new ElfError('pvh-note', `the note at file offset ${hex(at)} runs past the end of its PT_NOTE segment (${hex(end)}); the image is malformed`);
    }
    const name = String.fromCharCode(...image.subarray(nameAt, nameAt + nameSize));
    if (name === XEN_NOTE_NAME && type === XEN_ELFNOTE_PHYS32_ENTRY) return readPvhEntry(view, descAt, descSize);
    at = descAt + align(descSize, alignment);
  }
  return undefined;
}

function readPvhEntry(view: DataView, at: number, size: number): number {
  if (size === 4) return view.getUint32(at, true);
  if (size === 8) {
    const entry = view.getBigUint64(at, true);
    if (entry <= BigInt(MAX_PHYS32)) return Number(entry);
    throw new ElfError('pvh-note', `the PVH entry ${hex(entry)} does not fit in 32 bits; PVH starts in 32-bit mode`);
  }
  throw new ElfError('pvh-note', `the Xen PHYS32_ENTRY note carries ${size} bytes, not a 4- or 8-byte address`);
}

function checkPlacement(loads: readonly LoadSegment[], mem: GuestMemory): void {
  loads.forEach(({ guestAddress, memorySize }, i) => {
    const range = `${hex(guestAddress)}..${hex(guestAddress + memorySize)}`;
    if (guestAddress < HIGH_MEMORY_START) {
      throw new ElfError('segment-boot-tables', `load segment ${i} at ${range} starts below ${hex(HIGH_MEMORY_START)}, where the zero page, page tables and GDT live; link the kernel at 1 MiB or above`);
    }
    if (!mem.contains(guestAddress, memorySize)) {
      throw new ElfError('segment-ram', `load segment ${i} at ${range} is not inside guest RAM (which ends at ${hex(mem.end)}); give the guest more memory`);
    }
  });
}

/**
 * Validates `image` as an ELF64 little-endian x86_64 executable, then copies
 * each PT_LOAD segment to its p_paddr in `mem`, zeroing the p_memsz -
 * p_filesz tail (the bss). Returns the entry point, the loaded range and,
 * when a PT_NOTE holds a Xen XEN_ELFNOTE_PHYS32_ENTRY note, the PVH entry.
 * Throws ElfError (with `.step`) before writing anything if the image is
 * malformed, does not fit in guest RAM, or would overwrite the boot tables
 * below HIGH_MEMORY_START.
 */
export function loadElf(image: Uint8Array, mem: GuestMemory): ElfLoadResult {
  checkIdentity(image);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const machine = view.getUint16(E_MACHINE, true);
  if (machine !== EM_X86_64) {
    throw new ElfError('machine', `e_machine is ${machine}, not EM_X86_64 (${EM_X86_64}); pass a kernel built for x86_64`);
  }
  const { loads, pvhEntry } = readProgramHeaders(image, view);
  if (loads.length === 0) {
    throw new ElfError('no-load-segment', 'the image has no PT_LOAD segment, so there is nothing to load; pass a linked executable (vmlinux)');
  }
  checkPlacement(loads, mem);
  const entry = safeNumber(view.getBigUint64(E_ENTRY, true), 'entry', 'e_entry');
  if (!loads.some((s) => entry >= s.guestAddress && entry < s.guestAddress + s.memorySize)) {
    throw new ElfError('entry', `e_entry ${hex(entry)} is not inside any load segment; the kernel must be linked with a physical entry point (vmlinux uses phys_startup_64)`);
  }

  for (const { fileOffset, fileSize, guestAddress, memorySize } of loads) {
    mem.write(guestAddress, image.subarray(fileOffset, fileOffset + fileSize));
    mem.fill(guestAddress + fileSize, memorySize - fileSize, 0);
  }
  return {
    entry,
    kernelStart: Math.min(...loads.map((s) => s.guestAddress)),
    kernelEnd: Math.max(...loads.map((s) => s.guestAddress + s.memorySize)),
    ...(pvhEntry === undefined ? {} : { pvhEntry }),
  };
}
