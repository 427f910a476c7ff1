// Where guest RAM goes in the guest-physical address space. RAM fills the
// low addresses up to the 32-bit MMIO gap; whatever does not fit below the
// gap continues at 4 GiB, as crosvm's arch_memory_regions lays it out, so
// devices and the LAPIC/IOAPIC pages always find the gap free.

import { FIRST_ADDR_PAST_32BITS, MMIO_GAP_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** KVM memory slots and the guest's page tables work in whole 4 KiB pages. */
const PAGE_SIZE = 0x1000;

export interface RamRegion {
  guestAddress: number;
  size: number;
}

export class MemoryMapError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('usage', message, options);
  }
}

/**
 * The RAM regions for a guest of `memoryBytes` bytes: one region from 0 when
 * the RAM fits below MMIO_GAP_START, otherwise a second region at
 * FIRST_ADDR_PAST_32BITS holding the rest. The result can go straight to
 * GuestMemory.allocate or to the memory-slot setup.
 */
export function guestMemoryLayout(memoryBytes: number): RamRegion[] {
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes <= 0) {
    throw new MemoryMapError(`guest memory size ${memoryBytes} is not a positive whole number of bytes; pass e.g. 128 * 1024 * 1024`);
  }
  if (memoryBytes % PAGE_SIZE !== 0) {
    throw new MemoryMapError(
      `guest memory size ${memoryBytes} is not a multiple of the ${PAGE_SIZE}-byte page; round it to ${Math.ceil(memoryBytes / PAGE_SIZE) * PAGE_SIZE}`,
    );
  }
  const below = Math.min(memoryBytes, MMIO_GAP_START);
  const regions: RamRegion[] = [{ guestAddress: 0, size: below }];
  if (memoryBytes > below) {
    regions.push({ guestAddress: FIRST_ADDR_PAST_32BITS, size: memoryBytes - below });
  }
  return regions;
}
