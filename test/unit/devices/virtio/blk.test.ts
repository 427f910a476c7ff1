import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockStore, VirtioBlk } from '../../../../src/devices/virtio/blk';
import type { ChainBuffer } from '../../../../src/devices/virtio/queue';
import { VirtioPciDevice } from '../../../../src/devices/virtio/pci-transport';
import {
  FEATURE, GuestMemory, MockSplitQueue, RecordingIntx, RecordingMsiSink, STATUS, VirtioPciDriver,
} from '../../../fixtures/virtio-driver';

// virtio-blk as virtio 1.2 section 5.2 (device-types/blk/description.tex) describes it, driven
// through the PCI transport by the fixture driver.

const T = { in: 0, out: 1, flush: 4, getId: 8, discard: 11, writeZeroes: 13, unknown: 99 } as const;
const S = { ok: 0, ioErr: 1, unsupp: 2 } as const;
const F = { segMax: 2, ro: 5, blkSize: 6, flush: 9, discard: 13, writeZeroes: 14 } as const;
const bit = (n: number) => 1n << BigInt(n);
const VERSION_1 = bit(FEATURE.version1);
const MEMORY_BYTES = 0x20_0000;
const SECTOR = 512;

type Op = { kind: 'read' | 'write' | 'flush' | 'punch'; offset: number; length: number; settle: () => void; fail: () => void };

/** A BlockStore over a Uint8Array; `manual` holds every operation until the test settles it. */
class MemoryStore implements BlockStore {
  readonly image: Uint8Array;
  readonly log: string[] = [];
  readonly pending: Op[] = [];
  constructor(
    private readonly memory: GuestMemory,
    readonly sizeBytes: number,
    readonly options: { readOnly?: boolean; canPunchHoles?: boolean; manual?: boolean; imageBytes?: number } = {},
  ) {
    this.image = new Uint8Array(options.imageBytes ?? sizeBytes);
    for (let i = 0; i < this.image.length; i++) this.image[i] = (i * 7 + (i >> 9)) & 0xff;
  }
  get readOnly() { return this.options.readOnly ?? false; }
  get canPunchHoles() { return this.options.canPunchHoles ?? false; }

  read(offset: number, buffers: readonly ChainBuffer[]): Promise<void> {
    const total = buffers.reduce((sum, b) => sum + b.length, 0);
    return this.op('read', offset, total, () => {
      let at = offset;
      for (const b of buffers) {
        this.memory.write(b.address, this.image.subarray(at, at + b.length));
        at += b.length;
      }
    });
  }
  write(offset: number, buffers: readonly ChainBuffer[]): Promise<void> {
    const total = buffers.reduce((sum, b) => sum + b.length, 0);
    const data = buffers.map((b) => this.memory.read(b.address, b.length)); // taken when handed over
    return this.op('write', offset, total, () => {
      let at = offset;
      for (const chunk of data) {
        this.image.set(chunk, at);
        at += chunk.length;
      }
    });
  }
  flush(): Promise<void> {
    return this.op('flush', 0, 0, () => {});
  }
  punchHole(offset: number, length: number): Promise<void> {
    return this.op('punch', offset, length, () => this.image.fill(0, offset, offset + length));
  }
  private op(kind: Op['kind'], offset: number, length: number, apply: () => void): Promise<void> {
    this.log.push(kind === 'flush' ? 'flush' : `${kind} ${offset}+${length}`);
    if (!this.options.manual) {
      apply();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ kind, offset, length, settle: () => { apply(); resolve(); }, fail: () => reject(new Error('EIO')) });
    });
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function makeBlk(storeOptions: ConstructorParameters<typeof MemoryStore>[2] = {}, sizeBytes = 64 * SECTOR, features?: bigint, serial = 'disk-0001') {
  const memory = new GuestMemory(MEMORY_BYTES);
  const store = new MemoryStore(memory, sizeBytes, storeOptions);
  const blk = new VirtioBlk({ store, serial });
  const intx = new RecordingIntx();
  const device = new VirtioPciDevice({ backend: blk, memory, bar0Address: 0xd000_0000, msi: new RecordingMsiSink(), intx });
  const driver = new VirtioPciDriver(device);
  const offered = driver.deviceFeatures();
  const queue = new MockSplitQueue(memory, MockSplitQueue.layout(16, 0x1000));
  let next = 0x10_0000;
  const alloc = (length: number) => {
    const at = next;
    next += Math.ceil((length + 1) / 64) * 64;
    return at;
  };
  const start = () => {
    assert.ok(driver.negotiate(features ?? (offered & (VERSION_1 | bit(F.flush) | bit(F.ro) | bit(F.blkSize) | bit(F.segMax) | bit(F.discard) | bit(F.writeZeroes)))));
    driver.setupQueue(0, queue);
    driver.driverOk();
  };
  /** Posts header, data and status as separate descriptors (data direction from the type) and notifies. */
  const request = (type: number, sector: number, dataLengths: number[] = [], options: { dataWritable?: boolean; notify?: boolean } = {}) => {
    const header = alloc(16);
    memory.setU32(header, type);
    memory.setU32(header + 4, 0);
    memory.setU64(header + 8, sector);
    const writable = options.dataWritable ?? (type === T.in || type === T.getId);
    const data = dataLengths.map((len) => ({ addr: alloc(len), len, write: writable }));
    const status = alloc(1);
    memory.setU8(status, 0xee);
    const head = queue.post([{ addr: header, len: 16 }, ...data, { addr: status, len: 1, write: true }]);
    if (options.notify ?? true) driver.notify(0);
    return { head, header, data, status: () => memory.u8(status) };
  };
  return { memory, store, blk, intx, device, driver, queue, offered, alloc, start, request };
}

test('configuration: capacity in 512-byte sectors, blk_size and seg_max with their features', () => {
  const { driver, offered } = makeBlk({ imageBytes: 0 }, 2 ** 41 + 3 * SECTOR);
  // The image behind it is never touched by this test, so a small buffer stands for it.
  assert.is(driver.deviceConfig(0, 4), 3);
  assert.is(driver.deviceConfig(4, 4), 2 ** 41 / SECTOR / 2 ** 32);
  assert.ok((offered & bit(F.blkSize)) !== 0n);
  assert.is(driver.deviceConfig(20, 4), 512);
  assert.ok((offered & bit(F.segMax)) !== 0n);
  assert.ok(driver.deviceConfig(12, 4) >= 1);
  assert.ok((offered & bit(F.flush)) !== 0n, 'devices SHOULD always offer FLUSH');
  assert.ok((offered & VERSION_1) !== 0n);
  assert.is(offered & bit(F.ro), 0n);
});

test('read-only store: RO offered; OUT fails with IOERR and writes nothing', async () => {
  const blk = makeBlk({ readOnly: true });
  assert.ok((blk.offered & bit(F.ro)) !== 0n);
  assert.is(blk.offered & (bit(F.discard) | bit(F.writeZeroes)), 0n);
  blk.start();
  const before = blk.store.image.slice();
  const out = blk.request(T.out, 0, [SECTOR]);
  await settle();
  assert.is(out.status(), S.ioErr);
  assert.equal(blk.queue.takeUsed(), [{ id: out.head, len: 1 }]);
  assert.equal(blk.store.image, before);
  assert.not.ok(blk.store.log.some((entry) => entry.startsWith('write')));
  // Reads still work.
  const read = blk.request(T.in, 1, [SECTOR]);
  await settle();
  assert.is(read.status(), S.ok);
});

test('IN: data from the image at sector * 512, used len = data + 1, an interrupt', async () => {
  const blk = makeBlk();
  blk.start();
  const req = blk.request(T.in, 3, [SECTOR, 2 * SECTOR]);
  await settle();
  assert.is(req.status(), S.ok);
  assert.equal(blk.queue.takeUsed(), [{ id: req.head, len: 3 * SECTOR + 1 }]);
  assert.equal(blk.memory.read(req.data[0].addr, SECTOR), blk.store.image.slice(3 * SECTOR, 4 * SECTOR));
  assert.equal(blk.memory.read(req.data[1].addr, 2 * SECTOR), blk.store.image.slice(4 * SECTOR, 6 * SECTOR));
  assert.is(blk.intx.level, true);
  assert.is(blk.driver.readIsr(), 1);
});

test('OUT: the image takes the data, used len = 1', async () => {
  const blk = makeBlk();
  blk.start();
  const req = blk.request(T.out, 5, [SECTOR], { notify: false });
  blk.memory.slice(req.data[0].addr, SECTOR).fill(0xab);
  blk.driver.notify(0);
  await settle();
  assert.is(req.status(), S.ok);
  assert.equal(blk.queue.takeUsed(), [{ id: req.head, len: 1 }]);
  assert.ok(blk.store.image.subarray(5 * SECTOR, 6 * SECTOR).every((b) => b === 0xab));
  assert.is(blk.store.image[6 * SECTOR], (6 * SECTOR * 7 + 6) & 0xff);
});

test('FLUSH: the store flushes, used len = 1', async () => {
  const blk = makeBlk();
  blk.start();
  const req = blk.request(T.flush, 0);
  await settle();
  assert.is(req.status(), S.ok);
  assert.equal(blk.queue.takeUsed(), [{ id: req.head, len: 1 }]);
  assert.equal(blk.store.log, ['flush']);
});

test('GET_ID: 20 bytes, NUL-padded, used len = 21', async () => {
  const blk = makeBlk();
  blk.start();
  const req = blk.request(T.getId, 0, [20], { notify: false });
  blk.memory.slice(req.data[0].addr, 20).fill(0xff);
  blk.driver.notify(0);
  await settle();
  assert.is(req.status(), S.ok);
  assert.equal(blk.queue.takeUsed(), [{ id: req.head, len: 21 }]);
  const id = blk.memory.read(req.data[0].addr, 20);
  assert.equal([...id], [...Buffer.from('disk-0001'), ...new Array(11).fill(0)]);
});

test('a request past the capacity or of a length that is not whole sectors fails with IOERR', async () => {
  const blk = makeBlk();
  blk.start();
  const cases = [
    blk.request(T.in, 63, [2 * SECTOR]), // crosses the end (64 sectors)
    blk.request(T.in, 64, [SECTOR]), // starts at the end
    blk.request(T.out, 2 ** 40, [SECTOR]),
    blk.request(T.in, 0, [100]),
    blk.request(T.out, 0, [SECTOR + 1]),
  ];
  await settle();
  assert.equal(cases.map((c) => c.status()), cases.map(() => S.ioErr));
  assert.equal(blk.queue.takeUsed().map((u) => u.len), [1, 1, 1, 1, 1]);
  assert.equal(blk.store.log, []);
  const last = blk.request(T.in, 63, [SECTOR]); // the last sector is fine
  await settle();
  assert.is(last.status(), S.ok);
});

test('an unknown request type completes with UNSUPP', async () => {
  const blk = makeBlk();
  blk.start();
  const req = blk.request(T.unknown, 0, [SECTOR]);
  const discard = blk.request(T.discard, 0, [16], { dataWritable: false }); // DISCARD not offered here
  await settle();
  assert.is(req.status(), S.unsupp);
  assert.is(discard.status(), S.unsupp);
  assert.equal(blk.queue.takeUsed(), [{ id: req.head, len: 1 }, { id: discard.head, len: 1 }]);
});

test('no device-writable status byte at the end: DEVICE_NEEDS_RESET', async () => {
  for (const tail of [{ write: false, len: 1 }, { write: true, len: 0 }]) {
    const blk = makeBlk();
    blk.start();
    const header = blk.alloc(16);
    blk.memory.setU32(header, T.in);
    blk.queue.post([{ addr: header, len: 16 }, { addr: blk.alloc(SECTOR), len: SECTOR, write: true }, { addr: blk.alloc(1), ...tail }]);
    blk.driver.notify(0);
    await settle();
    assert.is(blk.driver.status & STATUS.needsReset, STATUS.needsReset, JSON.stringify(tail));
    assert.is(blk.driver.readIsr() & 2, 2, 'configuration interrupt');
  }
  const blk = makeBlk();
  blk.start();
  blk.queue.post([{ addr: blk.alloc(16), len: 16 }]); // header only
  blk.driver.notify(0);
  await settle();
  assert.is(blk.driver.status & STATUS.needsReset, STATUS.needsReset);
});

test('a malformed chain (a buffer outside memory): DEVICE_NEEDS_RESET', async () => {
  const blk = makeBlk();
  blk.start();
  blk.queue.post([{ addr: blk.alloc(16), len: 16 }, { addr: MEMORY_BYTES - 8, len: SECTOR, write: true }, { addr: blk.alloc(1), len: 1, write: true }]);
  blk.driver.notify(0);
  await settle();
  assert.is(blk.driver.status & STATUS.needsReset, STATUS.needsReset);
});

test('the device makes no assumption about descriptor layout: split header, header+data, data+status', async () => {
  const blk = makeBlk();
  blk.start();
  const { memory, queue } = blk;
  // Header split 8 + 8 across two descriptors.
  const h1 = blk.alloc(8);
  const h2 = blk.alloc(8);
  memory.setU32(h1, T.in);
  memory.setU64(h2, 7); // the sector field is the second descriptor's first 8 bytes
  const data = blk.alloc(SECTOR);
  const status = blk.alloc(1);
  const a = queue.post([{ addr: h1, len: 8 }, { addr: h2, len: 8 }, { addr: data, len: SECTOR, write: true }, { addr: status, len: 1, write: true }]);
  // Header and OUT data in one readable descriptor.
  const combined = blk.alloc(16 + SECTOR);
  memory.setU32(combined, T.out);
  memory.setU64(combined + 8, 9);
  memory.slice(combined + 16, SECTOR).fill(0x5c);
  const status2 = blk.alloc(1);
  const b = queue.post([{ addr: combined, len: 16 + SECTOR }, { addr: status2, len: 1, write: true }]);
  // IN data and the status byte in one writable descriptor.
  const header3 = blk.alloc(16);
  memory.setU32(header3, T.in);
  memory.setU64(header3 + 8, 2);
  const tail = blk.alloc(SECTOR + 1);
  const c = queue.post([{ addr: header3, len: 16 }, { addr: tail, len: SECTOR + 1, write: true }]);
  blk.driver.notify(0);
  await settle();
  assert.equal(queue.takeUsed(), [{ id: a, len: SECTOR + 1 }, { id: b, len: 1 }, { id: c, len: SECTOR + 1 }]);
  assert.is(memory.u8(status), S.ok);
  assert.equal(memory.read(data, SECTOR), blk.store.image.slice(7 * SECTOR, 8 * SECTOR));
  assert.is(memory.u8(status2), S.ok);
  assert.ok(blk.store.image.subarray(9 * SECTOR, 10 * SECTOR).every((x) => x === 0x5c));
  assert.is(memory.u8(tail + SECTOR), S.ok);
  assert.equal(memory.read(tail, SECTOR), blk.store.image.slice(2 * SECTOR, 3 * SECTOR));
});

test('a header shorter than 16 bytes is refused: IOERR for the request, or DEVICE_NEEDS_RESET', async () => {
  // The spec leaves the device's answer to a malformed request open; either is a refusal the driver sees.
  const blk = makeBlk();
  blk.start();
  const header = blk.alloc(8);
  const status = blk.alloc(1);
  const head = blk.queue.post([{ addr: header, len: 8 }, { addr: status, len: 1, write: true }]);
  blk.driver.notify(0);
  await settle();
  const used = blk.queue.takeUsed();
  const failed = blk.memory.u8(status) === S.ioErr && used.length === 1 && used[0].id === head && used[0].len === 1;
  assert.ok(failed || (blk.driver.status & STATUS.needsReset) !== 0);
  assert.equal(blk.store.log, []);
});

test('several requests in flight complete in the order the store finishes them', async () => {
  const blk = makeBlk({ manual: true });
  blk.start();
  const reqs = [blk.request(T.in, 0, [SECTOR], { notify: false }), blk.request(T.in, 1, [SECTOR], { notify: false }), blk.request(T.out, 2, [SECTOR], { notify: false })];
  blk.driver.notify(0);
  await settle();
  assert.is(blk.store.pending.length, 3, 'all three handed to the store at once');
  assert.is(blk.queue.usedIdx, 0);
  assert.equal(reqs.map((r) => r.status()), [0xee, 0xee, 0xee], 'no status before completion');
  blk.store.pending[2].settle();
  await settle();
  assert.equal(blk.queue.takeUsed(), [{ id: reqs[2].head, len: 1 }]);
  blk.store.pending[0].settle();
  await settle();
  blk.store.pending[1].fail();
  await settle();
  assert.equal(blk.queue.takeUsed(), [{ id: reqs[0].head, len: SECTOR + 1 }, { id: reqs[1].head, len: 1 }]);
  assert.equal(reqs.map((r) => r.status()), [S.ok, S.ioErr, S.ok]);
  assert.equal(blk.memory.read(reqs[0].data[0].addr, SECTOR), blk.store.image.slice(0, SECTOR));
});

test('FLUSH is handed to the store only after the writes before it', async () => {
  const blk = makeBlk({ manual: true });
  blk.start();
  blk.request(T.out, 0, [SECTOR], { notify: false });
  blk.request(T.out, 8, [SECTOR], { notify: false });
  const flush = blk.request(T.flush, 0, [], { notify: false });
  blk.driver.notify(0);
  await settle();
  assert.equal(blk.store.log, [`write 0+${SECTOR}`, `write ${8 * SECTOR}+${SECTOR}`, 'flush']);
  for (const op of blk.store.pending) op.settle();
  await settle();
  assert.is(flush.status(), S.ok);
  assert.is(blk.queue.takeUsed().length, 3);
});

test('without FLUSH negotiated the device is write-through: a write is stable before it completes', async () => {
  // blk description,
  // device operation: a write becomes stable once completed when "neither VIRTIO_BLK_F_CONFIG_WCE nor
  // VIRTIO_BLK_F_FLUSH feature were negotiated, but VIRTIO_BLK_F_FLUSH was offered", and "the device MUST
  // ensure that stable writes are committed to it, before reporting completion of the write".
  const blk = makeBlk({}, 64 * SECTOR, VERSION_1);
  blk.start();
  const req = blk.request(T.out, 0, [SECTOR]);
  await settle();
  await settle();
  assert.is(req.status(), S.ok);
  assert.ok(blk.store.log.includes('flush'), 'without FLUSH negotiated the write must reach stable storage (store.flush) before completion');
});

test('a completion after a device reset does not touch the new queue', async () => {
  const blk = makeBlk({ manual: true });
  blk.start();
  const old = blk.request(T.in, 0, [SECTOR]);
  await settle();
  assert.is(blk.store.pending.length, 1);
  blk.driver.status = 0;
  const fresh = new MockSplitQueue(blk.memory, MockSplitQueue.layout(16, 0x8000));
  assert.ok(blk.driver.negotiate(VERSION_1 | bit(F.flush)));
  blk.driver.setupQueue(0, fresh);
  blk.driver.driverOk();
  blk.store.pending[0].settle();
  await settle();
  assert.is(fresh.usedIdx, 0);
  assert.is(blk.queue.usedIdx, 0);
  assert.is(old.status(), 0xee);
  assert.is(blk.intx.level, false);
  // The new queue works.
  const status = blk.alloc(1);
  const header = blk.alloc(16);
  blk.memory.setU32(header, T.flush);
  fresh.post([{ addr: header, len: 16 }, { addr: status, len: 1, write: true }]);
  blk.driver.notify(0);
  await settle();
  blk.store.pending[1].settle();
  await settle();
  assert.equal(fresh.takeUsed().map((u) => u.len), [1]);
});

test('DISCARD and WRITE_ZEROES: offered only when the store can punch holes; one 16-byte segment', async () => {
  assert.is(makeBlk({ canPunchHoles: false }).offered & (bit(F.discard) | bit(F.writeZeroes)), 0n);
  const blk = makeBlk({ canPunchHoles: true });
  assert.is(blk.offered & (bit(F.discard) | bit(F.writeZeroes)), bit(F.discard) | bit(F.writeZeroes));
  assert.ok(blk.driver.deviceConfig(36, 4) > 0, 'max_discard_sectors');
  assert.ok(blk.driver.deviceConfig(40, 4) >= 1, 'max_discard_seg');
  assert.ok(blk.driver.deviceConfig(48, 4) > 0, 'max_write_zeroes_sectors');
  assert.ok(blk.driver.deviceConfig(52, 4) >= 1, 'max_write_zeroes_seg');
  blk.start();
  const segment = (sector: number, count: number, flags: number) => (req: ReturnType<typeof blk.request>) => {
    const at = req.data[0].addr;
    blk.memory.setU64(at, sector);
    blk.memory.setU32(at + 8, count);
    blk.memory.setU32(at + 12, flags);
  };
  const send = (type: number, fill: ReturnType<typeof segment>) => {
    const req = blk.request(type, 0, [16], { dataWritable: false, notify: false });
    fill(req);
    blk.driver.notify(0);
    return req;
  };
  const discard = send(T.discard, segment(2, 2, 0));
  const zeroes = send(T.writeZeroes, segment(10, 3, 1)); // unmap allowed for write zeroes
  const outside = send(T.writeZeroes, segment(63, 2, 0));
  await settle();
  assert.equal([discard.status(), zeroes.status(), outside.status()], [S.ok, S.ok, S.ioErr]);
  assert.equal(blk.queue.takeUsed().map((u) => u.len), [1, 1, 1]);
  assert.ok(blk.store.log.includes(`punch ${2 * SECTOR}+${2 * SECTOR}`));
  assert.ok(blk.store.image.subarray(10 * SECTOR, 13 * SECTOR).every((b) => b === 0), 'write zeroes reads back zeros');
  assert.is(blk.store.image[13 * SECTOR], (13 * SECTOR * 7 + 13) & 0xff);
});

test('DISCARD with the unmap flag, or any unknown flag, completes with UNSUPP', async () => {
  // "The device MUST set the
  // status byte to VIRTIO_BLK_S_UNSUPP for discard, secure erase and write zeroes commands if any unknown
  // flag is set. Furthermore, the device MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard
  // commands if the unmap flag is set."
  const blk = makeBlk({ canPunchHoles: true });
  blk.start();
  const send = (type: number, flags: number) => {
    const req = blk.request(type, 0, [16], { dataWritable: false, notify: false });
    blk.memory.setU64(req.data[0].addr, 4);
    blk.memory.setU32(req.data[0].addr + 8, 1);
    blk.memory.setU32(req.data[0].addr + 12, flags);
    blk.driver.notify(0);
    return req;
  };
  const discardUnmap = send(T.discard, 1);
  const discardUnknown = send(T.discard, 2);
  const zeroesUnknown = send(T.writeZeroes, 0x8000_0000);
  await settle();
  assert.equal([discardUnmap.status(), discardUnknown.status(), zeroesUnknown.status()], [S.unsupp, S.unsupp, S.unsupp],
    'UNSUPP for unmap on DISCARD and for unknown flags');
  assert.not.ok(blk.store.log.some((entry) => entry.startsWith('punch')), 'nothing deallocated');
});

test('a failing store completes the request with IOERR', async () => {
  const blk = makeBlk({ manual: true });
  blk.start();
  const req = blk.request(T.out, 0, [SECTOR]);
  await settle();
  blk.store.pending[0].fail();
  await settle();
  assert.is(req.status(), S.ioErr);
  assert.equal(blk.queue.takeUsed(), [{ id: req.head, len: 1 }]);
});

test('requests posted before DRIVER_OK are not served before it', async () => {
  const blk = makeBlk();
  assert.ok(blk.driver.negotiate(VERSION_1));
  blk.driver.setupQueue(0, blk.queue);
  const req = blk.request(T.in, 0, [SECTOR]);
  await settle();
  assert.is(blk.queue.usedIdx, 0);
  assert.is(req.status(), 0xee);
  blk.driver.driverOk();
  blk.driver.notify(0);
  await settle();
  assert.is(req.status(), S.ok);
  assert.is(blk.queue.usedIdx, 1);
});

test.run();
