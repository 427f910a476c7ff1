// The bare-metal test guests (guests/, built by `make -C guests` into
// guests/out/*.elf) booted by QEMU with KVM through their PVH entry: QEMU is
// the reference VMM, so a guest that passes here is right, and a tsvmm test
// that fails with the same guest points at tsvmm. Every guest resets through
// the i8042 (QEMU exits under -no-reboot) or, for `fault`, triple-faults.
// Not checked, with the reason printed, only when qemu-system-x86_64 is not
// installed (Debian: apt-get install qemu-system-x86). That case is one
// passing test that prints the reason.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { QEMU_MISSING, bootQemu, findQemu, runQemu } from '../support/qemu';
import { guest } from '../support/tsvmm';

/** The RTC start time handed to the cmos guest. */
const RTC_BASE = '2026-11-26T08:15:42';

const qemu = findQemu();
/** Registers a test that needs QEMU; without QEMU none is registered (see below). */
const qemuTest = qemu ? test : () => undefined;
const needQemu = (): string => qemu as string;

if (!qemu) {
  test('QEMU guests', () => {
    console.log(QEMU_MISSING);
  });
}

qemuTest('hello: prints from long mode and resets', async () => {
  assert.equal(await bootQemu(needQemu(), 'hello'), ['hello: long mode ok']);
});

for (const cpus of [1, 2, 8]) {
  qemuTest(`smp: starts all APs with -smp ${cpus}`, async () => {
    const ids = Array.from({ length: cpus }, (_, i) => i).join(' ');
    assert.equal(await bootQemu(needQemu(), 'smp', ['-smp', String(cpus)]), [
      `smp: ${cpus} of ${cpus} CPUs online`,
      `smp: apic ids ${ids}`,
    ]);
  });
}

qemuTest('irq: ten COM1 THR-empty interrupts through the 8259 on vector 0x24', async () => {
  assert.equal(await bootQemu(needQemu(), 'irq'), ['irq: 0123456789', 'irq: 10 interrupts on vector 0x24']);
});

qemuTest('cmos: reads the RTC (BCD, 24h) and the memory size', async () => {
  const lines = await bootQemu(needQemu(), 'cmos', ['-rtc', `base=${RTC_BASE}`]);
  assert.is(lines.length, 2, JSON.stringify(lines));
  // the clock runs from RTC_BASE while SeaBIOS boots (~2 s): same minute, a few seconds on
  const match = /^cmos: 2026-11-26 08:15:(\d\d) \(bcd, 24h\)$/.exec(lines[0]);
  assert.ok(match, `time line ${JSON.stringify(lines[0])}`);
  const seconds = Number(match[1]);
  assert.ok(seconds >= 42 && seconds <= 59, `seconds ${seconds}`);
  // QEMU: (128 MiB - 16 MiB) / 64 KiB = 0x700
  assert.is(lines[1], 'cmos: mem above 16M: 0x700');
});

qemuTest('stringio: rep outsb to COM1, rep outsw/insb/insw at port 0x510', async () => {
  const lines = await bootQemu(needQemu(), 'stringio');
  assert.is(lines.length, 3, JSON.stringify(lines));
  assert.is(lines[0], 'stringio: rep outsb ok');
  // Under QEMU 0x510 is the fw_cfg selector: the last word of the rep outsw (0x0000)
  // selects the signature, which rep insb then reads: "QEMU" and zeros past its end.
  assert.is(lines[1], 'stringio: insb 51 45 4d 55 00 00 00 00 00 00 00 00 00 00 00 00');
  assert.match(lines[2], /^stringio: insw( [0-9a-f]{4}){8}$/);
});

qemuTest('mmio: accesses of 1, 2, 4 and 8 bytes at 0xd0000000 complete', async () => {
  // QEMU has no device there, so only the shape of the output is meaningful
  const lines = await bootQemu(needQemu(), 'mmio');
  assert.is(lines.length, 2, JSON.stringify(lines));
  assert.match(lines[0], /^mmio: read8 [0-9a-f]{2} read16 [0-9a-f]{4} read32 [0-9a-f]{8} read64 [0-9a-f]{16}$/);
  assert.match(lines[1], /^mmio: unclaimed [0-9a-f]{8}$/);
});

qemuTest('fault: triple-faults after saying so', async () => {
  assert.equal(await bootQemu(needQemu(), 'fault'), ['fault: about to triple fault']);
});

qemuTest('chatty: prints numbered lines for ever (QEMU is stopped after a few seconds)', async () => {
  const run = await runQemu(needQemu(), guest('chatty'), [], 8_000);
  assert.ok(run.timedOut, 'the guest never ends by itself');
  assert.ok(run.lines.length >= 3, JSON.stringify(run.output.slice(0, 200)));
  run.lines.slice(0, -1).forEach((line, i) => assert.is(line, `chatty: line ${i}`));
});

test.run();
