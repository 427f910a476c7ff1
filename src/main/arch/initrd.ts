// Where the initial ramdisk goes: as high as the kernel allows in the RAM
// below the 32-bit gap, like QEMU and crosvm place it, so it stays clear of the
// kernel's decompression window and of the boot tables, which all lie lower.
// It is kept below 4 GiB even for kernels with XLF_CAN_BE_LOADED_ABOVE_4G,
// since every kernel can read it there.

import { GuestMemory, hex } from './guest-memory';
import { MMIO_GAP_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** The initrd starts on a page boundary (the kernel frees it page by page after unpacking). */
const PAGE_SIZE = 0x1000;
const MIB = 1024 * 1024;

export interface InitrdPlacementOptions {
  /** Bytes of the initrd file. */
  size: number;
  /** One past the kernel's memory (loadBzImage().kernelEnd or the ELF's highest segment end). */
  kernelEnd: number;
  /** Highest address the initrd may occupy (bzImage initrd_addr_max, inclusive); omitted for no limit besides the gap. */
  initrdAddrMax?: number;
  /** Guest RAM regions, e.g. guestMemoryLayout(). */
  memoryLayout: ReadonlyArray<{ guestAddress: number; size: number }>;
}

export class InitrdError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

/** The page-aligned address to load the initrd at: the highest one that keeps it in the kernel's RAM region and below its limits. */
export function placeInitrd(options: InitrdPlacementOptions): number {
  const { size, kernelEnd, initrdAddrMax, memoryLayout } = options;
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new InitrdError(`initrd size ${size} is not a positive number of bytes; pass a non-empty initrd file`);
  }
  const region = memoryLayout.find((r) => kernelEnd > r.guestAddress && kernelEnd <= r.guestAddress + r.size);
  if (region === undefined) {
    throw new InitrdError(`the kernel end ${hex(kernelEnd)} is not inside guest RAM, so there is nowhere to put the initrd after it; give the guest more memory (--mem)`);
  }
  const limits = [region.guestAddress + region.size, MMIO_GAP_START];
  if (initrdAddrMax !== undefined) limits.push(initrdAddrMax + 1);
  const top = Math.min(...limits);
  const address = Math.floor((top - size) / PAGE_SIZE) * PAGE_SIZE;
  if (address < kernelEnd) {
    throw new InitrdError(
      `initrd of ${(size / MIB).toFixed(1)} MiB does not fit between the kernel end ${hex(kernelEnd)} and ${hex(top)}; give the guest more memory (--mem)`,
    );
  }
  return address;
}

/**
 * The pieces of [address, address + length) in each backing region, in
 * order, or undefined when RAM does not cover the whole range without a
 * hole. Guest RAM that is contiguous to the guest may still be backed by
 * several regions (the VMM maps it in slots of at most 2 GiB, so one splits
 * at 0x80000000); a range crossing such a seam is fine, one crossing a hole
 * (the MMIO gap) is not.
 */
export function contiguousPieces(mem: GuestMemory, address: number, length: number): Array<{ address: number; length: number }> | undefined {
  if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || address < 0 || length < 0) return undefined;
  const pieces: Array<{ address: number; length: number }> = [];
  let at = address;
  const end = address + length;
  while (at < end) {
    const region = mem.regions.find((r) => at >= r.guestAddress && at < r.guestAddress + r.size);
    if (region === undefined) return undefined;
    const pieceEnd = Math.min(end, region.guestAddress + region.size);
    pieces.push({ address: at, length: pieceEnd - at });
    at = pieceEnd;
  }
  return pieces;
}

export function loadInitrd(mem: GuestMemory, bytes: Uint8Array, address: number): void {
  const pieces = contiguousPieces(mem, address, bytes.length);
  if (pieces === undefined || bytes.length === 0) {
    throw new InitrdError(`the initrd (${bytes.length} bytes at ${hex(address)}) does not lie in guest RAM; give the guest more memory (--mem)`);
  }
  for (const piece of pieces) {
    mem.write(piece.address, bytes.subarray(piece.address - address, piece.address - address + piece.length));
  }
}
