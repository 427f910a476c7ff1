// The e820 memory map the kernel reads from the zero page: which guest-physical
// ranges are RAM it may use. Follows crosvm's generate_e820_memory_map.
//
// RAM regions are cut so that the legacy hole [LOW_RAM_END, HIGH_MEMORY_START)
// never appears as RAM: the EBDA (holding our MP table) and the VGA/BIOS area
// live there. That hole gets no "reserved" entry, as in crosvm and
// Firecracker: Linux treats everything from the EBDA to 1 MiB as reserved by
// itself (reserve_bios_regions), and an absent range already means "not RAM".
// One reserved entry is added, as crosvm does, for the pages KVM keeps for
// itself inside the 32-bit gap (the real-mode identity map and the TSS), so
// the guest never places a PCI BAR or other MMIO over them.

import { hex } from './guest-memory';
import { FIRST_ADDR_PAST_32BITS, HIGH_MEMORY_START, IDENTITY_MAP_ADDR, LOW_RAM_END, MMIO_GAP_START, TSS_ADDR } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** e820 type 1: usable RAM. */
export const E820_RAM = 1;
/** e820 type 2: reserved, the kernel must neither use it as RAM nor hand it to devices. */
const E820_RESERVED = 2;
/** The zero page's e820_table holds this many entries (E820_MAX_ENTRIES_ZEROPAGE, bootparam.h). */
export const E820_MAX_ENTRIES = 128;
/** struct boot_e820_entry is packed: addr u64, size u64, type u32. */
export const E820_ENTRY_SIZE = 20;
/** KVM_SET_TSS_ADDR takes three pages starting at TSS_ADDR. */
const KVM_TSS_SIZE = 3 * 0x1000;

export interface E820Entry {
  address: number;
  size: number;
  type: number;
}

export class E820Error extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

/** Where RAM may be reported: below the legacy hole, from 1 MiB to the gap, and from 4 GiB. */
const RAM_WINDOWS: ReadonlyArray<{ start: number; end: number }> = [
  { start: 0, end: LOW_RAM_END },
  { start: HIGH_MEMORY_START, end: MMIO_GAP_START },
  { start: FIRST_ADDR_PAST_32BITS, end: Number.MAX_SAFE_INTEGER },
];

/**
 * The e820 map for the given RAM regions (e.g. guestMemoryLayout()), sorted by
 * address. RAM inside the 32-bit MMIO gap is an error rather than dropped,
 * because the guest would then run with less memory than was asked for.
 */
export function e820Map(memoryLayout: ReadonlyArray<{ guestAddress: number; size: number }>): E820Entry[] {
  const entries: E820Entry[] = [];
  for (const region of memoryLayout) {
    const start = region.guestAddress;
    const end = start + region.size;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(region.size) || start < 0 || region.size <= 0) {
      throw new E820Error(`RAM region at ${start} of ${region.size} bytes is not a valid range; sizes must be positive whole numbers`);
    }
    if (start < FIRST_ADDR_PAST_32BITS && end > MMIO_GAP_START) {
      throw new E820Error(
        `RAM region ${hex(start)}..${hex(end)} overlaps the 32-bit MMIO gap ${hex(MMIO_GAP_START)}..${hex(FIRST_ADDR_PAST_32BITS)}; lay RAM out with guestMemoryLayout()`,
      );
    }
    for (const window of RAM_WINDOWS) {
      const low = Math.max(start, window.start);
      const high = Math.min(end, window.end);
      if (low < high) entries.push({ address: low, size: high - low, type: E820_RAM });
    }
  }
  entries.push({ address: IDENTITY_MAP_ADDR, size: TSS_ADDR + KVM_TSS_SIZE - IDENTITY_MAP_ADDR, type: E820_RESERVED });
  entries.sort((a, b) => a.address - b.address);
  for (let i = 1; i < entries.length; i++) {
    if (entries[i - 1].address + entries[i - 1].size > entries[i].address) {
      throw new E820Error(`RAM regions overlap at ${hex(entries[i].address)}; each guest address may be backed once`);
    }
  }
  if (entries.length > E820_MAX_ENTRIES) {
    throw new E820Error(
      `the memory map needs ${entries.length} e820 entries but the zero page holds ${E820_MAX_ENTRIES}; use fewer, larger RAM regions`,
    );
  }
  return entries;
}
