// Guest-physical memory as a set of regions, each backed by an ArrayBuffer
// (in the VMM, a view of the one anonymous shared mapping KVM also uses; in
// tests, a plain ArrayBuffer). Boot-table builders and loaders write through
// this and never see KVM.

import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

export interface MemoryRegion {
  /** Guest-physical address of the first byte. */
  readonly guestAddress: number;
  readonly size: number;
  readonly bytes: Uint8Array;
}

export class GuestMemoryError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('guest-image', message, options);
  }
}

export class GuestMemory {
  readonly regions: readonly MemoryRegion[];

  constructor(regions: MemoryRegion[]) {
    const sorted = [...regions].sort((a, b) => a.guestAddress - b.guestAddress);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1];
      if (previous.guestAddress + previous.size > sorted[i].guestAddress) {
        throw new GuestMemoryError(`memory regions at ${hex(previous.guestAddress)} and ${hex(sorted[i].guestAddress)} overlap`);
      }
    }
    this.regions = sorted;
  }

  /** Plain ArrayBuffer-backed memory for tests and tools: [{address, size}]. */
  static allocate(layout: ReadonlyArray<{ guestAddress: number; size: number }>): GuestMemory {
    return new GuestMemory(layout.map(({ guestAddress, size }) => ({ guestAddress, size, bytes: new Uint8Array(size) })));
  }

  /** Total bytes of RAM. */
  get totalSize(): number {
    return this.regions.reduce((sum, region) => sum + region.size, 0);
  }

  /** One past the highest guest-physical address backed by RAM. */
  get end(): number {
    const last = this.regions[this.regions.length - 1];
    return last ? last.guestAddress + last.size : 0;
  }

  /** True when [address, address + length) lies inside a single region. */
  contains(address: number, length = 1): boolean {
    return this.findRegion(address, length) !== undefined;
  }

  /**
   * A view of [address, address + length). The range must lie in one region:
   * a range crossing the 32-bit gap is an error, never a silent split.
   */
  slice(address: number, length: number): Uint8Array {
    const region = this.findRegion(address, length);
    if (region === undefined) {
      throw new GuestMemoryError(`guest range ${hex(address)}..${hex(address + length)} is not inside guest RAM`);
    }
    const offset = address - region.guestAddress;
    return region.bytes.subarray(offset, offset + length);
  }

  write(address: number, data: Uint8Array): void {
    this.slice(address, data.length).set(data);
  }

  read(address: number, length: number): Uint8Array {
    return Uint8Array.from(this.slice(address, length));
  }

  fill(address: number, length: number, value = 0): void {
    this.slice(address, length).fill(value);
  }

  dataView(address: number, length: number): DataView {
    const bytes = this.slice(address, length);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  writeU8(address: number, value: number): void { this.dataView(address, 1).setUint8(0, value); }
  writeU16(address: number, value: number): void { this.dataView(address, 2).setUint16(0, value, true); }
  writeU32(address: number, value: number): void { this.dataView(address, 4).setUint32(0, value, true); }
  writeU64(address: number, value: bigint | number): void { this.dataView(address, 8).setBigUint64(0, BigInt(value), true); }
  readU8(address: number): number { return this.dataView(address, 1).getUint8(0); }
  readU16(address: number): number { return this.dataView(address, 2).getUint16(0, true); }
  readU32(address: number): number { return this.dataView(address, 4).getUint32(0, true); }
  readU64(address: number): bigint { return this.dataView(address, 8).getBigUint64(0, true); }

  private findRegion(address: number, length: number): MemoryRegion | undefined {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || address < 0 || length < 0) return undefined;
    for (const region of this.regions) {
      if (address >= region.guestAddress && address + length <= region.guestAddress + region.size) return region;
    }
    return undefined;
  }
}

export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}
