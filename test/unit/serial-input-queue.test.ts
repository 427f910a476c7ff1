import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialInputQueue } from '../../src/main/console';

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

test('held-back input is offered again after a short delay even if nobody drains', async () => {
  const uart = fifo(2);
  const queue = new SerialInputQueue(uart.accept);
  queue.push(Uint8Array.of(1, 2, 3));
  assert.equal(uart.received, [1, 2]);
  uart.drain(); // the FIFO was cleared, without a read that would call feed()
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(uart.received, [1, 2, 3]);
  queue.dispose();
});

test.run();
