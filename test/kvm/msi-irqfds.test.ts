// MsiIrqfds on the real /dev/kvm: which MSI messages get an irqfd on an MSI
// route of KVM's GSI table, and which go through KVM_SIGNAL_MSI instead (an
// address no local APIC decodes, a route past the limit). The virtio KVM
// tests show a guest receiving its MSI-X interrupts through these irqfds.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Kvm } from '../../src/main/kvm/kvm';
import { GsiRouter } from '../../src/main/kvm/gsi-router';
import { MsiIrqfds } from '../../src/main/kvm/msi-irqfds';
import type { MsiMessage } from '../../src/devices/interrupt';

function setup(limit?: number) {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  vm.createIrqchip();
  const tables: number[] = [];
  const router = new GsiRouter((routes) => { tables.push(routes.length); vm.setGsiRouting(routes); }, 'kernel');
  const fallback: MsiMessage[] = [];
  const irqfds = new MsiIrqfds(vm, router, { signal: (message) => fallback.push(message) }, limit);
  const close = () => {
    irqfds.dispose();
    vm.close();
    kvm.close();
  };
  return { irqfds, fallback, tables, router, close };
}

test('a message to the LAPICs gets one route and one irqfd at its first use; its later interrupts reuse them', () => {
  const { irqfds, fallback, tables, router, close } = setup();
  try {
    const vector = { address: 0xfee0_0000, data: 0x4041 };
    for (let i = 0; i < 5; i++) irqfds.signal(vector);
    assert.is(irqfds.routes, 1);
    assert.is(tables.length, 1, 'one KVM_SET_GSI_ROUTING, at the first use');
    assert.equal(fallback, []);
    assert.ok(router.table().some((route) => route.kind === 'msi' && route.gsi >= 24 && route.message.data === 0x4041));
    irqfds.signal({ address: 0xfee0_1000, data: 0x4042 }); // another CPU, another vector: another route
    assert.is(irqfds.routes, 2);
  } finally {
    close();
  }
});

test('a garbage address, and every new message past the route limit, go through KVM_SIGNAL_MSI and install nothing', () => {
  const { irqfds, fallback, tables, close } = setup(2);
  try {
    irqfds.signal({ address: 0x1234_5678, data: 1 });
    irqfds.signal({ address: 0xfee0_0000, data: 0x30 });
    irqfds.signal({ address: 0xfee0_0000, data: 0x31 });
    irqfds.signal({ address: 0xfee0_0000, data: 0x32 });
    irqfds.signal({ address: 0xfee0_0000, data: 0x30 });
    assert.is(irqfds.routes, 2);
    assert.is(tables.length, 2);
    assert.equal(fallback, [{ address: 0x1234_5678, data: 1 }, { address: 0xfee0_0000, data: 0x32 }]);
    assert.is(irqfds.signalled, 2);
  } finally {
    close();
  }
});

test.run();
