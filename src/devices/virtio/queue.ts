// A split virtqueue, device side (virtio 1.2 section 2.7; rust-vmm's
// virtio-queue). Every address and length the guest gives is checked against
// guest memory before it is touched; a chain that leaves guest RAM, loops,
// is longer than the queue or overflows is refused as a whole, so a hostile
// driver gets an error and nothing outside its own buffers is read or written.

/** What a device may touch: guest RAM, by guest-physical address. */
export interface DmaMemory {
  /** True when [address, address + length) is all guest RAM in one piece. */
  contains(address: number, length: number): boolean;
  /** A view of guest RAM (only after contains() said yes). */
  slice(address: number, length: number): Uint8Array;
}

import { StateFields, booleanField, checkFields, integerField, loadFields, nullableField, saveFields } from '../snapshot';

const DESC_F_NEXT = 1;
const DESC_F_WRITE = 2;
const DESC_F_INDIRECT = 4;
const DESCRIPTOR_BYTES = 16;
const AVAIL_F_NO_INTERRUPT = 1;
/** The largest queue tsvmm offers (the 256; the spec allows 32768). */
const MAX_QUEUE_SIZE = 256;

/** One buffer of a chain, inside guest RAM. */
export interface ChainBuffer {
  address: number;
  length: number;
  writable: boolean;
}

/** A chain the driver made available: its head (what goes back in the used ring) and its buffers in order. */
export interface DescriptorChain {
  head: number;
  buffers: ChainBuffer[];
}

/** Why a chain was refused (the device then fails the request or asks for a reset). */
export class ChainError extends Error {
  override name = 'ChainError';
}

export interface QueueFeatures {
  eventIdx: boolean;
  indirect: boolean;
}

/** Plain, JSON-able state of a SplitQueue, for snapshots: what the driver set up and where the device is in the rings. */
export interface SplitQueueState {
  size: number;
  ready: boolean;
  descTable: number;
  availRing: number;
  usedRing: number;
  msixVector: number;
  nextAvail: number;
  nextUsed: number;
  signalledUsed: number | null;
}

const u16Field = integerField(0, 0xffff);
/** A guest-physical address as the transport assembles it from two 32-bit halves. */
const addressField = integerField(0, 2 ** 64, 'a guest-physical address');
const SPLIT_QUEUE_FIELDS: StateFields<SplitQueueState, SplitQueueState> = {
  size: u16Field,
  ready: booleanField,
  descTable: addressField,
  availRing: addressField,
  usedRing: addressField,
  msixVector: u16Field,
  nextAvail: u16Field,
  nextUsed: u16Field,
  signalledUsed: nullableField(u16Field),
};

/** The first problem with `state` as a SplitQueue's saved state (at `path` in messages), or undefined. */
export function splitQueueStateProblem(state: unknown, path: string): string | undefined {
  return checkFields(state, SPLIT_QUEUE_FIELDS, path);
}

export class SplitQueue {
  /** Set by the driver through the common configuration. */
  size = MAX_QUEUE_SIZE;
  ready = false;
  descTable = 0;
  availRing = 0;
  usedRing = 0;
  msixVector = 0xffff;
  /** The next avail index to take, and the used index to publish. */
  private nextAvail = 0;
  private nextUsed = 0;
  /** The used index when the driver was last notified (event index suppression); null before the first. */
  private signalledUsed: number | null = null;

  constructor(readonly maxSize = MAX_QUEUE_SIZE) {
    this.size = maxSize;
  }

  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descTable = 0;
    this.availRing = 0;
    this.usedRing = 0;
    this.msixVector = 0xffff;
    this.nextAvail = 0;
    this.nextUsed = 0;
    this.signalledUsed = null;
  }

  snapshot(): SplitQueueState {
    return saveFields(this as unknown as SplitQueueState, SPLIT_QUEUE_FIELDS);
  }

  /** Puts a state that splitQueueStateProblem accepted back in place (the transport checks all its queues first). */
  restoreChecked(state: SplitQueueState): void {
    loadFields(this as unknown as SplitQueueState, state, SPLIT_QUEUE_FIELDS);
  }

  /** The rings the driver set up lie in guest RAM with the spec's alignments. */
  isValid(memory: DmaMemory): boolean {
    const n = this.size;
    if (n === 0 || n > this.maxSize || (n & (n - 1)) !== 0) return false;
    if (this.descTable % 16 !== 0 || this.availRing % 2 !== 0 || this.usedRing % 4 !== 0) return false;
    return memory.contains(this.descTable, DESCRIPTOR_BYTES * n)
      && memory.contains(this.availRing, 6 + 2 * n)
      && memory.contains(this.usedRing, 6 + 8 * n);
  }

  /**
   * The next available chain, or undefined when the driver has made none
   * available. A malformed chain throws ChainError; it has been taken off the
   * ring (its head is in the error's `head`) so the device can complete it
   * with an error status.
   */
  pop(memory: DmaMemory, features: QueueFeatures): DescriptorChain | undefined {
    const avail = this.ring(memory, this.availRing, 4 + 2 * this.size + 2);
    let availIdx = Atomics.load(avail.u16, 1);
    if (availIdx === this.nextAvail && features.eventIdx) {
      // Drained: ask for a notification at the next buffer (avail_event), then
      // look once more, for a buffer made available before the driver could see it.
      const used = this.ring(memory, this.usedRing, 4 + 8 * this.size + 2);
      Atomics.store(used.u16, 2 + 4 * this.size, this.nextAvail);
      availIdx = Atomics.load(avail.u16, 1);
    }
    if (availIdx === this.nextAvail) return undefined;
    if (((availIdx - this.nextAvail) & 0xffff) > this.size) {
      throw new ChainError(`the driver claims ${(availIdx - this.nextAvail) & 0xffff} new buffers in a queue of ${this.size}`);
    }
    const head = avail.u16[2 + (this.nextAvail % this.size)];
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    try {
      return { head, buffers: this.walk(memory, head, features) };
    } catch (error) {
      if (error instanceof ChainError) (error as ChainError & { head?: number }).head = head;
      throw error;
    }
  }

  /** Puts chain `head` in the used ring with `written` bytes; returns whether the driver wants an interrupt now. */
  push(memory: DmaMemory, head: number, written: number, features: QueueFeatures): boolean {
    const used = this.ring(memory, this.usedRing, 4 + 8 * this.size + 2);
    const slot = this.nextUsed % this.size;
    const entry = new DataView(used.bytes.buffer, used.bytes.byteOffset + 4 + 8 * slot, 8);
    entry.setUint32(0, head, true);
    entry.setUint32(4, written >>> 0, true);
    const old = this.nextUsed;
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // The entry before the index: the driver reads idx, then the entry.
    Atomics.store(used.u16, 1, this.nextUsed);
    return this.needsInterrupt(memory, old, features);
  }

  private needsInterrupt(memory: DmaMemory, old: number, features: QueueFeatures): boolean {
    const avail = this.ring(memory, this.availRing, 4 + 2 * this.size + 2);
    if (!features.eventIdx) return (Atomics.load(avail.u16, 0) & AVAIL_F_NO_INTERRUPT) === 0;
    const usedEvent = Atomics.load(avail.u16, 2 + this.size);
    const newIdx = this.nextUsed;
    // The first interrupt after a reset, or one the driver asked for (vring_need_event).
    const from = this.signalledUsed ?? old;
    this.signalledUsed = newIdx;
    return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - from) & 0xffff);
  }

  private walk(memory: DmaMemory, head: number, features: QueueFeatures): ChainBuffer[] {
    const buffers: ChainBuffer[] = [];
    let table = this.descTable;
    let tableSize = this.size;
    let index = head;
    let indirect = false;
    let seenWritable = false;
    let total = 0;
    for (let steps = 0; ; steps++) {
      if (index >= tableSize) throw new ChainError(`descriptor ${index} is past the table of ${tableSize}`);
      if (steps >= tableSize) throw new ChainError(`the chain from ${head} is longer than its table (${tableSize}): it loops`);
      const desc = new DataView(memory.slice(table + DESCRIPTOR_BYTES * index, DESCRIPTOR_BYTES).slice().buffer);
      const address = desc.getUint32(0, true) + desc.getUint32(4, true) * 2 ** 32;
      const length = desc.getUint32(8, true);
      const flags = desc.getUint16(12, true);
      const next = desc.getUint16(14, true);
      if ((flags & DESC_F_INDIRECT) !== 0) {
        if (!features.indirect) throw new ChainError('an indirect descriptor, but INDIRECT_DESC was not negotiated');
        if (indirect) throw new ChainError('an indirect descriptor inside an indirect table');
        // Direct descriptors may come before it (virtio 1.2 2.7.5.3.2); nothing may follow it.
        if ((flags & DESC_F_NEXT) !== 0) throw new ChainError('an indirect descriptor must end its chain');
        if (length === 0 || length % DESCRIPTOR_BYTES !== 0) throw new ChainError(`an indirect table of ${length} bytes is not a whole number of descriptors`);
        if (!memory.contains(address, length)) throw new ChainError(`the indirect table at 0x${address.toString(16)} is not in guest RAM`);
        table = address;
        tableSize = length / DESCRIPTOR_BYTES;
        index = 0;
        indirect = true;
        steps = -1;
        continue;
      }
      const writable = (flags & DESC_F_WRITE) !== 0;
      if (!writable && seenWritable) throw new ChainError('a device-readable buffer after a device-writable one');
      seenWritable ||= writable;
      if (length > 0 && !memory.contains(address, length)) {
        throw new ChainError(`a ${length}-byte buffer at 0x${address.toString(16)} is not in guest RAM`);
      }
      total += length;
      if (total > 2 ** 32) throw new ChainError('the chain\'s lengths add up to more than 4 GiB');
      buffers.push({ address, length, writable });
      if ((flags & DESC_F_NEXT) === 0) return buffers;
      index = next;
    }
  }

  private ring(memory: DmaMemory, address: number, length: number): { bytes: Uint8Array; u16: Uint16Array } {
    const bytes = memory.slice(address, length);
    // Ring fields are 16-bit aligned (isValid checked the bases), so a Uint16Array fits exactly.
    return { bytes, u16: new Uint16Array(bytes.buffer, bytes.byteOffset, Math.floor(length / 2)) };
  }
}
