// EventWatcher (src/main/kvm/event-watcher.ts) and the addon's epoll watcher
// without KVM: eventfds signalled from this thread and from a worker, every
// token reported, coalescing, remove, close, fd leaks, and that a process
// with a watcher left open still exits. It also prints the latency from a
// worker's eventfdWrite to the callback here (measured, never asserted).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventWatcher } from '../../../../src/main/kvm/event-watcher';
import { EFD_NONBLOCK } from '../../../../src/shared/kvm-abi';
import { KvmError, native } from '../../../../src/shared/native';

const NATIVE_JS = path.resolve(__dirname, '../../../../src/shared/native.js');
const WATCHER_JS = path.resolve(__dirname, '../../../../src/main/kvm/event-watcher.js');
const EAGAIN = 11;

const openFds = () => fs.readdirSync('/proc/self/fd').length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Blocks this thread (the event loop too), so reports can only pile up. */
const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function eventfd(): number {
  const fd = native().eventfd(0, EFD_NONBLOCK);
  assert.ok(fd >= 0, `eventfd: ${fd}`);
  return fd;
}
function signal(fd: number, times = 1): void {
  for (let i = 0; i < times; i++) assert.is(native().eventfdWrite(fd, 1), 0);
}

/** A watcher whose reports are recorded and awaitable. */
function recorder() {
  const reports: number[][] = [];
  let wake: (() => void) | undefined;
  const watcher = new EventWatcher((tokens) => {
    reports.push([...tokens]);
    wake?.();
  });
  async function next(timeoutMs = 2000): Promise<number[]> {
    const start = reports.length;
    const deadline = Date.now() + timeoutMs;
    while (reports.length === start) {
      if (Date.now() > deadline) throw new Error('no report within the timeout');
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 20);
      });
    }
    return reports[start];
  }
  return { watcher, reports, next };
}

test('each signalled eventfd is reported with its token, and drained', async () => {
  const before = openFds();
  const { watcher, next } = recorder();
  const fds = [eventfd(), eventfd(), eventfd()];
  fds.forEach((fd, i) => watcher.add(fd, 100 + i));
  for (const [i, fd] of [2, 0, 1].map((i) => [i, fds[i]] as const)) {
    signal(fd);
    assert.equal(await next(), [100 + i]);
    assert.is(native().eventfdRead(fd), -EAGAIN, 'the watcher read the counter back to zero');
  }
  watcher.close();
  for (const fd of fds) native().close(fd);
  assert.is(openFds(), before, 'no fd left open');
});

test('signals between two reports coalesce into one report naming each token once', async () => {
  const { watcher, reports, next } = recorder();
  const [a, b, c] = [eventfd(), eventfd(), eventfd()];
  watcher.add(a, 1);
  watcher.add(b, 2);
  watcher.add(c, 0xffff_ffff);
  signal(a, 5);
  signal(b, 3);
  signal(c, 1);
  signal(a, 2);
  block(50); // the watcher thread drains everything while this thread cannot take a report
  const report = await next();
  await sleep(50);
  assert.is(reports.length, 1, `one report, got ${JSON.stringify(reports)}`);
  assert.equal([...report].sort((x, y) => x - y), [1, 2, 0xffff_ffff]);
  for (const fd of [a, b, c]) assert.is(native().eventfdRead(fd), -EAGAIN);
  // a signal after the report gives a new one
  signal(b);
  assert.equal(await next(), [2]);
  watcher.close();
  for (const fd of [a, b, c]) native().close(fd);
});

test('a signal while the callback runs is reported by the next call, not lost', async () => {
  const fd = eventfd();
  const reports: number[][] = [];
  const watcher = new EventWatcher((tokens) => {
    reports.push([...tokens]);
    if (reports.length === 1) {
      signal(fd);
      block(30); // the thread queues the next report while this one runs
    }
  });
  watcher.add(fd, 7);
  signal(fd);
  for (let i = 0; i < 100 && reports.length < 2; i++) await sleep(10);
  assert.equal(reports, [[7], [7]]);
  watcher.close();
  native().close(fd);
});

test('remove: the fd is not read or reported any more; re-added under another token it is', async () => {
  const { watcher, reports, next } = recorder();
  const [a, b] = [eventfd(), eventfd()];
  watcher.add(a, 1);
  watcher.add(b, 2);
  watcher.remove(b);
  assert.equal([...watcher.fds], [[a, 1]]);
  signal(b, 3);
  signal(a);
  assert.equal(await next(), [1]);
  await sleep(30);
  assert.is(reports.length, 1);
  assert.is(native().eventfdRead(b), 3n, 'a removed fd keeps its count: nobody read it');
  watcher.add(b, 22);
  signal(b);
  assert.equal(await next(), [22]);
  assert.throws(() => watcher.remove(b + 1000), /not watched/);
  watcher.close();
  native().close(a);
  native().close(b);
});

test('eventfds signalled from a worker thread are reported here', async () => {
  const { watcher, reports } = recorder();
  const fds = [eventfd(), eventfd()];
  fds.forEach((fd, i) => watcher.add(fd, 10 + i));
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const addon = require(workerData.native).native();
     for (let i = 0; i < 50; i++) for (const fd of workerData.fds) addon.eventfdWrite(fd, 1);`,
    { eval: true, workerData: { native: NATIVE_JS, fds } },
  );
  await new Promise((resolve, reject) => worker.once('exit', resolve).once('error', reject));
  const seen = () => new Set(reports.flat());
  for (let i = 0; i < 200 && seen().size < 2; i++) await sleep(10);
  await sleep(20);
  assert.equal([...seen()].sort(), [10, 11]);
  assert.ok(reports.length <= 100, `${reports.length} reports for 100 signals: some coalesced or one each`);
  for (const report of reports) assert.is(new Set(report).size, report.length, 'a token at most once per report');
  watcher.close();
  for (const fd of fds) native().close(fd);
});

test('latency from eventfdWrite on a worker to the callback here (printed, not asserted)', async () => {
  const N = 1000;
  const fd = eventfd();
  const control = new Int32Array(new SharedArrayBuffer(4)); // signals answered so far
  const stamp = new BigInt64Array(new SharedArrayBuffer(8)); // hrtime of the worker's write
  const latencies: number[] = [];
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => { done = resolve; });
  const watcher = new EventWatcher(() => {
    latencies.push(Number(process.hrtime.bigint() - Atomics.load(stamp, 0)));
    Atomics.add(control, 0, 1);
    Atomics.notify(control, 0);
    if (latencies.length === N) done();
  });
  watcher.add(fd, 1);
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const addon = require(workerData.native).native();
     const { control, stamp, fd, n } = workerData;
     for (let i = 0; i < n; i++) {
       while (Atomics.load(control, 0) < i) Atomics.wait(control, 0, Atomics.load(control, 0), 1000);
       Atomics.store(stamp, 0, process.hrtime.bigint());
       addon.eventfdWrite(fd, 1);
     }`,
    { eval: true, workerData: { native: NATIVE_JS, control, stamp, fd, n: N } },
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([finished, new Promise((resolve) => { timer = setTimeout(resolve, 30_000); })]);
  clearTimeout(timer);
  await worker.terminate();
  watcher.close();
  native().close(fd);
  assert.is(latencies.length, N, 'every signal reported exactly once (one in flight at a time)');
  const sorted = [...latencies].sort((x, y) => x - y);
  const us = (ns: number) => (ns / 1000).toFixed(1);
  const mean = latencies.reduce((sum, x) => sum + x, 0) / N;
  console.log(`eventfdWrite (worker) -> callback (main thread, idle event loop), ${N} signals: ` +
    `median ${us(sorted[N >> 1])} us, mean ${us(mean)} us, p90 ${us(sorted[Math.floor(N * 0.9)])} us, ` +
    `p99 ${us(sorted[Math.floor(N * 0.99)])} us, min ${us(sorted[0])} us, max ${us(sorted[N - 1])} us`);
});

test('close: no callback afterwards, idempotent, further use refused, threads and fds gone', async () => {
  const before = openFds();
  const watchers = Array.from({ length: 4 }, () => recorder());
  const fd = eventfd();
  watchers[0].watcher.add(fd, 5);
  signal(fd); // drained by the thread, maybe queued as a report: dropped by close
  block(30);
  for (const { watcher } of watchers) watcher.close();
  watchers[0].watcher.close();
  signal(fd);
  await sleep(50);
  assert.equal(watchers[0].reports, []);
  assert.ok(watchers[0].watcher.closed);
  assert.throws(() => watchers[0].watcher.add(fd, 1), /closed/);
  native().close(fd);
  assert.is(openFds(), before, 'each watcher\'s epoll and wake fds closed');
  const threads = fs.readdirSync('/proc/self/task').length;
  const more = Array.from({ length: 3 }, () => new EventWatcher(() => {}));
  assert.is(fs.readdirSync('/proc/self/task').length, threads + 3, 'one thread per watcher');
  for (const watcher of more) watcher.close();
  assert.is(fs.readdirSync('/proc/self/task').length, threads, 'close joined the threads');
});

test('argument errors: TypeScript checks, and -errno from the addon as KvmError', () => {
  const { watcher } = recorder();
  const fd = eventfd();
  assert.throws(() => watcher.add(-1, 1), RangeError);
  assert.throws(() => watcher.add(fd, 1.5), RangeError);
  assert.throws(() => watcher.add(fd, 2 ** 32), RangeError);
  assert.throws(() => new EventWatcher(undefined as unknown as () => void), TypeError);
  const unused = 1_000_000;
  try {
    watcher.add(unused, 1);
    assert.unreachable('a closed fd was accepted');
  } catch (error) {
    assert.instance(error, KvmError);
    assert.is((error as KvmError).code, 'EBADF');
  }
  watcher.add(fd, 1);
  assert.throws(() => watcher.add(fd, 2), /already watched/);
  const handle = native().watcherCreate(() => {});
  assert.ok(handle > 0);
  assert.is(native().watcherAdd(handle, fd, 1), 0);
  assert.is(native().watcherAdd(handle, fd, 1), -17 /* EEXIST */);
  assert.is(native().watcherRemove(handle, fd + 1), -2 /* ENOENT */);
  assert.is(native().watcherClose(handle), 0);
  assert.is(native().watcherClose(handle), -9 /* EBADF */);
  assert.is(native().watcherAdd(handle, fd, 1), -9);
  watcher.close();
  native().close(fd);
});

/** Runs a script in a fresh node; returns how it ended. */
function runNode(script: string) {
  const started = Date.now();
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  return { ...result, ms: Date.now() - started };
}

const PRELUDE = `const addon = require(${JSON.stringify(NATIVE_JS)}).native();
const { EventWatcher } = require(${JSON.stringify(WATCHER_JS)});
const fd = addon.eventfd(0, ${EFD_NONBLOCK});`;

test('a process exits on its own with a watcher left open (unref), the teardown closes it', () => {
  const run = runNode(`${PRELUDE}
    const watcher = new EventWatcher((t) => console.log('fired', t.join()));
    watcher.add(fd, 3);
    addon.eventfdWrite(fd, 1);
    setTimeout(() => { addon.eventfdWrite(fd, 1); console.log('end of script'); }, 50);`);
  assert.is(run.error, undefined, `${run.error}`);
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stdout, 'fired 3\nend of script\n', 'the last signal may be dropped at exit');
  assert.ok(run.ms < 5000);
});

test('process.exit() and a worker ending with open, busy watchers: clean exits', () => {
  const run = runNode(`${PRELUDE}
    const { Worker } = require('node:worker_threads');
    const worker = new Worker(\`${PRELUDE.replace(/`/g, '\\`')}
      const w = new EventWatcher(() => {});
      w.add(fd, 1);
      for (let i = 0; i < 1000; i++) addon.eventfdWrite(fd, 1);
      new EventWatcher(() => {});\`, { eval: true });
    worker.on('exit', (code) => {
      console.log('worker exit', code);
      const watcher = new EventWatcher(() => {});
      watcher.add(fd, 1);
      setInterval(() => addon.eventfdWrite(fd, 1), 1);
      setTimeout(() => process.exit(7), 50);
    });`);
  assert.is(run.error, undefined, `${run.error}`);
  assert.is(run.stdout, 'worker exit 0\n', run.stderr);
  assert.is(run.status, 7, run.stderr);
});

test('an exception from the callback is an uncaught exception', () => {
  const run = runNode(`${PRELUDE}
    const watcher = new EventWatcher(() => { throw new Error('from fired'); });
    watcher.add(fd, 1);
    addon.eventfdWrite(fd, 1);
    setTimeout(() => {}, 1000);`);
  assert.is(run.status, 1);
  assert.match(run.stderr, /Error: from fired/);
});

test.run();
