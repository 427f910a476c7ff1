import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialInputQueue } from '../../../../src/main/board/serial-input';

/** A stand-in for COM1's receive FIFO: takes at most `room` bytes per offer. */
function fifo(room: number) {
  const received: number[] = [];
  let space = room;
  return {
    received,
    drain: () => { space = room; },
    accept: (bytes: Uint8Array) => {
      const taken = Math.min(space, bytes.length);
      received.push(...bytes.subarray(0, taken));
      space -= taken;
      return taken;
    },
  };
}

test('what the FIFO cannot take waits, in order, and is offered again after the guest drains it', () => {
  const uart = fifo(3);
  const queue = new SerialInputQueue(uart.accept);
  queue.push(Uint8Array.of(1, 2, 3, 4, 5));
  queue.push(Uint8Array.of(6, 7));
  assert.equal(uart.received, [1, 2, 3]);
  uart.drain();
  queue.feed();
  assert.equal(uart.received, [1, 2, 3, 4, 5, 6]);
  uart.drain();
  queue.feed();
  assert.equal(uart.received, [1, 2, 3, 4, 5, 6, 7]);
  queue.dispose();
});

test('held-back input is offered again after a delay even if nobody drains; one retry at a time', () => {
  const uart = fifo(2);
  const retries: Array<() => void> = [];
  const queue = new SerialInputQueue(uart.accept, (callback) => {
    retries.push(callback);
    return { cancel: () => undefined };
  });
  queue.push(Uint8Array.of(1, 2, 3));
  queue.push(Uint8Array.of(4));
  assert.equal(uart.received, [1, 2]);
  assert.is(retries.length, 1, 'a second push while waiting schedules nothing more');
  uart.drain(); // the FIFO was cleared, without a read that would call feed()
  retries.shift()!();
  assert.equal(uart.received, [1, 2, 3, 4]);
  assert.is(retries.length, 0, 'nothing left to retry');
  queue.dispose();
});

test('dispose cancels a pending retry', () => {
  const uart = fifo(1);
  let cancelled = false;
  const queue = new SerialInputQueue(uart.accept, () => ({ cancel: () => { cancelled = true; } }));
  queue.push(Uint8Array.of(1, 2));
  queue.dispose();
  assert.ok(cancelled);
});

test.run();
