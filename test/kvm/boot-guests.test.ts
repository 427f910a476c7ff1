// Boots each bare-metal test guest under tsvmm on real /dev/kvm and checks
// its serial output byte for byte. Each guest proves one thing; the same
// binaries are proven under QEMU in qemu-guests.test.ts.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { explain, guest, runTsvmm } from '../support/tsvmm';

for (const protocol of ['linux', 'pvh'] as const) {
  test(`hello boots through the ${protocol} entry and resets with exit 0`, async () => {
    const result = await runTsvmm(['--kernel', guest('hello'), '--boot-protocol', protocol]);
    assert.is(result.code, 0, explain(result));
    assert.is(result.stdout, 'hello: long mode ok\n', explain(result));
    assert.is(result.stderr, '', explain(result));
  });
}

test('without --kernel the bundled demo guest boots', async () => {
  const result = await runTsvmm([]);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, 'hello: long mode ok\n', explain(result));
});

for (const cpus of [1, 2, 8]) {
  for (const protocol of ['linux', 'pvh'] as const) {
    test(`smp: the BSP starts all ${cpus - 1} APs (--cpus ${cpus}, ${protocol} entry)`, async () => {
      const result = await runTsvmm(['--kernel', guest('smp'), '--cpus', String(cpus), '--boot-protocol', protocol]);
      assert.is(result.code, 0, explain(result));
      const ids = Array.from({ length: cpus }, (_, i) => i).join(' ');
      assert.is(result.stdout, `smp: ${cpus} of ${cpus} CPUs online\nsmp: apic ids ${ids}\n`, explain(result));
    });
  }
}

test('cmos: the RTC starts at --rtc-base (BCD, 24 h) and the CMOS reports the memory above 16 MiB', async () => {
  const result = await runTsvmm(['--kernel', guest('cmos'), '--rtc-base', '2026-11-26T08:15:42', '--mem', '256']);
  assert.is(result.code, 0, explain(result));
  // The clock runs from the base; the guest reads it well within a second of boot.
  assert.match(result.stdout, /^cmos: 2026-11-26 08:15:4[23] \(bcd, 24h\)\n/, explain(result));
  // (256 MiB - 16 MiB) / 64 KiB = 3840 = 0xf00 (CMOS registers 0x34/0x35).
  assert.match(result.stdout, /\ncmos: mem above 16M: 0xf00\n$/, explain(result));
});

for (const handOff of ['spin-park', 'park', 'post-message', 'comlink', 'native']) {
  test(`--hand-off ${handOff}: forwarded exits from 2 vCPUs and the split irqchip's INTA all get served`, async () => {
    const smp = await runTsvmm(['--kernel', guest('smp'), '--cpus', '2', '--hand-off', handOff]);
    assert.is(smp.code, 0, explain(smp));
    assert.is(smp.stdout, 'smp: 2 of 2 CPUs online\nsmp: apic ids 0 1\n', explain(smp));
    const irq = await runTsvmm(['--kernel', guest('irq'), '--split-irqchip', '--hand-off', handOff]);
    assert.is(irq.code, 0, explain(irq));
    assert.is(irq.stdout, 'irq: 0123456789\nirq: 10 interrupts on vector 0x24\n', explain(irq));
  });
}

test('fault: a triple fault ends the VM with exit 3 and a diagnostic naming vCPU, exit, RIP and bytes', async () => {
  const result = await runTsvmm(['--kernel', guest('fault'), '--boot-protocol', 'linux']);
  assert.is(result.code, 3, explain(result));
  assert.is(result.stdout, 'fault: about to triple fault\n', explain(result));
  assert.match(result.stderr, /^tsvmm: vCPU 0: triple fault \(KVM_EXIT_SHUTDOWN\)\n/, explain(result));
  assert.match(result.stderr, /RIP 0x[0-9a-f]+ \(long mode, CS base 0x0\), instruction bytes: ([0-9a-f]{2} )+/, explain(result));
});

test.run();
