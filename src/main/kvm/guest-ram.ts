// Guest RAM: anonymous shared mappings, one per KVM memory slot, that the
// main thread, every vCPU worker and KVM all see without copies. release()
// unmaps them when the VM is closed (the addon's cleanup hook unmaps what is
// left when the main thread's environment is torn down).

import { GuestMemory, MemoryRegion, hex } from '../arch/guest-memory';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../shared/kvm-abi';
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

export class GuestRam {
  private constructor(readonly slots: RamSlot[], readonly memory: GuestMemory) {}

  /** Maps RAM for the given regions (split into slots of at most 2 GiB) and registers it with KVM. */
  static create(vm: Vm, layout: ReadonlyArray<{ guestAddress: number; size: number }>): GuestRam {
    const addon = native();
    const slots: RamSlot[] = [];
    const regions: MemoryRegion[] = [];
    try {
      for (const region of layout) {
        for (let offset = 0; offset < region.size; offset += MAX_SLOT_BYTES) {
          const size = Math.min(MAX_SLOT_BYTES, region.size - offset);
          const guestAddress = region.guestAddress + offset;
          const mapped = addon.mmap(-1, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, 0);
          if (typeof mapped === 'number') throw new KvmError(`mmap of ${Math.floor(size / (1024 * 1024))} MiB guest RAM at ${hex(guestAddress)}`, -mapped);
          const slot = { slot: slots.length, guestAddress, size, hostAddress: mapped };
          slots.push(slot);
          vm.setUserMemoryRegion(slot.slot, guestAddress, size, mapped);
          regions.push({ guestAddress, size, bytes: new Uint8Array(addon.view(mapped, size)) });
        }
      }
    } catch (error) {
      for (const slot of slots) addon.munmap(slot.hostAddress, slot.size);
      throw error;
    }
    return new GuestRam(slots, new GuestMemory(regions));
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
