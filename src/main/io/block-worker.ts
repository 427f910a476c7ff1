// A piscina worker of the block pool: moves data between a disk image and
// guest RAM with pread/pwrite straight into and out of guest memory (each
// worker has its own zero-copy view of the RAM slots), and runs fdatasync.
// Blocking calls belong here, never on the device thread.

import * as fs from 'node:fs';
import { KvmError, native } from '../../shared/native';
import { FALLOC_FL } from '../../shared/libc-abi';

/** One piece of a request's data: `length` bytes at `offset` in the RAM slot mapped at `slotAddress`. */
export interface RamSegment {
  slotAddress: bigint;
  slotSize: number;
  offset: number;
  length: number;
}

export type BlockTask =
  | { op: 'read' | 'write'; fd: number; position: number; segments: RamSegment[] }
  | { op: 'flush'; fd: number }
  /** A hole over [position, position + length): the range then reads as zeros (DISCARD, WRITE_ZEROES). */
  | { op: 'punch'; fd: number; position: number; length: number };

const slots = new Map<bigint, Uint8Array>();

function slotView(segment: RamSegment): Uint8Array {
  let view = slots.get(segment.slotAddress);
  if (!view) {
    view = new Uint8Array(native().view(segment.slotAddress, segment.slotSize));
    slots.set(segment.slotAddress, view);
  }
  return view;
}

export default function run(task: BlockTask): void {
  if (task.op === 'flush') {
    fs.fdatasyncSync(task.fd);
    return;
  }
  if (task.op === 'punch') {
    const result = native().fallocate(task.fd, FALLOC_FL.PUNCH_HOLE | FALLOC_FL.KEEP_SIZE, task.position, task.length);
    if (result < 0) throw new KvmError('fallocate', -result);
    return;
  }
  let position = task.position;
  for (const segment of task.segments) {
    const view = slotView(segment);
    let done = 0;
    while (done < segment.length) {
      const count = task.op === 'read'
        ? fs.readSync(task.fd, view, segment.offset + done, segment.length - done, position + done)
        : fs.writeSync(task.fd, view, segment.offset + done, segment.length - done, position + done);
      if (count === 0) {
        // Past the end of a short image: the guest reads zeros there.
        if (task.op === 'read') view.fill(0, segment.offset + done, segment.offset + segment.length);
        break;
      }
      done += count;
    }
    position += segment.length;
  }
}
