// Identity page tables for entering a 64-bit kernel directly: long mode
// cannot run with paging off, so the VMM maps the low BOOT_IDENTITY_MAP_SIZE
// bytes 1:1 with 2 MiB pages (one PML4 entry -> one PDPT entry -> one page
// directory), as crosvm's and Firecracker's setup_page_tables do. The kernel
// builds its own tables right after entry. Bit layout: Intel SDM Vol. 3A, 4.5.

import { GuestMemory, hex } from './guest-memory';
import { BOOT_IDENTITY_MAP_SIZE, PDE_START, PDPTE_START, PML4_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** Paging-structure entry bit 0: the entry maps something. */
const PAGE_PRESENT = 0x1n;
/** Bit 1: writes are allowed through this entry. */
const PAGE_WRITABLE = 0x2n;
/** Bit 7 in a page-directory entry: it maps a 2 MiB page instead of pointing to a page table. */
const PAGE_SIZE_2M = 0x80n;

/** Bytes mapped by one page-directory entry with PS set. */
const LARGE_PAGE_BYTES = 2 * 1024 * 1024;
/** Every paging structure is one 4 KiB page of 512 8-byte entries. */
const ENTRY_BYTES = 8;
const TABLE_BYTES = 0x1000;

export class PagingError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/**
 * Writes the PML4 at PML4_START, the PDPT at PDPTE_START and the page
 * directory at PDE_START so that virtual = physical over the low 1 GiB, and
 * returns the CR3 value (the PML4's address). Entries are present|writable;
 * the 512 directory entries are 2 MiB pages (present|writable|PS).
 */
export function writeIdentityPageTables(mem: GuestMemory): bigint {
  for (const [name, address] of [['PML4', PML4_START], ['PDPT', PDPTE_START], ['page directory', PDE_START]] as const) {
    if (!mem.contains(address, TABLE_BYTES)) {
      throw new PagingError(`the boot ${name} at ${hex(address)} is not inside guest RAM; give the guest RAM from address 0`);
    }
  }
  // Clear whole tables so entries other than the first are not-present, whatever the memory held.
  mem.fill(PML4_START, TABLE_BYTES, 0);
  mem.fill(PDPTE_START, TABLE_BYTES, 0);
  mem.writeU64(PML4_START, BigInt(PDPTE_START) | PAGE_PRESENT | PAGE_WRITABLE);
  mem.writeU64(PDPTE_START, BigInt(PDE_START) | PAGE_PRESENT | PAGE_WRITABLE);
  const largePages = BOOT_IDENTITY_MAP_SIZE / LARGE_PAGE_BYTES;
  for (let i = 0; i < largePages; i++) {
    mem.writeU64(PDE_START + i * ENTRY_BYTES, BigInt(i * LARGE_PAGE_BYTES) | PAGE_PRESENT | PAGE_WRITABLE | PAGE_SIZE_2M);
  }
  return BigInt(PML4_START);
}
