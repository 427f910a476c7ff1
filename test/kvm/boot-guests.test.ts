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

test('fault: a triple fault ends the VM with exit 3 and a diagnostic naming vCPU, exit, RIP and bytes', async () => {
  const result = await runTsvmm(['--kernel', guest('fault'), '--boot-protocol', 'linux']);
  assert.is(result.code, 3, explain(result));
  assert.is(result.stdout, 'fault: about to triple fault\n', explain(result));
  assert.match(result.stderr, /^tsvmm: vCPU 0: triple fault \(KVM_EXIT_SHUTDOWN\)\n/, explain(result));
  assert.match(result.stderr, /RIP 0x[0-9a-f]+ \(long mode, CS base 0x0\), instruction bytes: ([0-9a-f]{2} )+/, explain(result));
});

test.run();
