import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtioPciDevice } from '../../../../src/devices/virtio/pci-transport';
import { VirtioRng } from '../../../../src/devices/virtio/rng';
import {
  FEATURE, GuestMemory, MockSplitQueue, RecordingIntx, RecordingMsiSink, STATUS, VIRTIO_PCI_CAP, VirtioPciDriver,
} from '../../../fixtures/virtio-driver';

// virtio-rng (entropy device) as virtio 1.2 section 5.4 describes it: one requestq of
// device-writable buffers, filled with random bytes; used len = the bytes written.

const VERSION_1 = 1n << BigInt(FEATURE.version1);
const MEMORY_BYTES = 0x40_0000;
const DATA = 0x10_0000;

function makeRng() {
  const memory = new GuestMemory(MEMORY_BYTES);
  let counter = 0;
  const source: number[] = [];
  const rng = new VirtioRng((into) => {
    for (let i = 0; i < into.length; i++) {
      into[i] = (counter++ * 131 + 7) & 0xff;
      source.push(into[i]);
    }
  });
  const intx = new RecordingIntx();
  const device = new VirtioPciDevice({ backend: rng, memory, bar0Address: 0xd000_0000, msi: new RecordingMsiSink(), intx });
  const driver = new VirtioPciDriver(device);
  const queue = new MockSplitQueue(memory, MockSplitQueue.layout(16, 0x1000));
  const start = () => {
    assert.ok(driver.negotiate(VERSION_1));
    driver.setupQueue(0, queue);
    driver.driverOk();
  };
  return { memory, rng, intx, device, driver, queue, source, start };
}

test('identification: device 1af4:1044, one queue, no device configuration, only transport features', () => {
  const { device, driver } = makeRng();
  const data = new Uint8Array(2);
  device.config.read(0x02, data);
  assert.is(data[0] | (data[1] << 8), 0x1044);
  assert.is(driver.common(0x12, 2), 1);
  assert.not.ok(driver.caps.has(VIRTIO_PCI_CAP.device));
  assert.is(driver.deviceFeatures() & 0xff_ffffn, 0n, 'no device-specific feature bits');
});

test('a device-writable buffer is filled from the source; used len = bytes written; an interrupt', () => {
  const { memory, queue, driver, source, intx, start } = makeRng();
  start();
  const head = queue.post([{ addr: DATA, len: 64, write: true }]);
  driver.notify(0);
  const used = queue.takeUsed();
  assert.is(used.length, 1);
  assert.is(used[0].id, head);
  assert.ok(used[0].len >= 1 && used[0].len <= 64, 'one or more bytes, at most the buffer');
  assert.equal([...memory.read(DATA, used[0].len)], source.slice(0, used[0].len));
  assert.is(intx.level, true);
  assert.is(driver.readIsr(), 1);
});

test('a chain of several writable buffers is filled in order; several chains in one notification', () => {
  const { memory, queue, driver, source, start } = makeRng();
  start();
  const a = queue.post([{ addr: DATA, len: 16, write: true }, { addr: DATA + 0x100, len: 32, write: true }]);
  const b = queue.post([{ addr: DATA + 0x200, len: 8, write: true }]);
  driver.notify(0);
  const used = queue.takeUsed();
  assert.equal(used, [{ id: a, len: 48 }, { id: b, len: 8 }]);
  assert.equal([...memory.read(DATA, 16), ...memory.read(DATA + 0x100, 32), ...memory.read(DATA + 0x200, 8)], source.slice(0, 56));
});

test('a huge buffer gets what one request may take; nothing past the used length is written', () => {
  const { memory, queue, driver, start, rng } = makeRng();
  start();
  const big = 0x20_0000;
  memory.slice(DATA, big).fill(0xcc);
  queue.post([{ addr: DATA, len: big, write: true }]);
  driver.notify(0);
  const [entry] = queue.takeUsed();
  assert.ok(entry.len >= 1 && entry.len < big, `capped: ${entry.len}`);
  assert.ok(memory.slice(DATA + entry.len, big - entry.len).every((b) => b === 0xcc), 'beyond len untouched');
  assert.is(rng.bytesServed, entry.len);
});

test('nothing is served before DRIVER_OK', () => {
  const { queue, driver } = makeRng();
  assert.ok(driver.negotiate(VERSION_1));
  driver.setupQueue(0, queue);
  queue.post([{ addr: DATA, len: 16, write: true }]);
  driver.notify(0);
  assert.is(queue.usedIdx, 0);
  driver.driverOk();
  driver.notify(0);
  assert.is(queue.takeUsed().length, 1);
});

test('a malformed chain: DEVICE_NEEDS_RESET and a configuration interrupt', () => {
  const { queue, driver, start } = makeRng();
  start();
  queue.post([{ addr: MEMORY_BYTES - 4, len: 16, write: true }]);
  driver.notify(0);
  assert.is(driver.status & STATUS.needsReset, STATUS.needsReset);
  assert.is(driver.readIsr() & 2, 2);
  assert.is(queue.usedIdx, 0);
});

test('after a reset the device serves a new queue from index 0', () => {
  const { memory, queue, driver, start } = makeRng();
  start();
  queue.post([{ addr: DATA, len: 4, write: true }]);
  driver.notify(0);
  driver.status = 0;
  const fresh = new MockSplitQueue(memory, MockSplitQueue.layout(8, 0x8000));
  assert.ok(driver.negotiate(VERSION_1));
  driver.setupQueue(0, fresh);
  driver.driverOk();
  fresh.post([{ addr: DATA + 0x100, len: 4, write: true }]);
  driver.notify(0);
  assert.equal(fresh.takeUsed().map((u) => u.len), [4]);
  assert.is(queue.usedIdx, 1);
});

test.run();
