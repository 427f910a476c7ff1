// Loads an uncompressed x86_64 kernel (vmlinux, or any ELF64 image linked
// at physical addresses, or an ELF32 one with a PVH note) into guest memory: each PT_LOAD segment goes to its
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
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const EI_DATA = 5;
const ELFDATA2LSB = 1;
/** Bytes of e_ident. */
const EI_NIDENT = 16;
/** e_machine values: AMD64 / Intel 64, and i386 (an ELF32 PVH kernel, which QEMU also accepts). */
const EM_X86_64 = 62;
const EM_386 = 3;

/**
 * The header and program-header layouts of the two ELF classes (gABI): the
 * sizes and the offsets of the fields read here. ELF32 kernels are accepted
 * only with a PVH note: their one way in is the 32-bit PVH entry.
 */
interface ElfLayout {
  bits: 32 | 64;
  ehdrBytes: number;
  entry: number;
  phoff: number;
  phentsize: number;
  phnum: number;
  phdrBytes: number;
  pType: number;
  pOffset: number;
  pPaddr: number;
  pFilesz: number;
  pMemsz: number;
  pAlign: number;
}

const ELF64: ElfLayout = {
  bits: 64, ehdrBytes: 64, entry: 24, phoff: 32, phentsize: 54, phnum: 56,
  phdrBytes: 56, pType: 0, pOffset: 8, pPaddr: 24, pFilesz: 32, pMemsz: 40, pAlign: 48,
};
const ELF32: ElfLayout = {
  bits: 32, ehdrBytes: 52, entry: 24, phoff: 28, phentsize: 42, phnum: 44,
  phdrBytes: 32, pType: 0, pOffset: 4, pPaddr: 12, pFilesz: 16, pMemsz: 20, pAlign: 28,
};
const E_MACHINE = 18;

/** Program header types used here. */
const PT_LOAD = 1;
const PT_NOTE = 4;

/** Elf64_Nhdr and Elf32_Nhdr alike: n_namesz, n_descsz, n_type (32 bits each). */
const NHDR_BYTES = 12;
/** Note name and descriptor are padded to 4 bytes, or to 8 when the segment says p_align = 8. */
const NOTE_ALIGN_DEFAULT = 4;
const NOTE_ALIGN_WIDE = 8;
/** The PVH note: owner "Xen" with its NUL, type XEN_ELFNOTE_PHYS32_ENTRY. */
const XEN_NOTE_NAME = [0x58, 0x65, 0x6e, 0x00] as const; // "Xen\0"
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** The PVH entry is a 32-bit physical address. */
const MAX_PHYS32 = 0xffff_ffff;

/** Which check an ElfError comes from, so callers and tests need not parse messages. */
export type ElfStep =
  | 'magic' | 'class' | 'endianness' | 'machine' | 'header'
  | 'program-headers' | 'segment-file' | 'segment-boot-tables' | 'segment-ram'
  | 'no-load-segment' | 'entry' | 'pvh-note' | 'elf32-without-pvh';

export class ElfError extends TsvmmError {
  declare readonly step: ElfStep;

  constructor(step: ElfStep, message: string) {
    super('guest-image', `ELF kernel (${step}): ${message}`, { step });
  }
}

export interface ElfLoadResult {
  /** 64 for ELF64; 32 for an ELF32 kernel, which boots only through its PVH entry. */
  elfClass: 32 | 64;
  /** e_entry: where a 64-bit Linux boot starts (physical, identity-mapped); for ELF32, informational. */
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

function checkIdentity(image: Uint8Array): ElfLayout {
  if (image.length < ELF_MAGIC.length || ELF_MAGIC.some((byte, i) => image[i] !== byte)) {
    throw new ElfError('magic', 'the image does not start with 0x7f "ELF"; pass an uncompressed vmlinux (a bzImage needs the bzImage loader)');
  }
  if (image.length < EI_NIDENT) {
    throw new ElfError('header', `the image is ${image.length} bytes, shorter than the ${EI_NIDENT}-byte ELF identification`);
  }
  if (image[EI_CLASS] !== ELFCLASS64 && image[EI_CLASS] !== ELFCLASS32) {
    throw new ElfError('class', `EI_CLASS is ${image[EI_CLASS]}, neither ELFCLASS64 (${ELFCLASS64}) nor ELFCLASS32 (${ELFCLASS32}); build an x86_64 kernel (or a 32-bit PVH one)`);
  }
  if (image[EI_DATA] !== ELFDATA2LSB) {
    throw new ElfError('endianness', `EI_DATA is ${image[EI_DATA]}, not little-endian (${ELFDATA2LSB}); x86 kernels are little-endian`);
  }
  const layout = image[EI_CLASS] === ELFCLASS64 ? ELF64 : ELF32;
  if (image.length < layout.ehdrBytes) {
    throw new ElfError('header', `the image is ${image.length} bytes, shorter than the ${layout.ehdrBytes}-byte ELF${layout.bits} header; the file is truncated`);
  }
  return layout;
}

/** A field of the header or a program header: 4 bytes in ELF32, 8 in ELF64. */
function word(view: DataView, layout: ElfLayout, at: number): bigint {
  return layout.bits === 64 ? view.getBigUint64(at, true) : BigInt(view.getUint32(at, true));
}

function readProgramHeaders(image: Uint8Array, view: DataView, layout: ElfLayout): { loads: LoadSegment[]; pvhEntry?: number } {
  const PHDR_BYTES = layout.phdrBytes;
  const phentsize = view.getUint16(layout.phentsize, true);
  const phnum = view.getUint16(layout.phnum, true);
  const phoff = safeNumber(word(view, layout, layout.phoff), 'program-headers', 'e_phoff');
  if (phnum > 0 && phentsize !== PHDR_BYTES) {
    throw new ElfError('program-headers', `e_phentsize is ${phentsize}, not the ${PHDR_BYTES} bytes of an Elf${layout.bits}_Phdr`);
  }
  if (phoff + phnum * PHDR_BYTES > image.length) {
    throw new ElfError('program-headers', `${phnum} program headers at ${hex(phoff)} run past the end of the ${image.length}-byte file; the file is truncated`);
  }

  const loads: LoadSegment[] = [];
  let pvhEntry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PHDR_BYTES;
    const type = view.getUint32(at + layout.pType, true);
    if (type !== PT_LOAD && type !== PT_NOTE) continue;
    const fileOffset = safeNumber(word(view, layout, at + layout.pOffset), 'segment-file', `segment ${i} p_offset`);
    const fileSize = safeNumber(word(view, layout, at + layout.pFilesz), 'segment-file', `segment ${i} p_filesz`);
    if (fileOffset + fileSize > image.length) {
      throw new ElfError('segment-file', `segment ${i} (file bytes ${hex(fileOffset)}..${hex(fileOffset + fileSize)}) runs past the end of the ${image.length}-byte file; the file is truncated`);
    }
    if (type === PT_NOTE) {
      const alignment = word(view, layout, at + layout.pAlign) === BigInt(NOTE_ALIGN_WIDE) ? NOTE_ALIGN_WIDE : NOTE_ALIGN_DEFAULT;
      pvhEntry ??= findPvhEntry(image, view, fileOffset, fileSize, alignment);
      continue;
    }
    const guestAddress = safeNumber(word(view, layout, at + layout.pPaddr), 'segment-ram', `segment ${i} p_paddr`);
    const memorySize = safeNumber(word(view, layout, at + layout.pMemsz), 'segment-ram', `segment ${i} p_memsz`);
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
    // Compared byte by byte: a name can be as long as the segment (never spread it into a call).
    const isXen = nameSize === XEN_NOTE_NAME.length && XEN_NOTE_NAME.every((byte, i) => image[nameAt + i] === byte);
    if (isXen && type === XEN_ELFNOTE_PHYS32_ENTRY) return readPvhEntry(view, descAt, descSize);
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
 * Validates `image` as an ELF64 little-endian x86_64 executable (or an
 * ELF32 one with a PVH note, which can boot only through PVH), then copies
 * each PT_LOAD segment to its p_paddr in `mem`, zeroing the p_memsz -
 * p_filesz tail (the bss). Returns the entry point, the loaded range and,
 * when a PT_NOTE holds a Xen XEN_ELFNOTE_PHYS32_ENTRY note, the PVH entry.
 * Throws ElfError (with `.step`) before writing anything if the image is
 * malformed, does not fit in guest RAM, or would overwrite the boot tables
 * below HIGH_MEMORY_START.
 */
export function loadElf(image: Uint8Array, mem: GuestMemory): ElfLoadResult {
  const layout = checkIdentity(image);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const machine = view.getUint16(E_MACHINE, true);
  if (machine !== EM_X86_64 && !(layout.bits === 32 && machine === EM_386)) {
    throw new ElfError('machine', `e_machine is ${machine}, not EM_X86_64 (${EM_X86_64})${layout.bits === 32 ? ` or EM_386 (${EM_386})` : ''}; pass a kernel built for x86_64`);
  }
  const { loads, pvhEntry } = readProgramHeaders(image, view, layout);
  if (layout.bits === 32 && pvhEntry === undefined) {
    throw new ElfError('elf32-without-pvh', 'this is a 32-bit ELF without a XEN_ELFNOTE_PHYS32_ENTRY note; tsvmm boots an ELF32 kernel only through its PVH entry: build a 64-bit kernel or one with CONFIG_PVH');
  }
  if (loads.length === 0) {
    throw new ElfError('no-load-segment', 'the image has no PT_LOAD segment, so there is nothing to load; pass a linked executable (vmlinux)');
  }
  checkPlacement(loads, mem);
  const entry = safeNumber(word(view, layout, layout.entry), 'entry', 'e_entry');
  if (layout.bits === 64 && !loads.some((s) => entry >= s.guestAddress && entry < s.guestAddress + s.memorySize)) {
    throw new ElfError('entry', `e_entry ${hex(entry)} is not inside any load segment; the kernel must be linked with a physical entry point (vmlinux uses phys_startup_64)`);
  }

  for (const { fileOffset, fileSize, guestAddress, memorySize } of loads) {
    mem.write(guestAddress, image.subarray(fileOffset, fileOffset + fileSize));
    mem.fill(guestAddress + fileSize, memorySize - fileSize, 0);
  }
  return {
    elfClass: layout.bits,
    entry,
    kernelStart: Math.min(...loads.map((s) => s.guestAddress)),
    kernelEnd: Math.max(...loads.map((s) => s.guestAddress + s.memorySize)),
    ...(pvhEntry === undefined ? {} : { pvhEntry }),
  };
}
