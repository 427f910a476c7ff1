// Guest RAM: anonymous shared mappings, one per KVM memory slot, that the
// main thread, every vCPU worker and KVM all see without copies; or, for a
// restored VM, private (copy-on-write) mappings of a snapshot's memory file.
// release() unmaps them when the VM is closed (the addon's cleanup hook
// unmaps what is left when the main thread's environment is torn down).

import * as fs from 'node:fs';
import { GuestMemory, MemoryRegion, hex } from '../arch/guest-memory';
import { KVM_MEM_READONLY, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../shared/kvm-abi';
import { KvmError, native } from '../../shared/native';
import type { Vm } from './kvm';

/** Largest slot: keeps every view's length a valid typed-array length. */
const MAX_SLOT_BYTES = 2 * 1024 * 1024 * 1024;

export interface RamSlot {
  slot: number;
  guestAddress: number;
  size: number;
  hostAddress: bigint;
}

/** A range of RAM registered as KVM slots of its own, `granularity` bytes each, so each can turn read-only (PAM segments). */
export interface SegmentedRange {
  guestAddress: number;
  size: number;
  granularity: number;
}

/** A KVM memory slot over part of a RAM mapping. */
interface KvmSlot {
  slot: number;
  guestAddress: number;
  size: number;
  hostAddress: bigint;
  readOnly: boolean;
}

/** /proc/self/pagemap: one 64-bit entry per virtual page of this process. */
const PAGEMAP = '/proc/self/pagemap';
const PAGEMAP_ENTRY_BYTES = 8;
/** pagemap entry bits 63 (present in RAM) and 62 (swapped out), in the entry's high 32 bits: the page exists. */
const PAGEMAP_PRESENT_OR_SWAPPED = 0xc000_0000;
const PAGE_BYTES = 4096;
/** Pagemap entries read at once (8 MiB of entries cover 4 GiB of RAM). */
const PAGEMAP_CHUNK_ENTRIES = 1 << 17;

export class GuestRam {
  /** KVM's slots when they are not one per mapping (a segmented range); undefined: slot i is mapping i. */
  private readonly kvmSlots?: KvmSlot[];

  private constructor(
    readonly slots: RamSlot[],
    readonly memory: GuestMemory,
    /** For RAM mapped from a snapshot file: per slot, the pages the file holds data in (1 a page). */
    private readonly fileData?: Uint8Array[],
    kvmSlots?: KvmSlot[],
    private readonly vm?: Vm,
  ) {
    this.kvmSlots = kvmSlots;
  }

  /**
   * Maps RAM for the given regions (split into slots of at most 2 GiB) and
   * registers it with KVM. `segmented` (firmware boots: 0xc0000-0xfffff)
   * gets KVM slots of its own so setReadOnly can protect its pieces; the
   * host mapping, every view of it and `slots` stay as they are.
   */
  static create(vm: Vm, layout: ReadonlyArray<{ guestAddress: number; size: number }>, segmented?: SegmentedRange): GuestRam {
    const addon = native();
    const slots: RamSlot[] = [];
    const kvmSlots: KvmSlot[] = [];
    const regions: MemoryRegion[] = [];
    try {
      for (const region of layout) {
        for (let offset = 0; offset < region.size; offset += MAX_SLOT_BYTES) {
          const size = Math.min(MAX_SLOT_BYTES, region.size - offset);
          const guestAddress = region.guestAddress + offset;
          const mapped = addon.mmap(-1, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, 0);
          if (typeof mapped === 'number') throw new KvmError(`mmap of ${Math.floor(size / (1024 * 1024))} MiB guest RAM at ${hex(guestAddress)}`, -mapped);
          slots.push({ slot: slots.length, guestAddress, size, hostAddress: mapped });
          for (const piece of pieces(guestAddress, size, segmented)) {
            const hostAddress = mapped + BigInt(piece.guestAddress - guestAddress);
            const kvmSlot = { slot: kvmSlots.length, guestAddress: piece.guestAddress, size: piece.size, hostAddress, readOnly: false };
            kvmSlots.push(kvmSlot);
            vm.setUserMemoryRegion(kvmSlot.slot, kvmSlot.guestAddress, kvmSlot.size, kvmSlot.hostAddress);
          }
          regions.push({ guestAddress, size, bytes: new Uint8Array(addon.view(mapped, size)) });
        }
      }
    } catch (error) {
      for (const slot of slots) addon.munmap(slot.hostAddress, slot.size);
      throw error;
    }
    return new GuestRam(slots, new GuestMemory(regions), undefined, segmented ? kvmSlots : undefined, vm);
  }

  /** The first KVM slot number nothing of this RAM uses (for a firmware ROM). */
  get nextFreeSlot(): number {
    return this.kvmSlots?.length ?? this.slots.length;
  }

  /**
   * Makes the KVM slots of [guestAddress, guestAddress + size) (pieces of
   * the segmented range) read-only, so guest writes there exit and are
   * dropped, or writable again. KVM cannot change a slot's read-only flag in
   * place: each slot is deleted and registered again over the same memory.
   */
  setReadOnly(guestAddress: number, size: number, readOnly: boolean): void {
    const covered = this.kvmSlots?.filter((s) => s.guestAddress >= guestAddress && s.guestAddress + s.size <= guestAddress + size) ?? [];
    if (covered.length === 0 || !this.vm) throw new KvmError(`protecting guest RAM at ${hex(guestAddress)}`, 22 /* EINVAL */, 'no KVM slot of its own lies there');
    for (const kvmSlot of covered) {
      if (kvmSlot.readOnly === readOnly) continue;
      this.vm.setUserMemoryRegion(kvmSlot.slot, kvmSlot.guestAddress, 0, kvmSlot.hostAddress);
      this.vm.setUserMemoryRegion(kvmSlot.slot, kvmSlot.guestAddress, kvmSlot.size, kvmSlot.hostAddress, readOnly ? KVM_MEM_READONLY : 0);
      kvmSlot.readOnly = readOnly;
    }
  }

  /**
   * Maps each slot from `file` at its offset with MAP_PRIVATE: nothing is
   * read now, a page comes from the file when the guest first touches it,
   * and guest writes go to private copies, never to the file. So mapping
   * costs the same for any memory size. Slots larger than 2 GiB are refused
   * (GuestRam.create never makes them).
   */
  static mapFile(
    vm: Vm,
    file: string,
    layout: ReadonlyArray<{ guestAddress: number; size: number; fileOffset: number }>,
    dataPages: ReadonlyArray<readonly [number, number]>,
  ): GuestRam {
    const addon = native();
    const slots: RamSlot[] = [];
    const regions: MemoryRegion[] = [];
    const fd = fs.openSync(file, 'r');
    try {
      for (const { guestAddress, size, fileOffset } of layout) {
        if (size > MAX_SLOT_BYTES) throw new KvmError(`mmap of ${file}`, 22 /* EINVAL */, `a RAM slot of ${size} bytes is larger than 2 GiB`);
        // PROT_WRITE on a read-only fd is allowed for a private mapping: the writes stay in this process.
        const mapped = addon.mmap(fd, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fileOffset);
        if (typeof mapped === 'number') throw new KvmError(`mmap of ${Math.floor(size / (1024 * 1024))} MiB of ${file} at offset ${fileOffset}`, -mapped);
        const slot = { slot: slots.length, guestAddress, size, hostAddress: mapped };
        slots.push(slot);
        vm.setUserMemoryRegion(slot.slot, guestAddress, size, mapped);
        regions.push({ guestAddress, size, bytes: new Uint8Array(addon.view(mapped, size)) });
      }
    } catch (error) {
      for (const slot of slots) addon.munmap(slot.hostAddress, slot.size);
      throw error;
    } finally {
      fs.closeSync(fd); // the mappings keep the file
    }
    // Which of each slot's pages hold data in the file: untouched ones read as the file, not as zero.
    const fileData = layout.map(({ size, fileOffset }) => {
      const pages = new Uint8Array(size / PAGE_BYTES);
      const first = fileOffset / PAGE_BYTES;
      for (const [start, count] of dataPages) {
        const from = Math.max(start, first) - first;
        const to = Math.min(start + count, first + pages.length) - first;
        if (to > from) pages.fill(1, from, to);
      }
      return pages;
    });
    return new GuestRam(slots, new GuestMemory(regions), fileData);
  }

  /**
   * One byte per page of slot `index`: 1 where the page may hold something
   * other than zeros (it is in memory or swapped out, by /proc/self/pagemap,
   * or it is a data page of the snapshot file it was mapped from), 0 where it
   * is certainly zero. A snapshot reads only the pages marked: reading the
   * others would allocate them (untouched shared memory gets a page on the
   * first read) and cost time in proportion to the memory size.
   */
  pagesThatMayHoldData(index: number): Uint8Array {
    const slot = this.slots[index];
    const pages = new Uint8Array(slot.size / PAGE_BYTES);
    const fd = fs.openSync(PAGEMAP, 'r');
    try {
      const buffer = Buffer.alloc(PAGEMAP_CHUNK_ENTRIES * PAGEMAP_ENTRY_BYTES);
      // The entries' high halves (little endian), where the flag bits are.
      const words = new Uint32Array(buffer.buffer, buffer.byteOffset, buffer.length / 4);
      const firstEntry = Number(slot.hostAddress / BigInt(PAGE_BYTES));
      for (let page = 0; page < pages.length; page += PAGEMAP_CHUNK_ENTRIES) {
        const count = Math.min(PAGEMAP_CHUNK_ENTRIES, pages.length - page);
        const got = fs.readSync(fd, buffer, 0, count * PAGEMAP_ENTRY_BYTES, (firstEntry + page) * PAGEMAP_ENTRY_BYTES);
        for (let i = 0; i < got / PAGEMAP_ENTRY_BYTES; i++) {
          if ((words[2 * i + 1] & PAGEMAP_PRESENT_OR_SWAPPED) !== 0) pages[page + i] = 1;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    const fromFile = this.fileData?.[index];
    if (fromFile) for (let i = 0; i < pages.length; i++) pages[i] |= fromFile[i];
    return pages;
  }

  private released = false;

  /** The slot holding guest range [address, address + length) and the offset in it; undefined unless one slot holds it all. */
  locate(address: number, length: number): { slotAddress: bigint; slotSize: number; offset: number; length: number } | undefined {
    const slot = this.slots.find((s) => address >= s.guestAddress && address + length <= s.guestAddress + s.size);
    return slot && { slotAddress: slot.hostAddress, slotSize: slot.size, offset: address - slot.guestAddress, length };
  }

  /**
   * Unmaps every slot. The main thread's views are detached first, so a
   * typed array someone kept reads as empty instead of faulting. Workers must
   * be gone: their views are not detached here.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const addon = native();
    for (const region of this.memory.regions) addon.detach(region.bytes.buffer as ArrayBuffer);
    for (const slot of this.slots) addon.munmap(slot.hostAddress, slot.size);
  }
}

/** The KVM slots over one mapping: the segmented range's pieces where it overlaps, and what is left around them. */
function pieces(guestAddress: number, size: number, segmented?: SegmentedRange): { guestAddress: number; size: number }[] {
  const end = guestAddress + size;
  if (!segmented || segmented.guestAddress >= end || segmented.guestAddress + segmented.size <= guestAddress) return [{ guestAddress, size }];
  const from = Math.max(guestAddress, segmented.guestAddress);
  const to = Math.min(end, segmented.guestAddress + segmented.size);
  const result: { guestAddress: number; size: number }[] = [];
  if (from > guestAddress) result.push({ guestAddress, size: from - guestAddress });
  for (let at = from; at < to; at += segmented.granularity) result.push({ guestAddress: at, size: Math.min(segmented.granularity, to - at) });
  if (end > to) result.push({ guestAddress: to, size: end - to });
  return result;
}
