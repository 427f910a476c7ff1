// SerialInputQueue: holds host input until the UART is ready, refills a
// polling guest as it reads, paces an interrupt-driven guest at the line
// rate on timer ticks (never inside its read), and is bounded with a
// "room again" notification. A fake UART and a fake clock; no wall time.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Serial } from '../../../../src/devices/legacy/serial';
import { BUSY_WAIT_LIMIT_MS, InputTimer, PACE_BURST, SerialInputQueue, SerialReceiver } from '../../../../src/main/board/serial-input';

/** A stand-in for COM1's receiver: takes at most `room` bytes until drained. */
function fakeUart(room: number, mode: { ready?: boolean; interrupt?: boolean; cps?: number } = {}) {
  const received: number[] = [];
  let space = room;
  const uart: { -readonly [K in keyof SerialReceiver]: SerialReceiver[K] } & { received: number[]; drain(): void; offers: number } = {
    received,
    offers: 0,
    inputReady: mode.ready ?? true,
    receiveInterruptEnabled: mode.interrupt ?? false,
    charactersPerSecond: mode.cps ?? 11520,
    accessCount: 0,
    drain: () => { space = room; },
    enqueueInput: (bytes: Uint8Array) => {
      uart.offers++;
      const taken = Math.min(space, bytes.length);
      received.push(...bytes.subarray(0, taken));
      space -= taken;
      return taken;
    },
  };
  return uart;
}

/** A hand-driven clock: `advance(ms)` runs the timers that fall due, in order. */
class FakeTimer implements InputTimer {
  time = 0;
  timers: Array<{ at: number; callback: () => void; cancelled: boolean }> = [];
  now(): number { return this.time; }
  later(callback: () => void, ms: number): { cancel(): void } {
    const timer = { at: this.time + ms, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }
  get scheduled(): number { return this.timers.filter((t) => !t.cancelled).length; }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers.splice(this.timers.indexOf(due), 1);
      this.time = Math.max(this.time, due.at);
      due.callback();
    }
    this.time = end;
  }
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => (from + i) & 0xff);

test('polling guest: what the FIFO cannot take waits, in order, and is offered again when the guest drains it', () => {
  const uart = fakeUart(3);
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.of(1, 2, 3, 4, 5));
  queue.push(Uint8Array.of(6, 7));
  assert.equal(uart.received, [1, 2, 3]);
  uart.drain();
  queue.feed(); // what the UART's inputDrained calls, inside the guest's read
  assert.equal(uart.received, [1, 2, 3, 4, 5, 6]);
  uart.drain();
  queue.feed();
  assert.equal(uart.received, [1, 2, 3, 4, 5, 6, 7]);
  assert.is(queue.pending, 0);
  queue.dispose();
});

test('heldBytes: a copy of what the UART has not taken, in order, across chunks (what a snapshot keeps)', () => {
  const uart = fakeUart(2);
  const queue = new SerialInputQueue(() => uart, { timer: new FakeTimer() });
  queue.push(Uint8Array.of(1, 2, 3));
  queue.push(Uint8Array.of(4, 5));
  const held = queue.heldBytes();
  assert.equal(Array.from(held), [3, 4, 5]);
  held[0] = 99;
  uart.drain();
  queue.feed();
  assert.equal(uart.received, [1, 2, 3, 4], 'the copy shares nothing with the queue');
  assert.equal(Array.from(queue.heldBytes()), [5]);
  queue.dispose();
});

test('polling guest: held input is offered again after a delay even if nobody drains; one timer at a time', () => {
  const uart = fakeUart(2);
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.of(1, 2, 3));
  queue.push(Uint8Array.of(4));
  assert.equal(uart.received, [1, 2]);
  assert.is(timer.scheduled, 1, 'a second push while waiting schedules nothing more');
  uart.drain(); // the FIFO was cleared, without a read that would call feed()
  timer.advance(5);
  assert.equal(uart.received, [1, 2, 3, 4]);
  assert.is(timer.scheduled, 0, 'nothing left to retry');
  queue.dispose();
});

test('dispose cancels a pending timer and drops what was held', () => {
  const uart = fakeUart(1);
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.of(1, 2));
  assert.is(timer.scheduled, 1);
  queue.dispose();
  assert.is(timer.scheduled, 0);
  assert.is(queue.pending, 0);
});

test('readiness: nothing is offered before the UART is ready, and all of it once it is', () => {
  const uart = fakeUart(64, { ready: false });
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.of(0x68, 0x69));
  timer.advance(100);
  assert.is(uart.offers, 0, 'not offered while the guest is not ready');
  assert.is(queue.pending, 2);
  uart.inputReady = true;
  queue.feed(); // the UART's inputDrained when it became ready
  assert.equal(uart.received, [0x68, 0x69]);
});

test('no UART yet (the board is not built): input waits', () => {
  let uart: ReturnType<typeof fakeUart> | undefined;
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  assert.ok(queue.push(Uint8Array.of(1)));
  uart = fakeUart(64);
  queue.feed();
  assert.equal(uart.received, [1]);
});

test('with a real Serial: input piped before the guest programs the UART survives its FIFO clear (the "ELLO WORLD" bug)', () => {
  const timer = new FakeTimer();
  let queue: SerialInputQueue | undefined;
  const serial = new Serial({ interrupt: { trigger() {} }, inputDrained: () => queue?.feed() });
  queue = new SerialInputQueue(() => serial, { timer });
  queue.push(new TextEncoder().encode('hello'));
  timer.advance(50);
  // The echo guest's init: FCR enable + clear, MCR, then IER = received data.
  serial.writeRegister(2, 0x07);
  serial.writeRegister(4, 0x0b);
  serial.writeRegister(1, 0x01);
  timer.advance(50);
  const got: number[] = [];
  while (serial.readRegister(5) & 0x01) got.push(serial.readRegister(0));
  assert.is(new TextDecoder().decode(Uint8Array.from(got)), 'hello');
});

test('interrupt-driven guest: a read that empties the FIFO is not refilled inside the read; ticks deliver no faster than the line rate, in order', () => {
  const cps = 11520; // 115200 baud, 8N1
  const uart = fakeUart(64, { interrupt: true, cps });
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  const input = Uint8Array.from(range(30_000));
  queue.push(input);
  assert.is(uart.received.length, 0, 'nothing delivered synchronously to a paced guest');
  timer.advance(10);
  const after10 = uart.received.length;
  assert.ok(after10 > 0 && after10 <= Math.ceil(cps * 10 / 1000), `${after10} bytes in 10 ms`);
  // The guest's handler: `while (LSR.DR) read` -> each drain calls feed(), which must not refill.
  uart.drain();
  queue.feed();
  assert.is(uart.received.length, after10, 'the drain did not refill the FIFO');
  // A guest that keeps up: drains after every tick. Over one simulated second, at most the line rate.
  for (let ms = 0; ms < 1000; ms++) {
    timer.advance(1);
    uart.drain();
    queue.feed();
  }
  const inOneSecond = uart.received.length - after10;
  const before = uart.received.length;
  for (let ms = 0; ms < 1000; ms++) {
    timer.advance(1);
    uart.drain();
    queue.feed();
  }
  assert.ok(uart.received.length - before <= cps + 1, `${uart.received.length - before} bytes in the next second, more than ${cps}`);
  // The line rate, plus what the line carried while the undrained FIFO was full (at most one burst).
  assert.ok(inOneSecond <= cps + PACE_BURST, `${inOneSecond} bytes in 1 s, more than ${cps} + ${PACE_BURST}`);
  assert.ok(inOneSecond >= cps * 0.9, `${inOneSecond} bytes in 1 s: the line rate should be nearly reached`);
  timer.advance(5000);
  for (let i = 0; i < 1000 && queue.pending > 0; i++) { uart.drain(); timer.advance(10); }
  assert.equal(uart.received, [...input], 'every byte, in order');
});

test('interrupt-driven guest: the line rate follows the programmed speed; after an idle line at most one burst arrives at once', () => {
  const uart = fakeUart(100_000, { interrupt: true, cps: 960 }); // 9600 baud 8N1
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.from(range(2000)));
  timer.advance(1000);
  assert.ok(uart.received.length <= 960 && uart.received.length >= 900, `${uart.received.length} bytes in 1 s at 9600 baud`);
  timer.advance(2000);
  assert.is(uart.received.length, 2000);
  assert.is(timer.scheduled, 0, 'no ticks while there is nothing to send');
  // Idle for a long time, then new input: one burst at most, then the line rate again.
  timer.advance(10_000);
  queue.push(Uint8Array.from(range(500)));
  timer.advance(0);
  assert.is(uart.received.length - 2000, PACE_BURST, 'one burst after an idle line');
  timer.advance(100);
  assert.ok(uart.received.length - 2000 <= PACE_BURST + 96 + 1, `${uart.received.length - 2000 - PACE_BURST} bytes in the next 100 ms`);
});

test('interrupt-driven guest: no delivery while the guest still uses the UART (reading, echoing), until it is quiet for a tick or BUSY_WAIT_LIMIT_MS passed', () => {
  const uart = fakeUart(64, { interrupt: true });
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.from(range(1000)));
  timer.advance(4);
  const first = uart.received.length;
  assert.ok(first > 0);
  // The guest reads and echoes: register accesses between every tick for 50 ms.
  for (let ms = 0; ms < 50; ms++) {
    uart.accessCount++;
    uart.drain();
    timer.advance(1);
  }
  assert.is(uart.received.length, first, 'nothing while the guest is busy');
  timer.advance(2); // quiet for a tick now
  const second = uart.received.length;
  assert.ok(second > first && second - first <= 24, `${second - first} bytes once quiet: one tick's worth`);
  // A guest that never stops using the UART still gets input, once per BUSY_WAIT_LIMIT_MS.
  let deliveries = 0;
  for (let ms = 0; ms < 10 * BUSY_WAIT_LIMIT_MS; ms++) {
    const before = uart.received.length;
    uart.accessCount++;
    uart.drain();
    timer.advance(1);
    if (uart.received.length > before) deliveries++;
  }
  assert.ok(deliveries >= 9 && deliveries <= 11, `${deliveries} deliveries in ${10 * BUSY_WAIT_LIMIT_MS} ms of constant UART use`);
  assert.equal(uart.received, range(uart.received.length), 'in order');
});

test('a full FIFO in a paced guest: the held bytes wait for space, none is lost or reordered', () => {
  const uart = fakeUart(4, { interrupt: true });
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer });
  queue.push(Uint8Array.from(range(10)));
  timer.advance(100);
  assert.equal(uart.received, [0, 1, 2, 3]);
  uart.drain();
  timer.advance(100);
  uart.drain();
  timer.advance(100);
  assert.equal(uart.received, range(10));
});

test('bound: push returns false at the limit (keeping the bytes), onSpace runs once it is down to half, and a removed callback does not', () => {
  const uart = fakeUart(10);
  const timer = new FakeTimer();
  const queue = new SerialInputQueue(() => uart, { timer, limit: 100 });
  let spaces = 0;
  let removedCalls = 0;
  queue.onSpace(() => spaces++);
  const remove = queue.onSpace(() => removedCalls++);
  remove();
  assert.ok(queue.push(new Uint8Array(60)), 'below the limit'); // 10 go to the UART, 50 held
  assert.is(queue.pending, 50);
  assert.not.ok(queue.push(new Uint8Array(60)), 'at or above the limit');
  assert.is(queue.pending, 110, 'the bytes of the refused push are kept');
  assert.not.ok(queue.push(new Uint8Array(1)), 'still full');
  for (let i = 0; i < 5; i++) { uart.drain(); queue.feed(); }
  assert.is(queue.pending, 61);
  assert.is(spaces, 0, 'not at half yet');
  uart.drain();
  queue.feed();
  assert.is(queue.pending, 51);
  assert.is(spaces, 0);
  uart.drain();
  queue.feed();
  assert.is(queue.pending, 41);
  assert.is(spaces, 1, 'room again');
  uart.drain();
  queue.feed();
  assert.is(spaces, 1, 'once per full episode');
  assert.is(removedCalls, 0);
  assert.ok(queue.push(new Uint8Array(1)));
});

test.run();
