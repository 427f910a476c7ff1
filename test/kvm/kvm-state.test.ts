// The KVM state a snapshot holds (Vcpu.saveState/restoreState,
// Vm.saveState/restoreState) on the real /dev/kvm: a raw VM runs a real-mode
// loop that reads port 0x80 and writes the value plus one to port 0x81; it is
// stopped just after a read exit (completed by a KVM_RUN with immediate_exit,
// as a pause does), its state is read and put on a second VM, and the second
// VM carries on with the write of that read's value plus one.

import { test } from 'uvu';
import { rawVm as rawKvmVm } from '../support/raw-vm';
import * as assert from 'uvu/assert';
import { GuestRam } from '../../src/main/kvm/guest-ram';
import { Kvm, VcpuState } from '../../src/main/kvm/kvm';
import { EXIT, IOCTL, KVM_RUN } from '../../src/shared/kvm-abi';
import { ERRNO, check, native } from '../../src/shared/native';

const CODE = 0x1000;
const RAM_BYTES = 0x10000;
/** in al, 0x80 ; inc al ; out 0x81, al ; jmp back to the in */
const PROGRAM = [0xe4, 0x80, 0xfe, 0xc0, 0xe6, 0x81, 0xeb, 0xf8];
const MSR_IA32_TSC = 0x10;
const MSR_IA32_SYSENTER_CS = 0x174;

function rawVm(kvm: Kvm) {
  const raw = rawKvmVm(kvm, { ramBytes: RAM_BYTES, irqchip: true, cpuid: true });
  const { vcpu, run } = raw;
  return {
    ...raw,
    /** KVM_RUN once: the port and the byte of an I/O exit (filling in `readValue` for a read). */
    step(readValue = 0): { port: number; value: number } {
      check('KVM_RUN', native().run(vcpu.fd, IOCTL.KVM_RUN));
      assert.is(run.getUint32(KVM_RUN.exit_reason, true), EXIT.IO);
      const at = Number(run.getBigUint64(KVM_RUN.io_data_offset, true));
      if (run.getUint8(KVM_RUN.io_direction) === 0) run.setUint8(at, readValue);
      return { port: run.getUint16(KVM_RUN.io_port, true), value: run.getUint8(at) };
    },
    /** What a pause does: a KVM_RUN with immediate_exit completes the access in flight and returns EINTR without running on. */
    completeAccess(): void {
      run.setUint8(KVM_RUN.immediate_exit, 1);
      assert.is(native().run(vcpu.fd, IOCTL.KVM_RUN), -ERRNO.EINTR);
      run.setUint8(KVM_RUN.immediate_exit, 0);
    },
  };
}

const hex = (bytes: Uint8Array | undefined) => (bytes ? Buffer.from(bytes).toString('hex') : undefined);

/** The parts of a vCPU state that must come back byte for byte (the TSC moves on). */
function comparable(state: VcpuState) {
  return {
    mpState: state.mpState, regs: hex(state.regs), sregs: hex(state.sregs), xsave: hex(state.xsave), xcrs: hex(state.xcrs),
    fpu: hex(state.fpu), debugregs: hex(state.debugregs), lapic: hex(state.lapic), tscKhz: state.tscKhz, events: hex(state.events),
    msrs: state.msrs.filter((msr) => msr.index !== MSR_IA32_TSC).map((msr) => `${msr.index.toString(16)}=${msr.data.toString(16)}`),
  };
}

test('the state read on one VM, put on another, reads back the same, and the guest goes on from the instruction after the completed read', () => {
  const kvm = Kvm.open(process.env.TSVMM_KVM_DEVICE ?? '/dev/kvm');
  const a = rawVm(kvm);
  let b: ReturnType<typeof rawVm> | undefined;
  try {
    a.startRealMode(PROGRAM, CODE, 0x1234_5678n);
    a.vcpu.setMsrs([{ index: MSR_IA32_TSC, data: 1_000_000_000_000n }, { index: MSR_IA32_SYSENTER_CS, data: 0x1234n }]);

    assert.equal(a.step(), { port: 0x80, value: 0 });
    assert.equal(a.step(), { port: 0x81, value: 1 });
    assert.equal(a.step(41), { port: 0x80, value: 41 });
    a.completeAccess();

    const msrs = a.vcpu.readableMsrs(kvm.msrIndexList());
    assert.ok(msrs.includes(MSR_IA32_TSC), 'KVM lists and reads the TSC');
    const vcpuState = a.vcpu.saveState(msrs, kvm.xsaveSize());
    const vmState = a.vm.saveState(true);
    assert.is(vcpuState.xsave !== undefined, kvm.xsaveSize() > 0);
    const tscAtSave = vcpuState.msrs.find((msr) => msr.index === MSR_IA32_TSC)!.data;
    assert.ok(tscAtSave >= 1_000_000_000_000n, 'the TSC counts on from the value written');

    b = rawVm(kvm);
    b.ram.memory.regions[0].bytes.set(a.ram.memory.regions[0].bytes);
    b.vm.restoreState(vmState);
    b.vcpu.restoreState(vcpuState);

    const readBack = b.vcpu.saveState(msrs, kvm.xsaveSize());
    assert.equal(comparable(readBack), comparable(vcpuState));
    const tscAfter = readBack.msrs.find((msr) => msr.index === MSR_IA32_TSC)!.data;
    assert.ok(tscAfter >= tscAtSave && tscAfter - tscAtSave < 60n * BigInt(vcpuState.tscKhz) * 1000n, `the TSC goes on from the saved ${tscAtSave}, not from the new VM's (${tscAfter})`);
    const vmBack = b.vm.saveState(true);
    assert.equal(hex(vmBack.irqchip!.picMaster), hex(vmState.irqchip!.picMaster));
    assert.equal(hex(vmBack.irqchip!.picSlave), hex(vmState.irqchip!.picSlave));
    assert.equal(hex(vmBack.irqchip!.ioapic), hex(vmState.irqchip!.ioapic));
    assert.ok(vmBack.clock.clock >= vmState.clock.clock, 'the kvmclock goes on from the saved value');

    assert.equal(b.step(), { port: 0x81, value: 42 }, 'the second VM writes the first one\'s read plus one');
    assert.equal(b.step(7), { port: 0x80, value: 7 });
    assert.equal(b.step(), { port: 0x81, value: 8 });
    assert.is(b.vcpu.getRegs().rbx, 0x1234_5678n);
  } finally {
    b?.close();
    a.close();
    kvm.close();
  }
});

test('readableMsrs keeps only the MSRs KVM_GET_MSRS reads', () => {
  const kvm = Kvm.open(process.env.TSVMM_KVM_DEVICE ?? '/dev/kvm');
  const a = rawVm(kvm);
  try {
    const listed = kvm.msrIndexList();
    const readable = a.vcpu.readableMsrs([...listed, 0xdead_beef]);
    assert.not.ok(readable.includes(0xdead_beef), 'an MSR that does not exist is dropped');
    assert.is(a.vcpu.getMsrs(readable).length, readable.length);
    console.log(`KVM lists ${listed.length} MSRs, reads ${readable.length}; XSAVE area ${kvm.xsaveSize()} bytes`);
  } finally {
    a.close();
    kvm.close();
  }
});

test('guest RAM reports as possibly holding data only the pages written, not the untouched rest', () => {
  const kvm = Kvm.open(process.env.TSVMM_KVM_DEVICE ?? '/dev/kvm');
  const vm = kvm.createVm();
  const ram = GuestRam.create(vm, [{ guestAddress: 0, size: 64 * 1024 * 1024 }]);
  try {
    const bytes = ram.memory.regions[0].bytes;
    for (const page of [0, 5, 16383]) bytes[page * 4096 + 100] = 1;
    const marked = ram.pagesThatMayHoldData(0);
    assert.is(marked.length, 16384);
    assert.equal([...marked.keys()].filter((page) => marked[page] !== 0), [0, 5, 16383]);
  } finally {
    ram.release();
    vm.close();
    kvm.close();
  }
});

test.run();
