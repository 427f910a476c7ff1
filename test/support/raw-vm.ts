// A raw VM for KVM tests that talk to the kernel interface directly, with
// no Machine: RAM from 0, one vCPU and its kvm_run area, and a way to start
// a hand-assembled real-mode program (CS base 0, IP at the program).

import { GuestRam, SegmentedRange } from '../../src/main/kvm/guest-ram';
import type { Kvm } from '../../src/main/kvm/kvm';
import { native } from '../../src/shared/native';

export interface RawVmOptions {
  ramBytes: number;
  /** RAM pieces with KVM slots of their own (GuestRam.create's segmented range). */
  segmented?: SegmentedRange;
  /** KVM's in-kernel PIC, IOAPIC and PIT. */
  irqchip?: boolean;
  /** The split irqchip: local APICs in KVM, no PIC, IOAPIC or PIT there (KVM_CAP_SPLIT_IRQCHIP with 24 pins). */
  splitIrqchip?: boolean;
  /** The host's CPUID on the vCPU (what KVM supports). */
  cpuid?: boolean;
}

/** A raw VM on `kvm` (which the caller closes after close()). */
export function rawVm(kvm: Kvm, options: RawVmOptions) {
  const vm = kvm.createVm();
  vm.setTssAddress(0xfffb_d000);
  vm.setIdentityMapAddress(0xfffb_c000);
  if (options.irqchip) {
    vm.createIrqchip();
    vm.createPit2();
  }
  if (options.splitIrqchip) vm.enableSplitIrqchip(24);
  const ram = GuestRam.create(vm, [{ guestAddress: 0, size: options.ramBytes }], options.segmented);
  const vcpu = vm.createVcpu(0);
  if (options.cpuid) vcpu.setCpuid(kvm.supportedCpuid());
  const runSize = kvm.vcpuMmapSize();
  const runAddress = vcpu.mapRunArea(runSize);
  const run = new DataView(native().view(runAddress, runSize));
  return {
    vm, vcpu, ram, run,
    /** Puts `program` at `at` and points the vCPU there in real mode (CS base 0), with `rbx` if given. */
    startRealMode(program: number[], at: number, rbx?: bigint): void {
      ram.memory.regions[0].bytes.set(program, at);
      const sregs = vcpu.getSregs();
      vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, base: 0n, selector: 0 } });
      const regs = vcpu.getRegs();
      vcpu.setRegs({ ...regs, rip: BigInt(at), rflags: 2n, ...(rbx === undefined ? {} : { rbx }) });
    },
    close(): void {
      native().detach(run.buffer as ArrayBuffer);
      vcpu.unmapRunArea(runAddress, runSize);
      vcpu.close();
      ram.release();
      vm.close();
    },
  };
}
