// Interrupts through the IOAPIC, proven twice: the irq-ioapic and pit guests
// (guests/, built by `make -C guests`) booted by QEMU with KVM, the reference
// VMM, and by tsvmm on /dev/kvm. Both guests mask the 8259s and route their
// ISA interrupt through an IOAPIC redirection entry to the local APIC:
// irq-ioapic COM1's IRQ 4 (pin 4, vector 0x34), pit the PIT's IRQ 0 on the
// pin the MP table names (QEMU/SeaBIOS: pin 2; tsvmm: pin 0, where KVM's
// default GSI routing delivers it). A guest that passes under QEMU and fails
// under tsvmm points at tsvmm. The QEMU half prints why it checked nothing
// when qemu-system-x86_64 is not installed, like qemu-guests.test.ts.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { QEMU_MISSING, QEMU_TIMEOUT_MS, findQemu, runQemu } from '../support/qemu';
import { explain, guest, runTsvmm } from '../support/tsvmm';

const EXPECTED: Record<string, string> = {
  'irq-ioapic': 'irq-ioapic: 0123456789\nirq-ioapic: 10 interrupts on vector 0x34\n',
  pit: 'pit: 100 ticks\npit: rate ok\n',
};

const qemu = findQemu();
if (!qemu) {
  test('IOAPIC guests under QEMU', () => {
    console.log(QEMU_MISSING);
  });
}

for (const name of Object.keys(EXPECTED)) {
  if (qemu) {
    test(`${name} under QEMU (-M pc, KVM): the reference output`, async () => {
      const run = await runQemu(qemu, guest(name));
      const context = `output ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
      assert.not.ok(run.timedOut, `QEMU still running after ${QEMU_TIMEOUT_MS} ms and killed; ${context}`);
      assert.is(run.status, 0, `QEMU exit status; ${context}`);
      assert.is(run.output, EXPECTED[name], context);
    });
  }

  for (const protocol of ['linux', 'pvh'] as const) {
    test(`${name} under tsvmm (in-kernel irqchip, ${protocol} entry): the same output as QEMU, exit 0`, async () => {
      const result = await runTsvmm(['--kernel', guest(name), '--boot-protocol', protocol]);
      assert.is(result.code, 0, explain(result));
      assert.is(result.stdout, EXPECTED[name], explain(result));
      assert.is(result.stderr, '', explain(result));
    });
  }

  test(`${name} under tsvmm --split-irqchip (userspace PIC, IOAPIC and PIT): the same output as QEMU, exit 0`, async () => {
    const result = await runTsvmm(['--split-irqchip', '--kernel', guest(name)]);
    assert.is(result.code, 0, explain(result));
    assert.is(result.stdout, EXPECTED[name], explain(result));
    assert.is(result.stderr, '', explain(result));
  });
}

test('pit with two vCPUs: IRQ 0 still reaches the boot CPU (APIC 0) on the MP table\'s pin', async () => {
  const result = await runTsvmm(['--kernel', guest('pit'), '--cpus', '2']);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, EXPECTED.pit, explain(result));
});

// The 8259 path with the split irqchip: the PIC is tsvmm's, its INT goes to
// the boot vCPU, which injects the acknowledged vector with KVM_INTERRUPT.
const PIC_GUEST_OUTPUT = 'irq: 0123456789\nirq: 10 interrupts on vector 0x24\n';
for (const protocol of ['linux', 'pvh'] as const) {
  test(`irq (8259 PIC) under --split-irqchip through the ${protocol} entry: the userspace PIC delivers all 10`, async () => {
    const result = await runTsvmm(['--split-irqchip', '--kernel', guest('irq'), '--boot-protocol', protocol]);
    assert.is(result.code, 0, explain(result));
    assert.is(result.stdout, PIC_GUEST_OUTPUT, explain(result));
  });
}

test('irq (8259 PIC) with the in-kernel irqchip: the same 10 interrupts', async () => {
  const inKernel = await runTsvmm(['--kernel', guest('irq')]);
  assert.is(inKernel.code, 0, explain(inKernel));
  assert.is(inKernel.stdout, PIC_GUEST_OUTPUT, explain(inKernel));
});

test.run();
