// The Xen PVH boot ABI's start-of-day structures, which a kernel entered
// through its XEN_ELFNOTE_PHYS32_ENTRY point finds through %ebx: the
// hvm_start_info, the module list (the initrd) and the memory map. Layouts
// are from Xen's include/public/arch-x86/hvm/start_info.h; the placement
// follows rust-vmm linux-loader's configurator/x86_64/pvh.rs.

import { GuestMemory, hex } from './guest-memory';
import { PVH_INFO_START, PVH_MEMMAP_END, PVH_MEMMAP_START, PVH_MODLIST_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { contiguousPieces } from './initrd';

/** struct hvm_start_info (start_info.h); fields from memmap_paddr on exist since version 1. */
const START_INFO = {
  magic: 0, version: 4, flags: 8, nrModules: 12, modlistPaddr: 16, cmdlinePaddr: 24, rsdpPaddr: 32,
  memmapPaddr: 40, memmapEntries: 48, reserved: 52, SIZE: 56,
} as const;
/** struct hvm_modlist_entry (start_info.h). */
const MODLIST_ENTRY = { paddr: 0, size: 8, cmdlinePaddr: 16, reserved: 24, SIZE: 32 } as const;
/** struct hvm_memmap_table_entry (start_info.h). */
const MEMMAP_ENTRY = { addr: 0, size: 8, type: 16, reserved: 20, SIZE: 24 } as const;

/** XEN_HVM_START_MAGIC_VALUE: the guest checks this before trusting %ebx. */
const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** Version 1 carries the memory map; Linux reads memmap_paddr only when version > 0. */
const START_INFO_VERSION = 1;

/** Memory map types use E820 numbering (start_info.h: XEN_HVM_MEMMAP_TYPE_*). */
export const PVH_MEMMAP_RAM = 1;
export const PVH_MEMMAP_RESERVED = 2;
const PVH_MEMMAP_ACPI = 3;
const PVH_MEMMAP_NVS = 4;
const PVH_MEMMAP_UNUSABLE = 5;
const KNOWN_MEMMAP_TYPES = new Set([PVH_MEMMAP_RAM, PVH_MEMMAP_RESERVED, PVH_MEMMAP_ACPI, PVH_MEMMAP_NVS, PVH_MEMMAP_UNUSABLE]);

/** How many memory map entries fit between PVH_MEMMAP_START and PVH_MEMMAP_END (160). */
export const PVH_MAX_MEMMAP_ENTRIES = Math.floor((PVH_MEMMAP_END - PVH_MEMMAP_START) / MEMMAP_ENTRY.SIZE);

export interface PvhMemoryMapEntry {
  addr: number;
  size: number;
  /** E820 type: PVH_MEMMAP_RAM, PVH_MEMMAP_RESERVED, ... */
  type: number;
}

export interface PvhStartInfoOptions {
  /** Guest-physical address of the NUL-terminated kernel command line. */
  cmdlineAddress: number;
  memoryMap: readonly PvhMemoryMapEntry[];
  /** An initrd already loaded into guest memory; it becomes the single module. */
  initrd?: { address: number; size: number };
}

export class PvhError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

if (PVH_INFO_START + START_INFO.SIZE > PVH_MODLIST_START || PVH_MODLIST_START + MODLIST_ENTRY.SIZE > PVH_MEMMAP_START) {
  // layout.ts and the struct sizes disagree; this is a programming error caught at load time.
  throw new PvhError('layout.ts leaves too little room between PVH_INFO_START, PVH_MODLIST_START and PVH_MEMMAP_START for the PVH structs');
}

/**
 * Writes hvm_start_info at PVH_INFO_START, the module list at
 * PVH_MODLIST_START and the memory map at PVH_MEMMAP_START, clearing the
 * whole PVH area first. Returns the address to put in %ebx.
 */
export function writePvhStartInfo(mem: GuestMemory, options: PvhStartInfoOptions): number {
  const { cmdlineAddress, memoryMap, initrd } = options;
  checkMemoryMap(memoryMap);
  if (!Number.isSafeInteger(cmdlineAddress) || !mem.contains(cmdlineAddress)) {
    throw new PvhError(`the command line address ${hex(cmdlineAddress)} is not in guest RAM; write the command line into guest memory first`);
  }
  if (initrd !== undefined && !(Number.isSafeInteger(initrd.size) && initrd.size > 0 && contiguousPieces(mem, initrd.address, initrd.size) !== undefined)) {
    throw new PvhError(
      `the initrd at ${hex(initrd.address)} of ${initrd.size} bytes is not a non-empty range inside guest RAM; load the initrd into guest memory first`,
    );
  }
  if (!mem.contains(PVH_INFO_START, PVH_MEMMAP_END - PVH_INFO_START)) {
    throw new PvhError(`guest RAM does not cover the PVH area ${hex(PVH_INFO_START)}..${hex(PVH_MEMMAP_END)}; give the guest at least 1 MiB of RAM`);
  }

  mem.fill(PVH_INFO_START, PVH_MEMMAP_END - PVH_INFO_START, 0);

  memoryMap.forEach((entry, index) => {
    const address = PVH_MEMMAP_START + index * MEMMAP_ENTRY.SIZE;
    mem.writeU64(address + MEMMAP_ENTRY.addr, entry.addr);
    mem.writeU64(address + MEMMAP_ENTRY.size, entry.size);
    mem.writeU32(address + MEMMAP_ENTRY.type, entry.type);
  });

  if (initrd !== undefined) {
    mem.writeU64(PVH_MODLIST_START + MODLIST_ENTRY.paddr, initrd.address);
    mem.writeU64(PVH_MODLIST_START + MODLIST_ENTRY.size, initrd.size);
    // The module has no command line of its own: cmdline_paddr stays 0.
  }

  mem.writeU32(PVH_INFO_START + START_INFO.magic, XEN_HVM_START_MAGIC_VALUE);
  mem.writeU32(PVH_INFO_START + START_INFO.version, START_INFO_VERSION);
  // flags 0 and rsdp_paddr 0: tsvmm offers no ACPI, so the guest falls back to the MP table.
  mem.writeU32(PVH_INFO_START + START_INFO.nrModules, initrd === undefined ? 0 : 1);
  mem.writeU64(PVH_INFO_START + START_INFO.modlistPaddr, initrd === undefined ? 0 : PVH_MODLIST_START);
  mem.writeU64(PVH_INFO_START + START_INFO.cmdlinePaddr, cmdlineAddress);
  mem.writeU64(PVH_INFO_START + START_INFO.memmapPaddr, PVH_MEMMAP_START);
  mem.writeU32(PVH_INFO_START + START_INFO.memmapEntries, memoryMap.length);
  return PVH_INFO_START;
}

function checkMemoryMap(memoryMap: readonly PvhMemoryMapEntry[]): void {
  if (memoryMap.length === 0) {
    throw new PvhError('the PVH memory map is empty; pass at least the guest RAM regions');
  }
  if (memoryMap.length > PVH_MAX_MEMMAP_ENTRIES) {
    throw new PvhError(
      `the PVH memory map has ${memoryMap.length} entries but only ${PVH_MAX_MEMMAP_ENTRIES} fit between ${hex(PVH_MEMMAP_START)} and ${hex(PVH_MEMMAP_END)}; merge adjacent entries of the same type`,
    );
  }
  memoryMap.forEach(({ addr, size, type }, index) => {
    if (!Number.isSafeInteger(addr) || addr < 0 || !Number.isSafeInteger(size) || size <= 0) {
      throw new PvhError(`PVH memory map entry ${index} (addr ${addr}, size ${size}) needs a non-negative whole address and a positive whole size`);
    }
    if (!KNOWN_MEMMAP_TYPES.has(type)) {
      throw new PvhError(`PVH memory map entry ${index} has type ${type}; use an E820 type 1-5 (PVH_MEMMAP_RAM, PVH_MEMMAP_RESERVED, ...)`);
    }
  });
}
