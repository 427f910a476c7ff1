// A raw disk image behind virtio-blk: the file is opened and checked here,
// the data moves in a piscina pool (block-worker.ts), and a flush waits for
// every write that completed before it and then for fdatasync.

import * as fs from 'node:fs';
import * as path from 'node:path';
import Piscina from 'piscina';
import type { BlockStore } from '../../devices/virtio/blk';
import type { ChainBuffer } from '../../devices/virtio/queue';
import { TsvmmError } from '../../shared/errors';
import { FALLOC_FL, LOCK } from '../../shared/libc-abi';
import { ERRNO, KvmError, native } from '../../shared/native';
import type { BlockTask, RamSegment } from './block-worker';

/** The size of the probe hole punched past the end of an image at open. */
const HOLE_PROBE_BYTES = 4096;
/** Threads moving disk data; pread/pwrite of guest buffers are short, and two cores are the machine. */
const POOL_THREADS = 2;

/** Where a guest-physical range lives in the host: one RAM slot and the offset in it. */
export type RamLocator = (guestAddress: number, length: number) => RamSegment | undefined;

export class FileBlockStore implements BlockStore {
  readonly sizeBytes: number;
  private readonly pool: Piscina;
  /** Writes not yet completed: a flush waits for them. */
  private readonly writes = new Set<Promise<void>>();
  /** Every task in the pool: close() lets them finish. */
  private readonly tasks = new Set<Promise<void>>();
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly readOnly: boolean,
    size: number,
    readonly canPunchHoles: boolean,
    private readonly locate: RamLocator,
  ) {
    this.sizeBytes = size;
    this.pool = new Piscina({
      filename: path.join(__dirname, 'block-worker.js'),
      minThreads: 1,
      maxThreads: POOL_THREADS,
      idleTimeout: 10_000,
    });
  }

  /** Opens `file` (read-only when asked), checks it is a regular file. */
  static open(file: string, readOnly: boolean, locate: RamLocator): FileBlockStore {
    let fd: number;
    try {
      fd = fs.openSync(file, (readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR) | fs.constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      const hint = code === 'EACCES' || code === 'EROFS' ? (readOnly ? '' : '; add readonly=on for a read-only image') : '';
      throw new TsvmmError('usage', `--disk path=${file}: cannot open it (${code}${code === 'ENOENT' ? ', no such file' : ''})${hint}`, { cause: error });
    }
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      fs.closeSync(fd);
      throw new TsvmmError('usage', `--disk path=${file} is not a regular file; give a raw disk image`);
    }
    // One writer, or any number of readers: a second tsvmm must not write an image this one uses.
    const addon = native();
    const locked = addon.flock(fd, (readOnly ? LOCK.SH : LOCK.EX) | LOCK.NB);
    if (locked < 0) {
      fs.closeSync(fd);
      const busy = -locked === ERRNO.EAGAIN; // EWOULDBLOCK is EAGAIN on Linux
      throw new TsvmmError('usage', busy
        ? `--disk path=${file} is in use by another process (it holds a lock on the image); stop it, or give readonly=on to both`
        : new KvmError(`flock of ${file}`, -locked).message);
    }
    // A hole past the end with KEEP_SIZE changes nothing, and says whether the file system can punch them.
    const canPunchHoles = !readOnly && addon.fallocate(fd, FALLOC_FL.PUNCH_HOLE | FALLOC_FL.KEEP_SIZE, stat.size + HOLE_PROBE_BYTES, HOLE_PROBE_BYTES) === 0;
    return new FileBlockStore(fd, readOnly, stat.size - (stat.size % 512), canPunchHoles, locate);
  }

  punchHole(offset: number, length: number): Promise<void> {
    return this.trackWrite(this.run({ op: 'punch', fd: this.fd, position: offset, length }));
  }

  read(offset: number, buffers: readonly ChainBuffer[]): Promise<void> {
    return this.run({ op: 'read', fd: this.fd, position: offset, segments: this.segments(buffers) });
  }

  write(offset: number, buffers: readonly ChainBuffer[]): Promise<void> {
    return this.trackWrite(this.run({ op: 'write', fd: this.fd, position: offset, segments: this.segments(buffers) }));
  }

  /** A write or hole in flight, which the next flush waits for. */
  private trackWrite(done: Promise<void>): Promise<void> {
    const tracked = done.finally(() => this.writes.delete(tracked));
    this.writes.add(tracked);
    return tracked;
  }

  async flush(): Promise<void> {
    await Promise.allSettled([...this.writes]);
    await this.run({ op: 'flush', fd: this.fd });
  }

  /** Waits for what is in flight, stops the pool, closes the image. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tasks]);
    await this.pool.destroy();
    fs.closeSync(this.fd);
  }

  private run(task: BlockTask): Promise<void> {
    if (this.closed) return Promise.reject(new TsvmmError('internal', 'the disk is closed'));
    const running = (this.pool.run(task) as Promise<void>).finally(() => this.tasks.delete(running));
    this.tasks.add(running);
    return running;
  }

  private segments(buffers: readonly ChainBuffer[]): RamSegment[] {
    return buffers.filter((buffer) => buffer.length > 0).map((buffer) => {
      const segment = this.locate(buffer.address, buffer.length);
      // The queue checked every buffer against guest RAM already; a miss here is a tsvmm bug.
      if (!segment) throw new TsvmmError('internal', `guest buffer 0x${buffer.address.toString(16)}+${buffer.length} is in no RAM slot`);
      return segment;
    });
  }
}
