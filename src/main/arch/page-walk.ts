// Guest-virtual to guest-physical translation by walking the guest's own
// page tables in guest memory, for diagnostics: the instruction bytes at RIP
// when a vCPU dies. Handles paging off, 32-bit paging without PAE, PAE and
// 4-level long-mode paging with large pages.

import { GuestMemory } from './guest-memory';

const CR0_PG = 1n << 31n;
const CR4_PSE = 1n << 4n;
const CR4_PAE = 1n << 5n;
const EFER_LMA = 1n << 10n;
const PRESENT = 1n;
const PAGE_SIZE_BIT = 1n << 7n;
const ADDRESS_MASK = 0x000f_ffff_ffff_f000n;

export interface PagingState {
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
}

/** The physical address of `virtual`, or undefined when it is not mapped or the tables are outside RAM. */
export function translate(memory: GuestMemory, paging: PagingState, virtual: bigint): number | undefined {
  if ((paging.cr0 & CR0_PG) === 0n) return Number(virtual & 0xffff_ffffn);
  const read64 = (address: bigint): bigint | undefined => {
    const at = Number(address);
    return memory.contains(at, 8) ? memory.readU64(at) : undefined;
  };
  if ((paging.efer & EFER_LMA) !== 0n || (paging.cr4 & CR4_PAE) !== 0n) {
    const longMode = (paging.efer & EFER_LMA) !== 0n;
    // [shift of the index, size of the page a large entry maps at this level]
    const levels: Array<[bigint, boolean]> = longMode
      ? [[39n, false], [30n, true], [21n, true], [12n, false]]
      : [[30n, false], [21n, true], [12n, false]];
    let table = longMode ? paging.cr3 & ADDRESS_MASK : paging.cr3 & 0xffff_ffe0n;
    for (let level = 0; level < levels.length; level++) {
      const [shift, mayBeLarge] = levels[level];
      const indexBits = !longMode && level === 0 ? 0x3n : 0x1ffn;
      const entry = read64(table + ((virtual >> shift) & indexBits) * 8n);
      if (entry === undefined || (entry & PRESENT) === 0n) return undefined;
      if (mayBeLarge && (entry & PAGE_SIZE_BIT) !== 0n) {
        const offsetMask = (1n << shift) - 1n;
        return Number((entry & ADDRESS_MASK & ~offsetMask) | (virtual & offsetMask));
      }
      if (shift === 12n) return Number((entry & ADDRESS_MASK) | (virtual & 0xfffn));
      table = entry & ADDRESS_MASK;
    }
    return undefined;
  }
  // 32-bit paging without PAE.
  const read32 = (address: bigint): bigint | undefined => {
    const at = Number(address);
    return memory.contains(at, 4) ? BigInt(memory.readU32(at)) : undefined;
  };
  const directory = read32((paging.cr3 & 0xffff_f000n) + ((virtual >> 22n) & 0x3ffn) * 4n);
  if (directory === undefined || (directory & PRESENT) === 0n) return undefined;
  if ((paging.cr4 & CR4_PSE) !== 0n && (directory & PAGE_SIZE_BIT) !== 0n) {
    return Number((directory & 0xffc0_0000n) | (virtual & 0x3f_ffffn));
  }
  const table = read32((directory & 0xffff_f000n) + ((virtual >> 12n) & 0x3ffn) * 4n);
  if (table === undefined || (table & PRESENT) === 0n) return undefined;
  return Number((table & 0xffff_f000n) | (virtual & 0xfffn));
}

/** Up to `count` bytes at a virtual address, stopping at the first unmapped byte. */
export function readVirtual(memory: GuestMemory, paging: PagingState, virtual: bigint, count: number): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < count; i++) {
    const physical = translate(memory, paging, virtual + BigInt(i));
    if (physical === undefined || !memory.contains(physical, 1)) break;
    bytes.push(memory.readU8(physical));
  }
  return bytes;
}
