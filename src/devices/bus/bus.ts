// A bus maps address ranges to devices and dispatches accesses to them, like
// vm-device's Bus: ranges never overlap, and lookup is a binary search over
// ranges kept sorted by base.

import { BusDevice } from './bus-device';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

export type BusKind = 'io' | 'mmio';

/** One past the highest I/O port: x86 has a 16-bit port space. */
const IO_ADDRESS_LIMIT = 0x1_0000;
/** One past the highest MMIO address tsvmm accepts: JS numbers are exact integers below 2^53, 2^52 keeps base + length exact too. */
const MMIO_ADDRESS_LIMIT = 2 ** 52;
/** What a read of an address nobody claims returns in every byte. */
const UNCLAIMED_READ_BYTE = 0xff;

export class BusError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/** Where an address landed: the device, the base it was inserted at, and the offset from that base. */
export interface BusTarget {
  device: BusDevice;
  base: number;
  offset: number;
}

/** A claimed range as published to vCPU workers. */
export interface BusRange {
  base: number;
  length: number;
  name: string;
}

interface Entry {
  base: number;
  length: number;
  device: BusDevice;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function describe(entry: Entry): string {
  return `'${entry.device.name}' [${hex(entry.base)}, ${hex(entry.base + entry.length)})`;
}

/**
 * A sorted range map from [base, base + length) to a BusDevice.
 *
 * Reads of an address nobody claims fill the buffer with 0xff: on a real PC
 * an undriven ISA/PCI data bus floats high, and guests (Linux's probes of
 * absent UARTs, PCI type-1 config, ...) rely on reading all ones there.
 * Such reads and writes are counted in `unclaimedReads`/`unclaimedWrites`.
 *
 * An access that straddles the end of a device's range (say a 4-byte read at
 * its last byte) goes whole to the device that owns its first byte; the
 * device sees an offset near its end and a wider buffer, and decides.
 */
export class Bus {
  readonly kind: BusKind;
  /** Reads that no device claimed (answered with all ones). */
  unclaimedReads = 0;
  /** Writes that no device claimed (dropped). */
  unclaimedWrites = 0;
  /** Told of each unclaimed access (a log's first-hit report); off the claimed path, so free for devices. */
  onUnclaimed?: (address: number, access: 'read' | 'write') => void;
  private readonly entries: Entry[] = [];
  /** The entry of the last access that found a device (see entryAt). */
  private lastHit: Entry | undefined;

  constructor(kind: BusKind) {
    this.kind = kind;
  }

  private get limit(): number {
    return this.kind === 'io' ? IO_ADDRESS_LIMIT : MMIO_ADDRESS_LIMIT;
  }

  /** Claims [base, base + length) for `device`; throws BusError on a zero length, an out-of-range or an overlapping range. */
  insert(base: number, length: number, device: BusDevice): void {
    const what = `'${device.name}' at ${hex(base)} length ${hex(length)} on the ${this.kind} bus`;
    if (!Number.isSafeInteger(base) || base < 0) {
      throw new BusError(`cannot insert ${what}: the base must be a non-negative integer`);
    }
    if (!Number.isSafeInteger(length) || length <= 0) {
      throw new BusError(`cannot insert ${what}: the length must be a positive integer (a device must claim at least one address)`);
    }
    if (base + length > this.limit) {
      throw new BusError(`cannot insert ${what}: the range ends past ${hex(this.limit - 1)}, the last address of the ${this.kind} bus; choose a lower base or a shorter length`);
    }
    const entry: Entry = { base, length, device };
    const index = this.firstIndexAbove(base);
    const before = this.entries[index - 1];
    const after = this.entries[index];
    // Sorted and non-overlapping, so only the neighbours can collide.
    for (const other of [before, after]) {
      if (other && base < other.base + other.length && other.base < base + length) {
        throw new BusError(`cannot insert ${describe(entry)}: it overlaps ${describe(other)} on the ${this.kind} bus; move one of them`);
      }
    }
    this.entries.splice(index, 0, entry);
  }

  /** Releases the range inserted at `base`; returns its device. Throws BusError when nothing was inserted there. */
  remove(base: number): BusDevice {
    const index = this.entries.findIndex((entry) => entry.base === base);
    if (index < 0) throw new BusError(`cannot remove the range at ${hex(base)} from the ${this.kind} bus: nothing was inserted there`);
    const [entry] = this.entries.splice(index, 1);
    if (this.lastHit === entry) this.lastHit = undefined;
    return entry.device;
  }

  /**
   * Moves the range inserted at `base` to `newBase` (a PCI BAR the guest
   * reprogrammed). All or nothing: when the new place overlaps another range
   * or leaves the bus, the range stays where it was and BusError says why.
   */
  move(base: number, newBase: number): void {
    const index = this.entries.findIndex((entry) => entry.base === base);
    if (index < 0) throw new BusError(`cannot move the range at ${hex(base)} on the ${this.kind} bus: nothing was inserted there`);
    const { length } = this.entries[index];
    const device = this.remove(base);
    try {
      this.insert(newBase, length, device);
    } catch (error) {
      this.insert(base, length, device);
      throw error;
    }
  }

  /** The device owning `address`, its base and the offset of `address` from that base; undefined if nobody claims it. */
  find(address: number): BusTarget | undefined {
    const entry = this.entryAt(address);
    return entry ? { device: entry.device, base: entry.base, offset: address - entry.base } : undefined;
  }

  /** Dispatches a read; returns false (and fills data with 0xff) when nobody claims `address`. */
  read(address: number, data: Uint8Array): boolean {
    const entry = this.entryAt(address);
    if (!entry) {
      data.fill(UNCLAIMED_READ_BYTE);
      this.unclaimedReads++;
      this.onUnclaimed?.(address, 'read');
      return false;
    }
    entry.device.read(address - entry.base, data);
    return true;
  }

  /** Dispatches a write; returns false (and drops it) when nobody claims `address`. */
  write(address: number, data: Uint8Array): boolean {
    const entry = this.entryAt(address);
    if (!entry) {
      this.unclaimedWrites++;
      this.onUnclaimed?.(address, 'write');
      return false;
    }
    entry.device.write(address - entry.base, data);
    return true;
  }

  /**
   * The entry claiming `address`. Accesses come in runs to one device (a
   * driver polling its status register), so the last hit is checked before
   * the binary search; this is the device thread's hot path.
   */
  private entryAt(address: number): Entry | undefined {
    const last = this.lastHit;
    if (last && address >= last.base && address < last.base + last.length) return last;
    const entry = this.entries[this.firstIndexAbove(address) - 1];
    if (!entry || address >= entry.base + entry.length) return undefined;
    this.lastHit = entry;
    return entry;
  }

  /** Every claimed range sorted by base, as plain data for vCPU workers. */
  ranges(): BusRange[] {
    return this.entries.map((e) => ({ base: e.base, length: e.length, name: e.device.name }));
  }

  /** Index of the first entry whose base is greater than `address` (binary search). */
  private firstIndexAbove(address: number): number {
    let low = 0;
    let high = this.entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.entries[middle].base <= address) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
