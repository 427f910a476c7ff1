import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtioBackend, VirtioContext, VirtioPciDevice } from '../../../../src/devices/virtio/pci-transport';
import {
  COMMON, FEATURE, GuestMemory, MockSplitQueue, NO_VECTOR, RecordingIntx, RecordingMsiSink, STATUS, VIRTIO_PCI_CAP, VirtioPciDriver,
  capabilityList, configRead, configWrite, virtioCaps,
} from '../../../fixtures/virtio-driver';

// The modern virtio-pci transport as virtio 1.2 section 4.1 (transport-pci.tex) and the PCI MSI-X
// capability (PCI 3.0 6.8.2) describe it, driven the way a driver drives it.

const BAR0_ADDRESS = 0xd000_0000;
const MEMORY_BYTES = 0x10_0000;
const VERSION_1 = 1n << BigInt(FEATURE.version1);
const EVENT_IDX = 1n << BigInt(FEATURE.eventIdx);
const INDIRECT_DESC = 1n << BigInt(FEATURE.indirectDesc);
const DEVICE_BITS = (1n << 0n) | (1n << 5n);

class FakeBackend implements VirtioBackend {
  readonly type = 4;
  readonly name = 'fake';
  readonly queueSizes = [16, 8];
  readonly pciClass: readonly [number, number] = [0xff, 0x00];
  readonly features = DEVICE_BITS;
  readonly config = new Uint8Array([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
  context?: VirtioContext;
  activations = 0;
  resets = 0;
  readonly notified: number[] = [];
  constructor(readonly configSize = 8) {}
  readConfig(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = this.config[offset + i] ?? 0;
  }
  activate(context: VirtioContext): void {
    this.context = context;
    this.activations++;
  }
  queueNotified(index: number): void {
    this.notified.push(index);
  }
  reset(): void {
    this.context = undefined;
    this.resets++;
  }
}

function makeDevice(configSize = 8) {
  const memory = new GuestMemory(MEMORY_BYTES);
  const backend = new FakeBackend(configSize);
  const msi = new RecordingMsiSink();
  const intx = new RecordingIntx();
  const warnings: string[] = [];
  const device = new VirtioPciDevice({ backend, memory, bar0Address: BAR0_ADDRESS, msi, intx, warn: (m) => warnings.push(m) });
  const driver = new VirtioPciDriver(device);
  const queues = [new MockSplitQueue(memory, MockSplitQueue.layout(16, 0x1000)), new MockSplitQueue(memory, MockSplitQueue.layout(8, 0x4000))];
  return { memory, backend, msi, intx, device, driver, queues, warnings };
}

/** A driver that has negotiated `features`, set up both queues and set DRIVER_OK. */
function running(features = VERSION_1, vectors?: [number, number]) {
  const setup = makeDevice();
  assert.ok(setup.driver.negotiate(features));
  setup.queues.forEach((queue, i) => setup.driver.setupQueue(i, queue, vectors?.[i]));
  setup.driver.driverOk();
  return setup;
}

function msixCapability(device: VirtioPciDevice) {
  const at = capabilityList(device).find((cap) => cap.id === 0x11)!.at;
  const table = configRead(device, at + 4, 4);
  const pba = configRead(device, at + 8, 4);
  return {
    at,
    tableSize: (configRead(device, at + 2, 2) & 0x7ff) + 1,
    tableBir: table & 7, tableOffset: table & ~7,
    pbaBir: pba & 7, pbaOffset: pba & ~7,
    control: () => configRead(device, at + 2, 2),
    setControl: (value: number) => configWrite(device, at + 2, 2, value),
  };
}

/** Programs MSI-X table entry `vector` and (un)masks it. */
function setEntry(driver: VirtioPciDriver, device: VirtioPciDevice, vector: number, address: number, data: number, masked: boolean): void {
  const cap = msixCapability(device);
  const at = cap.tableOffset + 16 * vector;
  driver.barWrite(cap.tableBir, at, 4, address);
  driver.barWrite(cap.tableBir, at + 4, 4, 0);
  driver.barWrite(cap.tableBir, at + 8, 4, data);
  driver.barWrite(cap.tableBir, at + 12, 4, masked ? 1 : 0);
}

function pendingBits(driver: VirtioPciDriver, device: VirtioPciDevice): number {
  const cap = msixCapability(device);
  return driver.barRead(cap.pbaBir, cap.pbaOffset, 4);
}

test('identification: 1af4:1040+type, revision >= 1, subsystem >= 0x40, the backend class, one 32-bit memory BAR0', () => {
  const { device } = makeDevice();
  assert.is(configRead(device, 0x00, 2), 0x1af4);
  assert.is(configRead(device, 0x02, 2), 0x1044);
  assert.ok(configRead(device, 0x08, 1) >= 1);
  assert.ok(configRead(device, 0x2e, 2) >= 0x40);
  assert.is(configRead(device, 0x0b, 1), 0xff);
  assert.is(configRead(device, 0x0a, 1), 0x00);
  assert.is(configRead(device, 0x06, 2) & 0x10, 0x10, 'capability list');
  assert.is(configRead(device, 0x10, 4), BAR0_ADDRESS);
  configWrite(device, 0x10, 4, 0xffff_ffff);
  const size = (~(configRead(device, 0x10, 4) & 0xffff_fff0) >>> 0) + 1;
  configWrite(device, 0x10, 4, BAR0_ADDRESS);
  assert.equal(device.config.barPlacements(), [{ index: 0, kind: 'memory32', size, address: BAR0_ADDRESS, decoding: false }]);
  for (let bar = 1; bar < 6; bar++) assert.is(device.barRegion(bar), undefined);
});

test('virtio capabilities: common, notify, ISR and device config, each inside its BAR, aligned as the spec says', () => {
  const { device } = makeDevice();
  const caps = virtioCaps(device);
  const byType = new Map(caps.map((cap) => [cap.cfgType, cap]));
  for (const type of [VIRTIO_PCI_CAP.common, VIRTIO_PCI_CAP.notify, VIRTIO_PCI_CAP.isr, VIRTIO_PCI_CAP.device]) assert.ok(byType.has(type), `cfg_type ${type}`);
  const barSize = device.config.barPlacements()[0].size;
  for (const cap of caps) {
    assert.is(cap.bar, 0);
    assert.ok(cap.offset + cap.length <= barSize, `cfg_type ${cap.cfgType} inside BAR0`);
    assert.ok(configRead(device, cap.at + 2, 1) >= (cap.cfgType === VIRTIO_PCI_CAP.notify ? 20 : 16), 'cap_len');
  }
  const common = byType.get(VIRTIO_PCI_CAP.common)!;
  assert.is(common.offset % 4, 0);
  assert.ok(common.length >= 0x38);
  const device_ = byType.get(VIRTIO_PCI_CAP.device)!;
  assert.is(device_.offset % 4, 0);
  assert.ok(device_.length >= 8);
  assert.ok(byType.get(VIRTIO_PCI_CAP.isr)!.length >= 1);
  const notify = byType.get(VIRTIO_PCI_CAP.notify)!;
  assert.is(notify.offset % 2, 0);
  const multiplier = notify.notifyOffMultiplier!;
  assert.ok(multiplier === 0 || (multiplier % 2 === 0 && (multiplier & (multiplier - 1)) === 0), 'multiplier 0 or an even power of 2');
  // cap.length >= queue_notify_off * multiplier + 2 for every queue.
  const driver = new VirtioPciDriver(device);
  for (let q = 0; q < 2; q++) {
    driver.setCommon(COMMON.queueSelect, 2, q);
    assert.ok(notify.length >= driver.common(COMMON.queueNotifyOff, 2) * multiplier + 2, `queue ${q} notify address inside the capability`);
  }
  // The structures do not overlap.
  const ranges = caps.map((cap) => [cap.offset, cap.offset + cap.length]).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i][0] >= ranges[i - 1][1], 'no overlap');
});

test('no device-config capability for a device without configuration', () => {
  const memory = new GuestMemory(MEMORY_BYTES);
  const device = new VirtioPciDevice({ backend: new FakeBackend(0), memory, bar0Address: BAR0_ADDRESS, msi: new RecordingMsiSink(), intx: new RecordingIntx() });
  assert.not.ok(virtioCaps(device).some((cap) => cap.cfgType === VIRTIO_PCI_CAP.device));
});

test('MSI-X capability: queues + 1 vectors, table and PBA in BAR0, QWORD-aligned, masked at reset', () => {
  const { device, driver } = makeDevice();
  const cap = msixCapability(device);
  assert.is(cap.tableSize, 3);
  assert.is(cap.control() & 0xc000, 0, 'disabled and unmasked at reset');
  assert.is(cap.tableBir, 0);
  assert.is(cap.pbaBir, 0);
  assert.is(cap.tableOffset % 8, 0);
  assert.is(cap.pbaOffset % 8, 0);
  const barSize = device.config.barPlacements()[0].size;
  assert.ok(cap.tableOffset + 16 * cap.tableSize <= barSize);
  assert.ok(cap.pbaOffset + 8 <= barSize);
  for (let v = 0; v < cap.tableSize; v++) assert.is(driver.barRead(0, cap.tableOffset + 16 * v + 12, 4) & 1, 1, `vector ${v} masked`);
  // Table size is read-only; enable and function mask are writable.
  cap.setControl(0xffff);
  assert.is(cap.control(), 0xc002);
  cap.setControl(0);
  assert.is(cap.control(), 0x0002);
  // Table entries read back; the PBA ignores writes.
  setEntry(driver, device, 1, 0xfee0_1000, 0x4041, false);
  assert.equal([0, 4, 8, 12].map((o) => driver.barRead(0, cap.tableOffset + 16 + o, 4)), [0xfee0_1000, 0, 0x4041, 0]);
  driver.barWrite(0, cap.pbaOffset, 4, 0xffff_ffff);
  assert.is(pendingBits(driver, device), 0);
});

test('device_feature shows 32 bits per device_feature_select: VERSION_1 in window 1, 0 from window 2', () => {
  const { driver } = makeDevice();
  const offered = driver.deviceFeatures();
  assert.is(offered & DEVICE_BITS, DEVICE_BITS);
  assert.is(offered & VERSION_1, VERSION_1);
  driver.setCommon(COMMON.deviceFeatureSelect, 4, 1);
  assert.is(driver.common(COMMON.deviceFeatureSelect, 4), 1);
  assert.is(driver.common(COMMON.deviceFeature, 4) & 1, 1);
  for (const select of [2, 3, 0xffff_ffff]) {
    driver.setCommon(COMMON.deviceFeatureSelect, 4, select);
    assert.is(driver.common(COMMON.deviceFeature, 4), 0, `select ${select}`);
  }
  assert.is(driver.common(COMMON.numQueues, 2), 2);
});

test('FEATURES_OK: kept for an offered subset with VERSION_1, and the driver features read back', () => {
  const { driver } = makeDevice();
  assert.ok(driver.negotiate(VERSION_1 | EVENT_IDX | (1n << 5n)));
  assert.is(driver.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk);
  driver.setCommon(COMMON.driverFeatureSelect, 4, 0);
  assert.is(driver.common(COMMON.driverFeature, 4), Number(EVENT_IDX | (1n << 5n)));
  driver.setCommon(COMMON.driverFeatureSelect, 4, 1);
  assert.is(driver.common(COMMON.driverFeature, 4), 1);
});

test('FEATURES_OK refused (reads back clear) for unoffered features or without VERSION_1', () => {
  const { driver, backend } = makeDevice();
  assert.not.ok(driver.negotiate(VERSION_1 | (1n << 1n)), 'bit 1 is not offered');
  assert.is(driver.status & STATUS.featuresOk, 0);
  assert.not.ok(driver.negotiate(VERSION_1 | (1n << 40n)), 'bit 40 is not offered');
  assert.not.ok(driver.negotiate(1n << 5n), 'no VERSION_1');
  assert.not.ok(driver.negotiate(0n));
  // And the device does not start when the driver goes on regardless.
  driver.driverOk();
  assert.is(backend.activations, 0);
});

test('DRIVER_OK without FEATURES_OK does not start the device', () => {
  const { driver, backend, queues } = makeDevice();
  driver.status = STATUS.acknowledge;
  driver.status = STATUS.acknowledge | STATUS.driver;
  driver.writeDriverFeatures(VERSION_1);
  driver.setupQueue(0, queues[0]);
  driver.status = STATUS.acknowledge | STATUS.driver | STATUS.driverOk;
  assert.is(backend.activations, 0);
  driver.notify(0);
  assert.equal(backend.notified, []);
});

test('DRIVER_OK starts the device once, with the negotiated features and queue features', () => {
  const { backend, memory } = running(VERSION_1 | EVENT_IDX | INDIRECT_DESC | (1n << 0n));
  assert.is(backend.activations, 1);
  const context = backend.context!;
  assert.is(context.features, VERSION_1 | EVENT_IDX | INDIRECT_DESC | 1n);
  assert.equal(context.queueFeatures, { eventIdx: true, indirect: true });
  assert.is(context.memory, memory);
  assert.is(context.queues.length, 2);
  const plain = running(VERSION_1);
  assert.equal(plain.backend.context!.queueFeatures, { eventIdx: false, indirect: false });
});

test('queue registers: select, size (max at reset), addresses in 32-bit halves, notify_off, enable', () => {
  const { driver } = makeDevice();
  driver.setCommon(COMMON.queueSelect, 2, 0);
  assert.is(driver.common(COMMON.queueSize, 2), 16);
  assert.is(driver.common(COMMON.queueEnable, 2), 0);
  assert.is(driver.common(COMMON.queueMsixVector, 2), NO_VECTOR);
  driver.setCommon(COMMON.queueSelect, 2, 1);
  assert.is(driver.common(COMMON.queueSelect, 2), 1);
  assert.is(driver.common(COMMON.queueSize, 2), 8);
  driver.setCommon(COMMON.queueSize, 2, 4);
  assert.is(driver.common(COMMON.queueSize, 2), 4);
  driver.setAddress(COMMON.queueDesc, 0x1_2345_6780);
  driver.setAddress(COMMON.queueDriver, 0x2000);
  driver.setAddress(COMMON.queueDevice, 0xabcd_0004);
  assert.is(driver.address(COMMON.queueDesc), 0x1_2345_6780);
  assert.is(driver.address(COMMON.queueDriver), 0x2000);
  assert.is(driver.address(COMMON.queueDevice), 0xabcd_0004);
  // Queue 0 kept its own values.
  driver.setCommon(COMMON.queueSelect, 2, 0);
  assert.is(driver.address(COMMON.queueDesc), 0);
  // A queue that does not exist reads queue_size 0.
  for (const select of [2, 0xffff]) {
    driver.setCommon(COMMON.queueSelect, 2, select);
    assert.is(driver.common(COMMON.queueSize, 2), 0, `queue ${select}`);
    assert.is(driver.common(COMMON.queueEnable, 2), 0);
  }
});

test('queue registers are frozen once the queue is enabled', () => {
  const { driver, queues } = makeDevice();
  driver.negotiate(VERSION_1);
  driver.setupQueue(0, queues[0]);
  driver.setCommon(COMMON.queueSelect, 2, 0);
  assert.is(driver.common(COMMON.queueEnable, 2), 1);
  driver.setCommon(COMMON.queueSize, 2, 4);
  driver.setAddress(COMMON.queueDesc, 0x9000);
  driver.setAddress(COMMON.queueDriver, 0x9800);
  driver.setAddress(COMMON.queueDevice, 0x9c00);
  assert.is(driver.common(COMMON.queueSize, 2), 16);
  assert.is(driver.address(COMMON.queueDesc), queues[0].desc);
  assert.is(driver.address(COMMON.queueDriver), queues[0].avail);
  assert.is(driver.address(COMMON.queueDevice), queues[0].used);
});

test('MSI-X vectors: a table index reads back; an index past the table and NO_VECTOR read NO_VECTOR', () => {
  const { driver } = makeDevice();
  driver.setCommon(COMMON.configMsixVector, 2, 0);
  assert.is(driver.common(COMMON.configMsixVector, 2), 0);
  driver.setCommon(COMMON.queueSelect, 2, 1);
  driver.setCommon(COMMON.queueMsixVector, 2, 2);
  assert.is(driver.common(COMMON.queueMsixVector, 2), 2);
  driver.setCommon(COMMON.queueMsixVector, 2, 3); // the table has 3 entries: 0..2
  assert.is(driver.common(COMMON.queueMsixVector, 2), NO_VECTOR);
  driver.setCommon(COMMON.configMsixVector, 2, 0x7ff);
  assert.is(driver.common(COMMON.configMsixVector, 2), NO_VECTOR);
  driver.setCommon(COMMON.queueMsixVector, 2, 1);
  driver.setCommon(COMMON.queueMsixVector, 2, NO_VECTOR);
  assert.is(driver.common(COMMON.queueMsixVector, 2), NO_VECTOR);
  // A queue that does not exist has no vector.
  driver.setCommon(COMMON.queueSelect, 2, 5);
  driver.setCommon(COMMON.queueMsixVector, 2, 1);
  assert.is(driver.common(COMMON.queueMsixVector, 2), NO_VECTOR);
});

test('reset (device_status = 0) restores everything: status, features, queues, vectors, ISR', () => {
  const { driver, backend, intx, device, queues } = running(VERSION_1 | EVENT_IDX, [0, 1]);
  driver.setCommon(COMMON.configMsixVector, 2, 2);
  backend.context!.interruptQueue(0); // MSI-X is off: ISR bit 0 and INTx
  assert.is(intx.level, true);
  const resetsBefore = backend.resets;
  driver.status = 0;
  assert.is(driver.status, 0);
  assert.is(backend.resets, resetsBefore + 1);
  assert.is(intx.level, false);
  assert.is(configRead(device, 0x06, 2) & 0x08, 0, 'PCI interrupt status clear');
  assert.is(driver.readIsr(), 0);
  assert.is(driver.common(COMMON.configMsixVector, 2), NO_VECTOR);
  driver.setCommon(COMMON.driverFeatureSelect, 4, 0);
  assert.is(driver.common(COMMON.driverFeature, 4), 0);
  driver.setCommon(COMMON.driverFeatureSelect, 4, 1);
  assert.is(driver.common(COMMON.driverFeature, 4), 0);
  for (const [i, max] of [[0, 16], [1, 8]]) {
    driver.setCommon(COMMON.queueSelect, 2, i);
    assert.is(driver.common(COMMON.queueEnable, 2), 0, `queue ${i} enable`);
    assert.is(driver.common(COMMON.queueSize, 2), max, `queue ${i} size`);
    assert.is(driver.common(COMMON.queueMsixVector, 2), NO_VECTOR, `queue ${i} vector`);
    assert.is(driver.address(COMMON.queueDesc), 0);
    assert.is(driver.address(COMMON.queueDriver), 0);
    assert.is(driver.address(COMMON.queueDevice), 0);
  }
  // The device comes up again from scratch, and its queues start at index 0.
  assert.ok(driver.negotiate(VERSION_1));
  const fresh = new MockSplitQueue(queues[0].memory, MockSplitQueue.layout(16, 0x8000));
  driver.setupQueue(0, fresh);
  driver.driverOk();
  assert.is(backend.activations, 2);
  fresh.post([{ addr: 0xa000, len: 4 }]);
  const context = backend.context!;
  assert.is(context.queues[0].pop(context.memory, context.queueFeatures)?.buffers[0].address, 0xa000);
});

test('ISR: a queue interrupt sets bit 0 and asserts INTx; reading ISR returns it, clears it and de-asserts', () => {
  const { driver, backend, intx, device } = running();
  assert.is(intx.level, false);
  backend.context!.interruptQueue(1);
  assert.is(intx.level, true);
  assert.is(configRead(device, 0x06, 2) & 0x08, 0x08, 'PCI status interrupt bit = OR of ISR');
  assert.is(driver.readIsr(), 1);
  assert.is(intx.level, false);
  assert.is(configRead(device, 0x06, 2) & 0x08, 0);
  assert.is(driver.readIsr(), 0);
  // Writes to ISR do nothing.
  backend.context!.interruptQueue(0);
  driver.barWrite(0, driver.caps.get(VIRTIO_PCI_CAP.isr)!.offset, 1, 0xff);
  assert.is(intx.level, true);
  assert.is(driver.readIsr(), 1);
});

test('INTx disable (command bit 10): the line stays low, the status bit still shows the interrupt', () => {
  const { backend, intx, device, driver } = running();
  configWrite(device, 0x04, 2, 0x0406);
  backend.context!.interruptQueue(0);
  assert.is(intx.level, false);
  assert.is(configRead(device, 0x06, 2) & 0x08, 0x08);
  assert.is(driver.readIsr(), 1);
  assert.is(configRead(device, 0x06, 2) & 0x08, 0);
});

test('INTx disable set while the line is asserted lowers it; clearing it raises it again (PCI 3.0 6.2.2)', () => {
  // "Interrupt Disable: ... A value of 1 disables the assertion of its INTx# signal", also for a line
  // already asserted when the guest sets it.
  const { backend, intx, device } = running();
  configWrite(device, 0x04, 2, 0x0006);
  backend.context!.interruptQueue(0);
  assert.is(intx.level, true);
  configWrite(device, 0x04, 2, 0x0406);
  assert.is(intx.level, false, 'setting INTx disable must de-assert INTx');
  configWrite(device, 0x04, 2, 0x0006);
  assert.is(intx.level, true, 'clearing INTx disable with the ISR still set must re-assert INTx');
});

test('MSI-X enabled: queue interrupts go to the queue\'s table entry, not INTx; NO_VECTOR sends nothing', () => {
  const { backend, intx, device, driver, msi } = running(VERSION_1, [1, NO_VECTOR]);
  setEntry(driver, device, 1, 0xfee0_0000, 0x0031, false);
  msixCapability(device).setControl(0x8000);
  backend.context!.interruptQueue(0);
  assert.equal(msi.messages, [{ address: 0xfee0_0000, data: 0x0031 }]);
  assert.is(intx.level, false);
  assert.equal(intx.levels.filter((level) => level), []);
  backend.context!.interruptQueue(1); // queue 1 is unmapped
  assert.is(msi.messages.length, 1);
  assert.is(pendingBits(driver, device), 0);
});

test('MSI-X disabled again: interrupts go back to INTx', () => {
  const { backend, intx, device, driver, msi } = running(VERSION_1, [0, 0]);
  setEntry(driver, device, 0, 0xfee0_0000, 0x0031, false);
  const cap = msixCapability(device);
  cap.setControl(0x8000);
  cap.setControl(0x0000);
  backend.context!.interruptQueue(0);
  assert.equal(msi.messages, []);
  assert.is(intx.level, true);
  assert.is(driver.readIsr(), 1);
});

test('MSI-X enabled while INTx is asserted: the function stops driving INTx (PCI 3.0 6.8.2.3)', () => {
  // With MSI-X Enable set "the function is prohibited from using its INTx# pin", so a level raised
  // before the switch goes down with it.
  const { backend, intx, device } = running(VERSION_1, [0, 0]);
  backend.context!.interruptQueue(0);
  assert.is(intx.level, true);
  msixCapability(device).setControl(0x8000);
  assert.is(intx.level, false, 'enabling MSI-X must release INTx');
});

test('MSI-X per-vector mask: the interrupt waits in the PBA and is sent on unmask', () => {
  const { backend, device, driver, msi } = running(VERSION_1, [2, 1]);
  setEntry(driver, device, 2, 0xfee0_2000, 0x0042, true);
  msixCapability(device).setControl(0x8000);
  backend.context!.interruptQueue(0);
  assert.equal(msi.messages, []);
  assert.is(pendingBits(driver, device), 1 << 2);
  const cap = msixCapability(device);
  driver.barWrite(0, cap.tableOffset + 16 * 2 + 12, 4, 0); // unmask
  assert.equal(msi.messages, [{ address: 0xfee0_2000, data: 0x0042 }]);
  assert.is(pendingBits(driver, device), 0);
  // Masked again: nothing, then the next unmask delivers once.
  driver.barWrite(0, cap.tableOffset + 16 * 2 + 12, 4, 1);
  backend.context!.interruptQueue(0);
  backend.context!.interruptQueue(0);
  assert.is(msi.messages.length, 1);
  driver.barWrite(0, cap.tableOffset + 16 * 2 + 12, 4, 0);
  assert.is(msi.messages.length, 2, 'pending is one bit: one message');
});

test('MSI-X function mask: every vector waits in the PBA and is sent when the function is unmasked', () => {
  const { backend, device, driver, msi } = running(VERSION_1, [0, 1]);
  setEntry(driver, device, 0, 0xfee0_0000, 0x0030, false);
  setEntry(driver, device, 1, 0xfee0_1000, 0x0031, false);
  const cap = msixCapability(device);
  cap.setControl(0xc000); // enable + function mask
  backend.context!.interruptQueue(0);
  backend.context!.interruptQueue(1);
  assert.equal(msi.messages, []);
  assert.is(pendingBits(driver, device), 0b011);
  cap.setControl(0x8000);
  assert.equal(msi.messages, [{ address: 0xfee0_0000, data: 0x0030 }, { address: 0xfee0_1000, data: 0x0031 }]);
  assert.is(pendingBits(driver, device), 0);
});

test('a queue that is invalid at DRIVER_OK: DEVICE_NEEDS_RESET and a configuration interrupt, the device does not start', () => {
  const { driver, backend, intx, queues } = makeDevice();
  driver.negotiate(VERSION_1);
  driver.setupQueue(0, queues[0]);
  driver.setCommon(COMMON.queueSelect, 2, 1);
  driver.setCommon(COMMON.queueSize, 2, 8);
  driver.setAddress(COMMON.queueDesc, MEMORY_BYTES - 64); // 8 descriptors need 128 bytes
  driver.setAddress(COMMON.queueDriver, 0x6000);
  driver.setAddress(COMMON.queueDevice, 0x7000);
  driver.setCommon(COMMON.queueEnable, 2, 1);
  driver.driverOk();
  assert.is(driver.status & STATUS.needsReset, STATUS.needsReset);
  assert.is(backend.activations, 0);
  assert.is(intx.level, true);
  assert.is(driver.readIsr() & 2, 2, 'ISR bit 1: configuration change');
  driver.notify(0);
  assert.equal(backend.notified, []);
  // A reset clears it.
  driver.status = 0;
  assert.is(driver.status, 0);
});

test('a queue size the device does not take (not a power of two, larger than its maximum) fails at DRIVER_OK', () => {
  for (const size of [3, 32, 0]) {
    const { driver, backend, queues } = makeDevice();
    driver.negotiate(VERSION_1);
    driver.setupQueue(0, queues[0]);
    driver.setCommon(COMMON.queueSelect, 2, 0);
    driver.status = 0; // start over: setupQueue enabled it
    driver.negotiate(VERSION_1);
    driver.setCommon(COMMON.queueSelect, 2, 0);
    driver.setCommon(COMMON.queueSize, 2, size);
    driver.setAddress(COMMON.queueDesc, queues[0].desc);
    driver.setAddress(COMMON.queueDriver, queues[0].avail);
    driver.setAddress(COMMON.queueDevice, queues[0].used);
    driver.setCommon(COMMON.queueEnable, 2, 1);
    driver.driverOk();
    assert.is(driver.status & STATUS.needsReset, STATUS.needsReset, `size ${size}`);
    assert.is(backend.activations, 0);
  }
});

test('invalid queue with MSI-X: the configuration interrupt goes to config_msix_vector', () => {
  const { driver, device, msi, queues } = makeDevice();
  driver.negotiate(VERSION_1);
  setEntry(driver, device, 2, 0xfee0_0000, 0x0050, false);
  msixCapability(device).setControl(0x8000);
  driver.setCommon(COMMON.configMsixVector, 2, 2);
  driver.setCommon(COMMON.queueSelect, 2, 0);
  driver.setCommon(COMMON.queueSize, 2, 16);
  driver.setAddress(COMMON.queueDesc, queues[0].desc + 8); // misaligned
  driver.setAddress(COMMON.queueDriver, queues[0].avail);
  driver.setAddress(COMMON.queueDevice, queues[0].used);
  driver.setCommon(COMMON.queueEnable, 2, 1);
  driver.driverOk();
  assert.is(driver.status & STATUS.needsReset, STATUS.needsReset);
  assert.equal(msi.messages, [{ address: 0xfee0_0000, data: 0x0050 }]);
});

test('the device asking for a reset after DRIVER_OK: NEEDS_RESET and a configuration interrupt (INTx)', () => {
  const { driver, backend, intx } = running();
  backend.context!.needsReset('test');
  assert.is(driver.status & STATUS.needsReset, STATUS.needsReset);
  assert.is(driver.status & STATUS.driverOk, STATUS.driverOk);
  assert.is(intx.level, true);
  assert.is(driver.readIsr(), 2);
});

test('configuration interrupt with MSI-X: ISR bit 1 is set too (4.1.4.5.1 "MUST set the Device Configuration Interrupt bit")', () => {
  // transport-pci.tex, ISR status device requirements: "The device MUST set the Device
  // Configuration Interrupt bit in ISR status before sending a device configuration change notification"
  // (unlike the queue bit, not conditioned on MSI-X being disabled).
  const { driver, backend, device, msi, intx } = running();
  setEntry(driver, device, 2, 0xfee0_0000, 0x0050, false);
  msixCapability(device).setControl(0x8000);
  driver.setCommon(COMMON.configMsixVector, 2, 2);
  backend.context!.needsReset('test');
  assert.equal(msi.messages, [{ address: 0xfee0_0000, data: 0x0050 }]);
  assert.is(intx.level, false);
  assert.is(driver.readIsr() & 2, 2, 'ISR bit 1 must be set before a configuration notification');
});

test('notifications: ignored before DRIVER_OK, delivered after, through the notify capability', () => {
  const { driver, backend, queues } = makeDevice();
  driver.negotiate(VERSION_1);
  queues.forEach((queue, i) => driver.setupQueue(i, queue));
  driver.notify(0);
  driver.notify(1);
  assert.equal(backend.notified, []);
  driver.driverOk();
  driver.notify(1);
  driver.notify(0);
  assert.equal(backend.notified, [1, 0]);
  // A 32-bit write of the index is the same notification.
  const cap = driver.caps.get(VIRTIO_PCI_CAP.notify)!;
  driver.setCommon(COMMON.queueSelect, 2, 1);
  driver.barWrite(0, cap.offset + driver.common(COMMON.queueNotifyOff, 2) * cap.notifyOffMultiplier!, 4, 1);
  assert.equal(backend.notified, [1, 0, 1]);
});

test('doorbells(0): one 2-byte doorbell per queue at notify + queue_notify_off * multiplier', () => {
  const { device, driver, backend } = running();
  const bells = device.doorbells(0);
  const cap = driver.caps.get(VIRTIO_PCI_CAP.notify)!;
  assert.is(bells.length, 2);
  bells.forEach((bell, q) => {
    driver.setCommon(COMMON.queueSelect, 2, q);
    assert.is(bell.offset, cap.offset + driver.common(COMMON.queueNotifyOff, 2) * cap.notifyOffMultiplier!);
    assert.is(bell.length, 2);
  });
  bells[1].signal();
  bells[0].signal();
  assert.equal(backend.notified, [1, 0]);
  assert.equal(device.doorbells(1), []);
});

test('device configuration reads reach the backend through the device capability', () => {
  const { driver } = makeDevice();
  assert.is(driver.deviceConfig(0, 4), 0x4433_2211);
  assert.is(driver.deviceConfig(4, 2), 0x6655);
  assert.is(driver.deviceConfig(7, 1), 0x88);
});

test.run();
