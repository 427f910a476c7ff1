// The native exit loop's configuration: its layout names the same words the
// JavaScript readers and writers use, and the addon checks it and waits the
// way the device side wakes it (no KVM: the loop's wait works on any channel).

import { constants as osConstants } from 'node:os';
import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLAIM_TABLE_LAYOUT, ClaimTable } from '../../../src/shared/address-claims';
import { CHANNEL_SLOT, Doorbell, ExitChannel, REQUEST_KIND } from '../../../src/shared/exit-channel';
import { MAP_ANONYMOUS, PROT_READ, PROT_WRITE } from '../../../src/shared/kvm-abi';
import { ERRNO, native } from '../../../src/shared/native';
import { NATIVE_LOOP_RETURN, nativeExitLoopConfig } from '../../../src/shared/native-exit-loop';
import { VCPU_CONTROL_BYTES, VCPU_STATS_BYTES, readHandOffHistogram, readVcpuStats } from '../../../src/shared/vcpu-stats';

const MAP_PRIVATE = 0x02;
const PAGE = 4096;

function buffers() {
  return {
    channel: new ExitChannel().buffer,
    doorbell: new Doorbell().buffer,
    control: new SharedArrayBuffer(VCPU_CONTROL_BYTES),
    stats: new SharedArrayBuffer(VCPU_STATS_BYTES),
    claims: new ClaimTable().buffer,
  };
}

/** A device waker for the loops these tests create (its callback never runs: nothing here hands off from KVM). */
let waker: number | undefined;
function deviceWaker(): number {
  waker ??= native().deviceWakerCreate(() => {});
  return waker;
}

function configOver(shared: ReturnType<typeof buffers>, runAddress: bigint, vcpuFd = 0x7fff_ffff) {
  return nativeExitLoopConfig({
    vcpuFd, runRequest: 0, runAddress, runSize: PAGE, ...shared, deviceWaker: deviceWaker(), spinLimit: 0, injectsExtint: false,
  });
}

test('the stats slots the native loop counts in are the ones readVcpuStats names', () => {
  const shared = buffers();
  const config = configOver(shared, 1n);
  const names = Object.keys(config.layout.stats) as (keyof typeof config.layout.stats)[];
  names.forEach((name, i) => { config.stats[config.layout.stats[name]] = i + 1; });
  const read = readVcpuStats(shared.stats);
  names.forEach((name, i) => assert.is(read[name], i + 1, name));
});

test('a request the native loop writes in the channel layout is what the device side reads', () => {
  const shared = buffers();
  const { channel, layout } = configOver(shared, 1n);
  channel[layout.channel.addressLow] = 0x0000_1004;
  channel[layout.channel.addressHigh] = 0x1;
  channel[layout.channel.size] = 4;
  channel[layout.channel.count] = 1;
  channel[layout.channel.dataOffset] = 40;
  channel[layout.channel.kind] = layout.accessKind.mmioRead;
  Atomics.store(channel, layout.channel.requested, 7);
  const device = new ExitChannel(shared.channel);
  assert.is(device.pendingSequence(), 7);
  const access = { kind: 0, address: 0, size: 0, count: 0, dataOffset: 0 };
  device.readAccess(access);
  assert.equal(access, { kind: REQUEST_KIND.mmioRead, address: 0x1_0000_1004, size: 4, count: 1, dataOffset: 40 });
});

test('the claim table layout finds what ClaimTable publishes: port bits, sorted MMIO pairs, an even generation', () => {
  const table = new ClaimTable();
  table.publish([{ base: 0x3f8, length: 8 }], [{ base: 0xfec0_0000, length: 0x1000 }, { base: 0xd000_0000, length: 64 }]);
  const bytes = new Uint8Array(table.buffer);
  const header = new Int32Array(table.buffer);
  const port = (p: number) => (bytes[CLAIM_TABLE_LAYOUT.portsOffset + (p >> 3)] >> (p & 7)) & 1;
  assert.is(port(0x3f7), 0);
  assert.is(port(0x3f8), 1);
  assert.is(port(0x3ff), 1);
  assert.is(port(0x400), 0);
  assert.is(header[CLAIM_TABLE_LAYOUT.mmioCount], 2);
  assert.ok(header[CLAIM_TABLE_LAYOUT.generation] > 0 && header[CLAIM_TABLE_LAYOUT.generation] % 2 === 0);
  const pairs = new Float64Array(table.buffer, CLAIM_TABLE_LAYOUT.mmioOffset, 4);
  assert.equal([...pairs], [0xd000_0000, 0xd000_0040, 0xfec0_0000, 0xfec0_1000]);
});

test('the addon refuses a layout whose slots lie outside their buffers, naming the problem', () => {
  const shared = buffers();
  const config = configOver(shared, 1n);
  const bad = { ...config, layout: { ...config.layout, channel: { ...config.layout.channel, vcpuParked: 4096 } } };
  assert.throws(() => native().vcpuLoopCreate(bad), /vcpuLoopCreate: a channel slot is past the end of its buffer/);
  const untyped = { ...config, stats: new Int32Array(shared.stats) as unknown as Float64Array };
  assert.throws(() => native().vcpuLoopCreate(untyped), /vcpuLoopCreate: stats must be a typed array/);
  const closed = native().deviceWakerCreate(() => {});
  assert.ok(closed > 0);
  assert.is(native().deviceWakerClose(closed), 0);
  assert.is(native().deviceWakerClose(closed), -osConstants.errno.EBADF, 'closed once');
  assert.throws(() => native().vcpuLoopCreate({ ...config, deviceWaker: closed }), /vcpuLoopCreate: deviceWaker is not an open device waker/);
});

test('KVM_RUN failing on a bad fd comes back as -errno, not a NATIVE_LOOP_RETURN', () => {
  const addon = native();
  const page = addon.mmap(-1, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0);
  assert.is(typeof page, 'bigint', `mmap failed: ${page}`);
  try {
    const handle = addon.vcpuLoopCreate(configOver(buffers(), page as bigint));
    const result = addon.vcpuLoopRun(handle);
    assert.ok(result < 0, `got ${result}`);
    assert.not.ok(Object.values(NATIVE_LOOP_RETURN).includes(result as 1 | 2));
    assert.is.not(result, -ERRNO.EINTR);
  } finally {
    addon.munmap(page as bigint, PAGE);
  }
});

test('cross-thread: a vCPU parked in the native wait (FUTEX_WAIT) is woken by complete() with futexWake', async () => {
  const shared = buffers();
  // The worker plays the vCPU: publishes a request the JavaScript way, then waits the native way (spin limit 0: park at once).
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { ExitChannel, Doorbell } = require(workerData.channelModule);
    const { nativeExitLoopConfig } = require(workerData.loopModule);
    const { native } = require(workerData.nativeModule);
    const addon = native();
    const page = addon.mmap(-1, 4096, 3, 0x22, 0);
    const handle = addon.vcpuLoopCreate(nativeExitLoopConfig({
      vcpuFd: 0x7fffffff, runRequest: 0, runAddress: page, runSize: 4096, ...workerData.shared,
      deviceWaker: workerData.deviceWaker, spinLimit: 0, injectsExtint: false,
    }));
    const channel = new ExitChannel(workerData.shared.channel, new Doorbell(workerData.shared.doorbell));
    const sequence = channel.requestInterruptAcknowledge();
    const waited = addon.vcpuLoopWait(handle, sequence);
    parentPort.postMessage({ sequence, waited, result: channel.result });
  `;
  const worker = new Worker(source, {
    eval: true,
    workerData: {
      shared,
      deviceWaker: deviceWaker(),
      channelModule: require.resolve('../../../src/shared/exit-channel'),
      loopModule: require.resolve('../../../src/shared/native-exit-loop'),
      nativeModule: require.resolve('../../../src/shared/native'),
    },
  });
  const reply = new Promise<{ sequence: number; waited: number; result: number }>((resolve) => worker.once('message', resolve));
  const device = new ExitChannel(shared.channel, undefined, (words, slot) => { native().futexWake(words, slot); });
  const deadline = Date.now() + 20000;
  while ((device.pendingSequence() === undefined || Atomics.load(device.words, CHANNEL_SLOT.vcpuParked) !== 1) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.is(Atomics.load(device.words, CHANNEL_SLOT.vcpuParked), 1, 'the worker parked');
  const sequence = device.pendingSequence();
  assert.is(sequence, 1);
  device.complete(sequence!, 0x24);
  // A wake-up that never arrives would hang the worker: give it a deadline, then release it so the test fails instead.
  let timer: NodeJS.Timeout | undefined;
  const answer = await Promise.race([reply, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), 10000); })]);
  clearTimeout(timer);
  if (answer === undefined) {
    Atomics.store(device.words, CHANNEL_SLOT.completed, sequence!);
    native().futexWake(device.words, CHANNEL_SLOT.completed);
  }
  assert.equal(answer, { sequence: 1, waited: 0, result: 0x24 });
  const stats = readVcpuStats(shared.stats);
  assert.is(stats.parks, 1, 'counted as a park in the shared stats');
  assert.is(stats.spinHits, 0);
  // forwarded is 0, and 0 % HANDOFF_SAMPLE_EVERY is 0: this wait is the timed one, in the parked row.
  const waits = readHandOffHistogram(shared.stats);
  assert.is(waits.park.reduce((sum, n) => sum + n, 0), 1, 'the timed wait is in the parked row of the histogram');
  assert.is(waits.spin.reduce((sum, n) => sum + n, 0), 0);
  assert.is(Atomics.load(device.words, CHANNEL_SLOT.vcpuParked), 0, 'the parked flag is cleared after waking');
  await worker.terminate();
});

test.after(() => { if (waker !== undefined) native().deviceWakerClose(waker); });

test.run();
