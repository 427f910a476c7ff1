import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalInterruptError, setLocalInterrupts } from '../../../../src/main/arch/local-interrupts';

function lapicWith(lint0: number[], lint1: number[]): Uint8Array {
  const regs = new Uint8Array(1024);
  for (let i = 0; i < regs.length; i++) regs[i] = i & 0xff;
  regs.set(lint0, 0x350);
  regs.set(lint1, 0x360);
  return regs;
}

test('masked reset LVTs get ExtINT on LINT0 and NMI on LINT1, mask kept', () => {
  // KVM resets each LVT to 0x00010000 (masked, fixed delivery).
  const regs = lapicWith([0x00, 0x00, 0x01, 0x00], [0x00, 0x00, 0x01, 0x00]);
  const before = Uint8Array.from(regs);
  assert.is(setLocalInterrupts(regs), regs, 'modified in place');
  assert.equal([...regs.subarray(0x350, 0x354)], [0x00, 0x07, 0x01, 0x00]); // 0x00010700
  assert.equal([...regs.subarray(0x360, 0x364)], [0x00, 0x04, 0x01, 0x00]); // 0x00010400
  for (let i = 0; i < regs.length; i++) {
    if ((i >= 0x350 && i < 0x354) || (i >= 0x360 && i < 0x364)) continue;
    assert.is(regs[i], before[i], `byte ${i} untouched`);
  }
});

test('only bits 10:8 change: vector and other bits survive', () => {
  // LINT0 = 0x0000e6ff (mode 110, vector 0xff, bits 15:13 set); LINT1 = 0x0000a3a5 (mode 011).
  const regs = lapicWith([0xff, 0xe6, 0x00, 0x00], [0xa5, 0xa3, 0x00, 0x00]);
  setLocalInterrupts(regs);
  assert.equal([...regs.subarray(0x350, 0x354)], [0xff, 0xe7, 0x00, 0x00]); // 0x0000e7ff
  assert.equal([...regs.subarray(0x360, 0x364)], [0xa5, 0xa4, 0x00, 0x00]); // 0x0000a4a5
});

test('a buffer that is not a kvm_lapic_state is rejected', () => {
  assert.throws(() => setLocalInterrupts(new Uint8Array(0x360)), (e: unknown) => e instanceof LocalInterruptError);
});

test.run();
