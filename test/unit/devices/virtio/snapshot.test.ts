// Virtio device state for snapshots: a virtio-blk device behind the PCI
// transport serves requests, is saved (through JSON, as a snapshot stores
// it), and a second device built the same way over the same guest memory is
// restored from it and carries on with the next request where the first one
// stopped; requests in flight hold whenIdle; a bad state changes nothing;
// a virtio-console's host input still waiting for receive buffers is kept.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockStore, VirtioBlk } from '../../../../src/devices/virtio/blk';
import { VirtioConsole } from '../../../../src/devices/virtio/console';
import type { ChainBuffer } from '../../../../src/devices/virtio/queue';
import { VirtioPciDevice, VirtioPciState } from '../../../../src/devices/virtio/pci-transport';
import {
  COMMON, FEATURE, GuestMemory, MockSplitQueue, RecordingIntx, RecordingMsiSink, STATUS, VirtioPciDriver,
} from '../../../fixtures/virtio-driver';

const SECTOR = 512;
const T_IN = 0;
const MEMORY_BYTES = 0x20_0000;
const VERSION_1 = 1n << BigInt(FEATURE.version1);

/** Sector n of the image reads as bytes n, n, n, ...; with `held` every read waits for release(). */
class PatternStore implements BlockStore {
  readonly sizeBytes = 64 * SECTOR;
  readonly readOnly = true;
  readonly canPunchHoles = false;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly memory: GuestMemory, private readonly held = false) {}
  read(offset: number, buffers: readonly ChainBuffer[]): Promise<void> {
    const fill = () => { for (const b of buffers) this.memory.write(b.address, new Uint8Array(b.length).fill(offset / SECTOR)); };
    if (!this.held) {
      fill();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => { fill(); resolve(); }));
  }
  release(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }
  write(): Promise<void> { return Promise.reject(new Error('read-only')); }
  flush(): Promise<void> { return Promise.resolve(); }
  punchHole(): Promise<void> { return Promise.reject(new Error('no holes')); }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function makeDevice(memory: GuestMemory, held = false) {
  const store = new PatternStore(memory, held);
  const blk = new VirtioBlk({ store });
  const msi = new RecordingMsiSink();
  const device = new VirtioPciDevice({ backend: blk, memory, bar0Address: 0xd000_0000, msi, intx: new RecordingIntx() });
  return { store, blk, msi, device, driver: new VirtioPciDriver(device) };
}

function setUp(held = false) {
  const memory = new GuestMemory(MEMORY_BYTES);
  const first = makeDevice(memory, held);
  const queue = new MockSplitQueue(memory, MockSplitQueue.layout(16, 0x1000));
  assert.ok(first.driver.negotiate(VERSION_1 | (1n << BigInt(FEATURE.eventIdx))));
  first.driver.setupQueue(0, queue, 0);
  first.driver.driverOk();
  let next = 0x10_0000;
  /** Posts a one-sector read of `sector`; returns where its data and status land. */
  const read = (sector: number) => {
    const header = next;
    const data = next + 64;
    const status = data + SECTOR;
    next += 1024;
    memory.setU32(header, T_IN);
    memory.setU64(header + 8, sector);
    memory.setU8(status, 0xee);
    const head = queue.post([{ addr: header, len: 16 }, { addr: data, len: SECTOR, write: true }, { addr: status, len: 1, write: true }]);
    return { head, data: () => memory.u8(data), status: () => memory.u8(status) };
  };
  return { memory, first, queue, read };
}

/** What a driver reads back from the common configuration of queue 0 and the device. */
function commonView(driver: VirtioPciDriver) {
  driver.setCommon(COMMON.queueSelect, 2, 0);
  return {
    status: driver.common(COMMON.deviceStatus, 1),
    queueSize: driver.common(COMMON.queueSize, 2),
    queueEnable: driver.common(COMMON.queueEnable, 2),
    queueVector: driver.common(COMMON.queueMsixVector, 2),
    desc: driver.common(COMMON.queueDesc, 4),
    driverArea: driver.common(COMMON.queueDriver, 4),
    deviceArea: driver.common(COMMON.queueDevice, 4),
  };
}

test('a restored virtio-blk carries on: same registers, configuration space and MSI-X table, the next request gets the next used slot', async () => {
  const { memory, first, queue, read } = setUp();
  const a = read(3);
  const b = read(5);
  first.driver.notify(0);
  await settle();
  assert.equal([a.status(), a.data(), b.status(), b.data()], [0, 3, 0, 5]);
  assert.equal(queue.takeUsed().map((used) => used.id), [a.head, b.head]);
  const c = read(7); // made available, its notification lost in the pause: the restored device must find it

  const saved = JSON.parse(JSON.stringify(first.device.snapshot())) as VirtioPciState;
  const second = makeDevice(memory);
  second.device.restore(saved);
  assert.equal(commonView(second.driver), commonView(first.driver));
  assert.ok((commonView(second.driver).status & STATUS.driverOk) !== 0);
  const space = (device: VirtioPciDevice) => { const bytes = new Uint8Array(256); device.config.read(0, bytes); return Array.from(bytes); };
  assert.equal(space(second.device), space(first.device));
  const { transport, configSpace } = second.device.snapshot();
  assert.equal({ transport, configSpace }, { transport: saved.transport, configSpace: saved.configSpace });

  await settle();
  assert.equal([c.status(), c.data()], [0, 7], 'activation serves what the ring already holds');
  const d = read(9);
  second.driver.notify(0);
  await settle();
  assert.equal([d.status(), d.data()], [0, 9]);
  assert.equal(queue.takeUsed().map((used) => used.id), [c.head, d.head], 'used entries continue after the first device\'s, none repeated');
});

test('whenIdle waits for the requests in flight', async () => {
  const { first, read } = setUp(true);
  const a = read(2);
  first.driver.notify(0);
  let idle = false;
  void first.device.whenIdle().then(() => { idle = true; });
  await settle();
  assert.is(idle, false);
  assert.is(first.blk.inFlight, 1);
  first.store.release();
  await settle();
  assert.is(idle, true);
  assert.is(a.status(), 0);
  let again = false;
  await first.device.whenIdle().then(() => { again = true; });
  assert.ok(again, 'an idle device resolves at once');
});

test('a bad state is refused with one line and changes nothing', () => {
  const { memory, first } = setUp();
  const saved = first.device.snapshot();
  const second = makeDevice(memory);
  const before = second.device.snapshot();
  const bad: unknown[] = [
    { ...saved, queues: [] },
    { ...saved, extra: 1 },
    { ...saved, transport: { ...saved.transport, status: 300 } },
    { ...saved, configSpace: 'AAAA' },
    { ...saved, queues: [{ ...saved.queues[0], nextUsed: -1 }] },
  ];
  const messages = bad.map((state) => {
    try {
      second.device.restore(state as VirtioPciState);
    } catch (error) {
      return (error as Error).message;
    }
    return 'accepted';
  });
  assert.equal(messages.map((message) => /^cannot restore virtio-blk state: [^\n]+$/.test(message)), [true, true, true, true, true], messages.join('\n'));
  assert.match(messages[0], /queues is not a list of 1/);
  assert.match(messages[2], /transport\.status is 300, not a byte/);
  assert.match(messages[3], /configSpace holds 3 bytes, not 4096/);
  assert.match(messages[4], /queues\[0\]\.nextUsed is -1/);
  assert.equal(second.device.snapshot(), before);
});

test('a restored virtio-console still holds the host input the guest had not taken, and delivers it to the next receive buffer', () => {
  const memory = new GuestMemory(MEMORY_BYTES);
  const makeConsole = () => {
    const console = new VirtioConsole(() => {});
    const device = new VirtioPciDevice({ backend: console, memory, bar0Address: 0xd000_0000, msi: new RecordingMsiSink(), intx: new RecordingIntx() });
    return { console, device, driver: new VirtioPciDriver(device) };
  };
  const first = makeConsole();
  const receive = new MockSplitQueue(memory, MockSplitQueue.layout(16, 0x1000));
  const transmit = new MockSplitQueue(memory, MockSplitQueue.layout(16, 0x4000));
  assert.ok(first.driver.negotiate(VERSION_1));
  first.driver.setupQueue(0, receive, 0);
  first.driver.setupQueue(1, transmit, 1);
  first.driver.driverOk();
  const typed = new TextEncoder().encode('typed while paused\n');
  assert.is(first.console.sendInput(typed), typed.length, 'held: the guest has posted no receive buffer');

  const saved = JSON.parse(JSON.stringify(first.device.snapshot())) as VirtioPciState;
  assert.equal(saved.backend, { pendingInput: Buffer.from(typed).toString('base64') });
  const second = makeConsole();
  second.device.restore(saved);
  const buffer = 0x10_0000;
  receive.post([{ addr: buffer, len: 64, write: true }]);
  second.driver.notify(0);
  assert.equal(receive.takeUsed().map((used) => used.len), [typed.length]);
  assert.equal(Array.from(memory.read(buffer, typed.length)), Array.from(typed));

  const tooMuch = { ...saved, backend: { pendingInput: Buffer.alloc(64 * 1024 + 1).toString('base64') } };
  assert.throws(() => makeConsole().device.restore(tooMuch), /cannot restore virtio-console state: backend\.pendingInput holds 65537 bytes, more than 65536/);
  const { backend: _left, ...older } = saved;
  makeConsole().device.restore(older as VirtioPciState); // a snapshot from before the console saved its input: nothing waiting
});

test.run();
