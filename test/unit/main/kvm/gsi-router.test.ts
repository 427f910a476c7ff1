import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GsiRouter, defaultIrqchipRoutes } from '../../../../src/main/kvm/gsi-router';
import type { GsiRoute } from '../../../../src/main/kvm/gsi-router';

// KVM's default routing (virt/kvm/irqchip.c kvm_setup_default_irq_routing,
// arch/x86/kvm/irq_comm.c): GSI 0-15 go to the PIC pin of the same number
// (chip 0 master for 0-7, chip 1 slave for 8-15, pin gsi % 8) and to IOAPIC
// (chip 2) pin gsi; GSI 16-23 to the IOAPIC alone. Written out, not computed
// by the code under test.
const PIC_MASTER = 0, PIC_SLAVE = 1, IOAPIC = 2;
const EXPECTED_DEFAULTS: GsiRoute[] = [];
for (let gsi = 0; gsi < 24; gsi++) {
  if (gsi < 8) EXPECTED_DEFAULTS.push({ gsi, kind: 'irqchip', chip: PIC_MASTER, pin: gsi });
  else if (gsi < 16) EXPECTED_DEFAULTS.push({ gsi, kind: 'irqchip', chip: PIC_SLAVE, pin: gsi - 8 });
  EXPECTED_DEFAULTS.push({ gsi, kind: 'irqchip', chip: IOAPIC, pin: gsi });
}

function makeRouter(irqchip: 'kernel' | 'split') {
  const commits: GsiRoute[][] = [];
  const router = new GsiRouter((routes) => commits.push(routes.map((r) => ({ ...r }))), irqchip);
  return { router, commits };
}

test('the default irqchip table: GSI 0-15 to the PIC and the IOAPIC, 16-23 to the IOAPIC only', () => {
  const routes = defaultIrqchipRoutes();
  assert.is(routes.length, 16 * 2 + 8);
  assert.equal(routes, EXPECTED_DEFAULTS);
  assert.equal(routes.find((r) => r.gsi === 9 && r.kind === 'irqchip' && r.chip === PIC_SLAVE), { gsi: 9, kind: 'irqchip', chip: PIC_SLAVE, pin: 1 });
  assert.equal(routes.filter((r) => r.gsi === 20), [{ gsi: 20, kind: 'irqchip', chip: IOAPIC, pin: 20 }]);
});

test('kernel irqchip: the table starts as the defaults and commits nothing by itself', () => {
  const { router, commits } = makeRouter('kernel');
  assert.equal(router.table(), EXPECTED_DEFAULTS);
  assert.equal(commits, []);
});

test('kernel irqchip: MSI routes added and removed keep the defaults in every committed table', () => {
  const { router, commits } = makeRouter('kernel');
  const a = router.allocateMsiGsi();
  const b = router.allocateMsiGsi();
  router.setMsiRoute(b, { address: 0xfee0_1000, data: 0x41 });
  router.setMsiRoute(a, { address: 0xfee0_0000, data: 0x40 });
  assert.is(commits.length, 2);
  assert.equal(commits[0], [...EXPECTED_DEFAULTS, { gsi: 25, kind: 'msi', message: { address: 0xfee0_1000, data: 0x41 } }]);
  // sorted by GSI, after the defaults
  assert.equal(commits[1], [
    ...EXPECTED_DEFAULTS,
    { gsi: 24, kind: 'msi', message: { address: 0xfee0_0000, data: 0x40 } },
    { gsi: 25, kind: 'msi', message: { address: 0xfee0_1000, data: 0x41 } },
  ]);
  router.setMsiRoute(a, { address: 0xfee0_0000, data: 0x42 }); // replaced, not added
  assert.equal(commits[2].filter((r) => r.kind === 'msi').length, 2);
  router.setMsiRoute(b, null);
  router.setMsiRoute(a, null);
  assert.equal(commits.at(-1), EXPECTED_DEFAULTS);
  assert.equal(router.table(), EXPECTED_DEFAULTS);
});

test('split irqchip: MSI routes are alone in the table (the IOAPIC pins\' routes included)', () => {
  const { router, commits } = makeRouter('split');
  assert.equal(router.table(), []);
  router.setMsiRoute(4, { address: 0xfee0_0000, data: 0x4034 }); // the userspace IOAPIC's pin 4
  router.setMsiRoute(router.allocateMsiGsi(), { address: 0xfee0_2000, data: 0x50 });
  assert.equal(commits, [
    [{ gsi: 4, kind: 'msi', message: { address: 0xfee0_0000, data: 0x4034 } }],
    [
      { gsi: 4, kind: 'msi', message: { address: 0xfee0_0000, data: 0x4034 } },
      { gsi: 24, kind: 'msi', message: { address: 0xfee0_2000, data: 0x50 } },
    ],
  ]);
  router.setMsiRoute(4, null);
  assert.equal(commits.at(-1), [{ gsi: 24, kind: 'msi', message: { address: 0xfee0_2000, data: 0x50 } }]);
});

test('removing a route that does not exist commits nothing', () => {
  const { router, commits } = makeRouter('split');
  router.setMsiRoute(7, null);
  assert.equal(commits, []);
});

test('the route keeps a copy of the message', () => {
  const { router } = makeRouter('split');
  const message = { address: 0xfee0_0000, data: 0x30 };
  router.setMsiRoute(3, message);
  message.data = 0x31;
  assert.equal(router.table(), [{ gsi: 3, kind: 'msi', message: { address: 0xfee0_0000, data: 0x30 } }]);
});

test('allocateMsiGsi starts at 24, right after the IOAPIC\'s pins, and counts up', () => {
  for (const irqchip of ['kernel', 'split'] as const) {
    const { router, commits } = makeRouter(irqchip);
    assert.equal([router.allocateMsiGsi(), router.allocateMsiGsi(), router.allocateMsiGsi()], [24, 25, 26]);
    assert.equal(commits, []); // allocating installs nothing
  }
});

test('allocateMsiGsi stops at KVM\'s table size (4096 GSIs) with a host error', () => {
  const { router } = makeRouter('split');
  let last = 0;
  for (let i = 24; i < 4096; i++) last = router.allocateMsiGsi();
  assert.is(last, 4095);
  assert.throws(() => router.allocateMsiGsi(), (e: unknown) => e instanceof Error && (e as { kind?: string }).kind === 'host' && /no GSI left/.test(e.message));
});

test.run();
