import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootMsrs } from '../../../../src/main/arch/msrs';

test('boot MSRs: indices, values and order as Firecracker sets them', () => {
  assert.equal(bootMsrs(), [
    { index: 0x174, data: 0n }, // IA32_SYSENTER_CS
    { index: 0x175, data: 0n }, // IA32_SYSENTER_ESP
    { index: 0x176, data: 0n }, // IA32_SYSENTER_EIP
    { index: 0xc000_0081, data: 0n }, // STAR
    { index: 0xc000_0083, data: 0n }, // CSTAR
    { index: 0xc000_0102, data: 0n }, // KERNEL_GS_BASE
    { index: 0xc000_0084, data: 0n }, // SYSCALL_MASK (FMASK)
    { index: 0xc000_0082, data: 0n }, // LSTAR
    { index: 0x10, data: 0n }, // TSC
    { index: 0x1a0, data: 1n }, // MISC_ENABLE: fast strings
    { index: 0x2ff, data: 0x806n }, // MTRR_DEF_TYPE: enabled (bit 11), write-back (6)
  ]);
});

test('each call returns a fresh list', () => {
  const first = bootMsrs();
  first[0].data = 5n;
  assert.is(bootMsrs()[0].data, 0n);
});

test.run();
