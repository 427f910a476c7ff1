// How KVM holds an interrupt of the userspace PIC (split irqchip), on the
// real /dev/kvm: the facts the snapshot's rule for an ExtINT vector in
// flight rests on (run-loop.ts settleExternalInterrupt). KVM_INTERRUPT only
// parks the vector in the vCPU; it is taken when KVM next enters the guest.
// A KVM_RUN that leaves at once (immediate_exit, which a pause sets) does
// not enter, so the vector stays parked where no ioctl reads it back
// (KVM_GET_VCPU_EVENTS shows nothing), and kvm_run says so only through
// ready_for_interrupt_injection = 0 with IF = 1. A snapshot that missed it
// would restore a PIC with the interrupt in service and a guest that never
// gets it.

import * as os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Kvm } from '../../src/main/kvm/kvm';
import { EXIT, IOCTL, KVM_RUN, VCPU_EVENTS } from '../../src/shared/kvm-abi';
import { ERRNO, check, native } from '../../src/shared/native';
import { rawVm } from '../support/raw-vm';

const CODE = 0x1000;
const HANDLER = 0x2000;
const VECTOR = 0x20;
/** sti ; out 0x80, al ; hlt ; jmp to the hlt */
const PROGRAM = [0xfb, 0xe6, 0x80, 0xf4, 0xeb, 0xfd];
/** out 0x81, al ; iret */
const INTERRUPT_HANDLER = [0xe6, 0x81, 0xcf];
const APIC_SVR = 0xf0;
const APIC_LVT_LINT0 = 0x350;
const EEXIST = os.constants.errno.EEXIST;

test('an ExtINT vector KVM_INTERRUPT parks is not in the vCPU events after an immediate exit, ready_for_interrupt_injection is 0, and the next entry delivers it', () => {
  const kvm = Kvm.open(process.env.TSVMM_KVM_DEVICE ?? '/dev/kvm');
  const raw = rawVm(kvm, { ramBytes: 0x10000, splitIrqchip: true, cpuid: true });
  try {
    const { vcpu, run } = raw;
    const memory = raw.ram.memory.regions[0].bytes;
    memory.set(INTERRUPT_HANDLER, HANDLER);
    new DataView(memory.buffer, memory.byteOffset).setUint32(VECTOR * 4, HANDLER, true); // IVT entry 0000:2000
    const lapic = vcpu.getLapic();
    const regs = new DataView(lapic.buffer, lapic.byteOffset);
    regs.setUint32(APIC_SVR, 0x1ff, true); // software-enabled
    regs.setUint32(APIC_LVT_LINT0, 0x700, true); // ExtINT, not masked: the PIC's virtual wire
    vcpu.setLapic(lapic);
    raw.startRealMode(PROGRAM, CODE);

    const runOnce = () => native().run(vcpu.fd, IOCTL.KVM_RUN);
    const exitPort = () => run.getUint16(KVM_RUN.io_port, true);
    const ready = () => run.getUint8(KVM_RUN.ready_for_interrupt_injection);
    const interruptFlag = () => run.getUint8(KVM_RUN.if_flag);
    const kvmInterrupt = (vector: number) => native().ioctl(vcpu.fd, IOCTL.KVM_INTERRUPT, new Uint32Array([vector]));

    check('KVM_RUN', runOnce());
    assert.is(run.getUint32(KVM_RUN.exit_reason, true), EXIT.IO);
    assert.is(exitPort(), 0x80);
    assert.is(interruptFlag(), 1, 'IF is set after the sti');
    assert.is(ready(), 1, 'KVM takes an interrupt now');

    check('KVM_INTERRUPT', kvmInterrupt(VECTOR));
    run.setUint8(KVM_RUN.immediate_exit, 1);
    assert.is(runOnce(), -ERRNO.EINTR);
    run.setUint8(KVM_RUN.immediate_exit, 0);
    assert.is(interruptFlag(), 1);
    assert.is(ready(), 0, 'the parked vector shows as ready_for_interrupt_injection = 0 with IF = 1');
    const events = vcpu.saveState([], kvm.xsaveSize()).events;
    assert.is(events[VCPU_EVENTS.interruptInjected], 0, 'KVM_GET_VCPU_EVENTS does not report the parked vector');
    assert.is(kvmInterrupt(VECTOR), -EEXIST, 'the vector is still parked: a second KVM_INTERRUPT is refused');

    check('KVM_RUN', runOnce());
    assert.is(run.getUint32(KVM_RUN.exit_reason, true), EXIT.IO);
    assert.is(exitPort(), 0x81, 'the next entry delivered the vector: the handler ran');
  } finally {
    raw.close();
    kvm.close();
  }
});

test.run();
