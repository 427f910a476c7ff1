// OutputSink: guest output never blocks or spins the event loop, keeps the
// guest's order, is bounded while the reader is slow, and reports a write
// error once; OutputSink.open refuses an unopenable --serial file in one line.
// ConsoleInput: pauses a piped stdin while the guest's input queue is full
// and resumes it when there is room; a terminal is never paused (Ctrl-A x
// must work), and what is typed while the queue is full is dropped.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../../../src/main/cli/args';
import { EventEmitter } from 'node:events';
import { ConsoleInput, ConsoleInputTarget, ESCAPE_HELP, OutputIo, OutputSink, QUIT_LINE } from '../../../../src/main/cli/console';
import { TsvmmError } from '../../../../src/shared/errors';

/** A hand-driven fd: each write waits until the test answers it. */
class FakeIo implements OutputIo {
  written: number[] = [];
  calls: Array<{ data: Uint8Array; callback: (error: NodeJS.ErrnoException | null, written: number) => void }> = [];
  timers: Array<{ callback: () => void; ms: number }> = [];
  closed = 0;
  write(data: Uint8Array, callback: (error: NodeJS.ErrnoException | null, written: number) => void): void {
    this.calls.push({ data: Uint8Array.from(data), callback });
  }
  close(): void { this.closed++; }
  later(callback: () => void, ms: number): void { this.timers.push({ callback, ms }); }
  /** Answers the oldest write: all of it, `count` bytes, or an errno. */
  answer(result: number | 'all' | string = 'all'): void {
    const call = this.calls.shift()!;
    if (typeof result === 'string' && result !== 'all') {
      call.callback(Object.assign(new Error(result), { code: result }), 0);
      return;
    }
    const count = result === 'all' ? call.data.length : result;
    this.written.push(...call.data.subarray(0, count));
    call.callback(null, count);
  }
  fire(): void {
    const timers = this.timers;
    this.timers = [];
    for (const timer of timers) timer.callback();
  }
}

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (values: number[]) => new TextDecoder().decode(Uint8Array.from(values));
const turn = () => new Promise((resolve) => setImmediate(resolve));

test('byte-at-a-time output is written in order, coalesced, one write in flight; flush resolves when it is out', async () => {
  const io = new FakeIo();
  const sink = new OutputSink(io, 'stdout');
  for (const c of 'hello ') sink.write(bytes(c));
  await turn();
  assert.is(io.calls.length, 1, 'one write for the whole turn');
  sink.write(bytes('world\n'));
  await turn();
  assert.is(io.calls.length, 1, 'no second write while the first is in flight');
  let flushed = false;
  const flush = sink.flush().then(() => { flushed = true; });
  io.answer(3); // a short write: the rest is written next
  io.answer();
  io.answer();
  await flush;
  assert.ok(flushed);
  assert.is(text(io.written), 'hello world\n');
});

test('EAGAIN (a full non-blocking pipe) waits for a timer instead of retrying at once', async () => {
  const io = new FakeIo();
  const sink = new OutputSink(io, 'stdout');
  sink.write(bytes('abc'));
  await turn();
  io.answer('EAGAIN');
  assert.is(io.calls.length, 0, 'no immediate retry (that was the 100% CPU spin)');
  assert.is(io.timers.length, 1);
  io.fire();
  assert.is(io.calls.length, 1, 'retried after the delay');
  io.answer();
  assert.is(text(io.written), 'abc');
});

test('EPIPE: onError once with a host error naming the output, later output dropped, flush resolves', async () => {
  const io = new FakeIo();
  const errors: TsvmmError[] = [];
  const sink = new OutputSink(io, 'stdout', { onError: (error) => errors.push(error) });
  sink.write(bytes('lost'));
  await turn();
  io.answer('EPIPE');
  sink.write(bytes('more'));
  await turn();
  await sink.flush();
  assert.is(io.calls.length, 0, 'nothing written after the error');
  assert.is(errors.length, 1);
  assert.is(errors[0].kind, 'host');
  assert.is(errors[0].message, 'cannot write guest output to stdout: EPIPE (its reader went away)');
  assert.is(sink.dropped, 8);
});

test('a reader that stops reading: at most maxBufferedBytes are held, the rest is dropped and counted', async () => {
  const io = new FakeIo();
  const sink = new OutputSink(io, 'stdout', { maxBufferedBytes: 1000 });
  sink.write(new Uint8Array(600));
  await turn(); // in flight, never answered
  for (let i = 0; i < 100; i++) sink.write(new Uint8Array(100));
  assert.is(sink.dropped, 100 * 100 - 1000);
});

test('flush gives up after its deadline when the reader never reads, so tsvmm can exit', async () => {
  const io = new FakeIo();
  const sink = new OutputSink(io, 'stdout');
  sink.write(bytes('stuck'));
  const flush = sink.flush(1234);
  assert.equal(io.timers.map((t) => t.ms), [1234]);
  io.fire();
  await flush;
});

test('close waits for the queued bytes, then closes once', async () => {
  const io = new FakeIo();
  const sink = new OutputSink(io, 'file');
  sink.write(bytes('x'));
  sink.close();
  assert.is(io.closed, 0);
  io.answer();
  assert.is(io.closed, 1);
  sink.close();
  assert.is(io.closed, 1);
});

test('--serial file:/dev/full: the write error comes through onError (ENOSPC), no exception', async () => {
  const errors: TsvmmError[] = [];
  const sink = OutputSink.open({ kind: 'file', path: '/dev/full' }, { onError: (error) => errors.push(error) });
  sink.write(bytes('hello\n'));
  await sink.flush();
  sink.close();
  assert.is(errors.length, 1);
  assert.is(errors[0].message, 'cannot write guest output to --serial file:/dev/full: ENOSPC (no space left on device)');
});

test('an unopenable --serial file is one UsageError line: a missing directory, a directory', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-serial-'));
  const cases: Array<[string, RegExp]> = [
    [path.join(dir, 'missing', 'out'), /^cannot open --serial file:.*\/missing\/out: ENOENT \(no such file or directory\); give a path to a writable file$/],
    [dir, /^cannot open --serial file:.*: EISDIR \(it is a directory\); give a path to a writable file$/],
  ];
  for (const [file, message] of cases) {
    assert.throws(() => OutputSink.open({ kind: 'file', path: file }), (error: unknown) => error instanceof UsageError && message.test((error as Error).message));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a --serial FIFO without a reader is refused at once instead of blocking the open', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-serial-'));
  const fifo = path.join(dir, 'fifo');
  require('node:child_process').spawnSync('mkfifo', [fifo]);
  assert.throws(() => OutputSink.open({ kind: 'file', path: fifo }), (error: unknown) => error instanceof UsageError && /ENXIO/.test((error as Error).message));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A stand-in for process.stdin: emits what the test feeds it while flowing. */
class FakeStdin extends EventEmitter {
  flowing = false;
  rawMode = false;
  pauses = 0;
  resumes = 0;
  constructor(readonly isTTY: boolean) { super(); }
  setRawMode(on: boolean): this { this.rawMode = on; return this; }
  pause(): this { this.flowing = false; this.pauses++; return this; }
  resume(): this { this.flowing = true; this.resumes++; return this; }
  unref(): void {}
  /** Delivers a chunk as a stream would: only while flowing. */
  feed(chunk: string | Buffer): boolean {
    if (!this.flowing) return false;
    this.emit('data', typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    return true;
  }
}

/** A stand-in for the Machine's COM1 queue, full at `limit` bytes until the test drains it. */
class FakeTarget implements ConsoleInputTarget {
  received: number[] = [];
  held = 0;
  listeners = new Set<() => void>();
  constructor(private readonly limit: number) {}
  sendInput(data: Uint8Array): boolean {
    this.received.push(...data);
    this.held += data.length;
    return this.held < this.limit;
  }
  onInputSpace(callback: () => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }
  drain(): void {
    this.held = 0;
    for (const listener of this.listeners) listener();
  }
}

const asInput = (stdin: FakeStdin) => stdin as unknown as NodeJS.ReadStream;

test('ConsoleInput on a pipe: pauses stdin when the guest queue is full, resumes when there is room, and loses nothing', () => {
  const stdin = new FakeStdin(false);
  const target = new FakeTarget(10);
  const input = new ConsoleInput(target, () => assert.unreachable('no quit on a pipe'), asInput(stdin));
  input.start();
  assert.ok(stdin.flowing);
  assert.ok(stdin.feed('hello'));
  assert.ok(stdin.flowing, 'room left');
  assert.ok(stdin.feed('world!'));
  assert.not.ok(stdin.flowing, 'paused once the queue said it is full');
  assert.not.ok(stdin.feed('more'), 'nothing read while paused');
  target.drain();
  assert.ok(stdin.flowing, 'resumed when the queue had room');
  assert.ok(stdin.feed('more'));
  assert.is(Buffer.from(target.received).toString('latin1'), 'helloworld!more');
  assert.is(input.dropped, 0);
  input.dispose();
  assert.is(target.listeners.size, 0, 'dispose removes the space callback');
  assert.not.ok(stdin.flowing);
});

test('ConsoleInput on a terminal: never paused; typing while the queue is full is dropped, Ctrl-A x still quits', () => {
  const stdin = new FakeStdin(true);
  const target = new FakeTarget(4);
  let quits = 0;
  const input = new ConsoleInput(target, () => quits++, asInput(stdin));
  input.start();
  assert.ok(stdin.rawMode);
  stdin.feed('abcd'); // fills the queue
  stdin.feed('efg'); // typed while full: dropped
  assert.ok(stdin.flowing, 'a terminal is not paused');
  assert.is(input.dropped, 3);
  stdin.feed('\x01x');
  assert.is(quits, 1, 'Ctrl-A x works while the queue is full');
  target.drain();
  stdin.feed('h\x01\x01i');
  assert.is(Buffer.from(target.received).toString('latin1'), 'abcdh\x01i');
  input.dispose();
  assert.not.ok(stdin.rawMode, 'raw mode restored');
});

test('ConsoleInput on a terminal: Ctrl-A h prints the escape keys, Ctrl-A x one line as it quits; neither reaches the guest', () => {
  const stdin = new FakeStdin(true);
  const target = new FakeTarget(1000);
  const said: string[] = [];
  let quits = 0;
  const input = new ConsoleInput(target, () => quits++, asInput(stdin), (text) => said.push(text));
  input.start();
  stdin.feed('a\x01hb');
  assert.equal(said, [ESCAPE_HELP]);
  assert.match(ESCAPE_HELP, /Ctrl-A x +quit tsvmm/);
  assert.match(ESCAPE_HELP, /Ctrl-A h +print this help/);
  assert.match(ESCAPE_HELP, /Ctrl-A Ctrl-A +send Ctrl-A to the guest/);
  assert.ok(ESCAPE_HELP.split('\n').slice(0, -1).every((line) => line.endsWith('\r')), 'CR LF in raw mode');
  assert.is(quits, 0);
  stdin.feed('\x01x');
  assert.is(quits, 1);
  assert.equal(said, [ESCAPE_HELP, QUIT_LINE]);
  assert.is(QUIT_LINE.trim(), 'tsvmm: Ctrl-A x: quitting');
  assert.is(Buffer.from(target.received).toString('latin1'), 'ab');
  input.dispose();
});

test.run();
