// A firmware image as the guest sees it below 4 GiB: a private anonymous
// mapping holding a copy of the file, registered as a read-only KVM memory
// slot, so guest writes to the flash range become MMIO exits (answered as
// writes nobody claims) and the image cannot be changed. Without
// KVM_CAP_READONLY_MEM the slot is writable, as the caller is told.

import { CAP, KVM_MEM_READONLY, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../shared/kvm-abi';
import { KvmError, native } from '../../shared/native';
import type { Kvm, Vm } from './kvm';

export class FirmwareRom {
  private released = false;

  private constructor(private readonly hostAddress: bigint, readonly size: number, readonly readOnly: boolean) {}

  /** Maps `image` at `guestAddress` in memory slot `slot`. */
  static map(kvm: Kvm, vm: Vm, slot: number, guestAddress: number, image: Uint8Array): FirmwareRom {
    const addon = native();
    const mapped = addon.mmap(-1, image.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (typeof mapped === 'number') throw new KvmError(`mmap of the ${image.length}-byte firmware image`, -mapped);
    const rom = new FirmwareRom(mapped, image.length, kvm.checkExtension(CAP.KVM_CAP_READONLY_MEM) > 0);
    try {
      const view = addon.view(mapped, image.length);
      new Uint8Array(view).set(image);
      addon.detach(view);
      vm.setUserMemoryRegion(slot, guestAddress, image.length, mapped, rom.readOnly ? KVM_MEM_READONLY : 0);
    } catch (error) {
      rom.release();
      throw error;
    }
    return rom;
  }

  /** Unmaps the image; the VM must be closed (KVM keeps no reference past that). */
  release(): void {
    if (this.released) return;
    this.released = true;
    native().munmap(this.hostAddress, this.size);
  }
}
