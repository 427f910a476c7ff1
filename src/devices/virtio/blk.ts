// virtio-blk (virtio 1.2 section 5.2): one request queue; each request is a
// 16-byte device-readable header, data buffers, and a device-writable status
// byte. The model parses and checks requests and hands the data transfer to
// an injected BlockStore (a worker pool in tsvmm, memory in tests); several
// requests may be in flight and complete in any order.

import { ChainBuffer, DescriptorChain } from './queue';
import { VirtioBackend, VirtioContext, isChainError } from './pci-transport';

const VIRTIO_ID_BLOCK = 2;
/** PCI class mass storage, "other" (0x01, 0x80). */
const PCI_CLASS_MASS_STORAGE: readonly [number, number] = [0x01, 0x80];
const SECTOR_BYTES = 512;
const HEADER_BYTES = 16;
/** GET_ID answers with 20 bytes, NUL-padded. */
const ID_BYTES = 20;
/** Data segments per request the device takes (VIRTIO_BLK_F_SEG_MAX); the queue size bounds chains anyway. */
const SEG_MAX = 254;

const BLK_F = { segMax: 2n, ro: 5n, blkSize: 6n, flush: 9n, discard: 13n, writeZeroes: 14n } as const;
const BLK_T = { in: 0, out: 1, flush: 4, getId: 8, discard: 11, writeZeroes: 13 } as const;
/** A DISCARD/WRITE_ZEROES segment: le64 sector, le32 num_sectors, le32 flags. */
const RANGE_SEGMENT_BYTES = 16;
/** The segment flag that lets WRITE_ZEROES deallocate. */
const RANGE_FLAG_UNMAP = 1;
/** The most sectors one DISCARD or WRITE_ZEROES segment may cover (1 GiB): a bound a guest cannot exceed. */
const MAX_RANGE_SECTORS = 2 * 1024 * 1024;
const BLK_S = { ok: 0, ioErr: 1, unsupp: 2 } as const;

/** Where the data lives; every method completes (or fails) asynchronously. */
export interface BlockStore {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Reads from byte `offset` of the image into the guest buffers, in order. */
  read(offset: number, buffers: readonly ChainBuffer[]): Promise<void>;
  /** Writes the guest buffers, in order, at byte `offset`. */
  write(offset: number, buffers: readonly ChainBuffer[]): Promise<void>;
  /** Resolves once every write that completed before it is on stable storage. */
  flush(): Promise<void>;
  /** Whether punchHole works (DISCARD and WRITE_ZEROES are offered only then). */
  readonly canPunchHoles: boolean;
  /** Deallocates [offset, offset + length): it reads as zeros afterwards. */
  punchHole(offset: number, length: number): Promise<void>;
}

interface ParsedRequest {
  type: number;
  sector: number;
  data: ChainBuffer[];
  status: ChainBuffer;
}

export interface VirtioBlkOptions {
  store: BlockStore;
  /** GET_ID's answer (at most 20 bytes). */
  serial?: string;
}

export class VirtioBlk implements VirtioBackend {
  readonly type = VIRTIO_ID_BLOCK;
  readonly name = 'blk';
  readonly queueSizes = [256];
  readonly pciClass = PCI_CLASS_MASS_STORAGE;
  readonly features: bigint;
  readonly configSize = 60;
  private readonly config = new Uint8Array(this.configSize);
  private context?: VirtioContext;
  /** Bumped on reset, so a request finishing after a reset does not touch the new queue. */
  private generation = 0;
  private readonly store: BlockStore;
  private readonly serial: Uint8Array;
  /** Requests handed to the store and not completed yet. */
  inFlight = 0;
  /** Called when inFlight comes down to zero (whenIdle). */
  private idleWaiters: (() => void)[] = [];
  readonly counters = { requests: 0, errors: 0, bytesRead: 0, bytesWritten: 0, flushes: 0 };

  constructor(options: VirtioBlkOptions) {
    this.store = options.store;
    const holes = options.store.canPunchHoles && !options.store.readOnly;
    this.features = (1n << BLK_F.segMax) | (1n << BLK_F.blkSize) | (1n << BLK_F.flush) | (options.store.readOnly ? 1n << BLK_F.ro : 0n)
      | (holes ? (1n << BLK_F.discard) | (1n << BLK_F.writeZeroes) : 0n);
    const view = new DataView(this.config.buffer);
    if (holes) {
      view.setUint32(36, MAX_RANGE_SECTORS, true); // max_discard_sectors
      view.setUint32(40, 1, true); // max_discard_seg
      view.setUint32(44, 1, true); // discard_sector_alignment
      view.setUint32(48, MAX_RANGE_SECTORS, true); // max_write_zeroes_sectors
      view.setUint32(52, 1, true); // max_write_zeroes_seg
      this.config[56] = 1; // write_zeroes_may_unmap: a hole reads as zeros
    }
    const sectors = Math.floor(options.store.sizeBytes / SECTOR_BYTES);
    view.setUint32(0, sectors % 2 ** 32, true);
    view.setUint32(4, Math.floor(sectors / 2 ** 32), true);
    view.setUint32(12, SEG_MAX, true);
    view.setUint32(20, SECTOR_BYTES, true);
    this.serial = new Uint8Array(ID_BYTES);
    this.serial.set(new TextEncoder().encode(options.serial ?? '').subarray(0, ID_BYTES));
  }

  readConfig(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = offset + i < this.configSize ? this.config[offset + i] : 0;
  }

  /** Whether the driver took VIRTIO_BLK_F_FLUSH (without it, writes are write-through). */
  private get flushNegotiated(): boolean {
    return ((this.context?.features ?? 0n) & (1n << BLK_F.flush)) !== 0n;
  }

  activate(context: VirtioContext): void {
    this.context = context;
    this.queueNotified(0);
  }

  reset(): void {
    this.context = undefined;
    this.generation++;
  }

  queueNotified(index: number): void {
    const context = this.context;
    if (!context || index !== 0) return;
    const queue = context.queues[0];
    for (;;) {
      let chain: DescriptorChain | undefined;
      try {
        chain = queue.pop(context.memory, context.queueFeatures);
      } catch (error) {
        if (!isChainError(error)) throw error;
        this.counters.errors++;
        context.needsReset(`a malformed request chain: ${error.message}`);
        return;
      }
      if (!chain) return;
      this.counters.requests++;
      this.start(context, chain);
    }
  }

  private start(context: VirtioContext, chain: DescriptorChain): void {
    const request = this.parse(context, chain);
    if (!request) return;
    const generation = this.generation;
    this.inFlight++;
    this.serve(request).then(
      (result) => this.complete(context, generation, chain.head, request, result.status, result.written),
      () => this.complete(context, generation, chain.head, request, BLK_S.ioErr, 0),
    );
  }

  /** The request's parts, or undefined after completing it (with an error) or asking for a reset. */
  private parse(context: VirtioContext, chain: DescriptorChain): ParsedRequest | undefined {
    const buffers = chain.buffers;
    const last = buffers[buffers.length - 1];
    if (!last || !last.writable || last.length < 1) {
      // No status byte to answer through: the driver broke the protocol.
      this.counters.errors++;
      context.needsReset('a request without a device-writable status byte at its end');
      return undefined;
    }
    const status: ChainBuffer = { address: last.address + last.length - 1, length: 1, writable: true };
    const rest = [...buffers.slice(0, -1), ...(last.length > 1 ? [{ ...last, length: last.length - 1 }] : [])];
    const header = this.gatherReadable(context, rest, HEADER_BYTES);
    if (!header) {
      this.answer(context, chain.head, status, BLK_S.ioErr, 0);
      return undefined;
    }
    const view = new DataView(header.bytes.buffer);
    const type = view.getUint32(0, true);
    const sector = view.getUint32(8, true) + view.getUint32(12, true) * 2 ** 32;
    return { type, sector, data: header.rest, status };
  }

  /** The first `count` bytes of the device-readable buffers, and the buffers after them. */
  private gatherReadable(context: VirtioContext, buffers: ChainBuffer[], count: number): { bytes: Uint8Array; rest: ChainBuffer[] } | undefined {
    const bytes = new Uint8Array(count);
    let got = 0;
    let index = 0;
    for (; index < buffers.length && got < count; index++) {
      const buffer = buffers[index];
      if (buffer.writable) return undefined;
      const take = Math.min(buffer.length, count - got);
      bytes.set(context.memory.slice(buffer.address, take), got);
      got += take;
      if (take < buffer.length) {
        return { bytes, rest: [{ address: buffer.address + take, length: buffer.length - take, writable: false }, ...buffers.slice(index + 1)] };
      }
    }
    return got === count ? { bytes, rest: buffers.slice(index) } : undefined;
  }

  private async serve(request: ParsedRequest): Promise<{ status: number; written: number }> {
    const { type, sector, data } = request;
    const length = data.reduce((sum, buffer) => sum + buffer.length, 0);
    const offset = sector * SECTOR_BYTES;
    const fits = length % SECTOR_BYTES === 0 && offset + length <= this.store.sizeBytes && data.length <= SEG_MAX;
    switch (type) {
      case BLK_T.in:
        if (!fits || data.some((buffer) => !buffer.writable)) return { status: BLK_S.ioErr, written: 0 };
        await this.store.read(offset, data);
        this.counters.bytesRead += length;
        return { status: BLK_S.ok, written: length };
      case BLK_T.out:
        if (!fits || this.store.readOnly || data.some((buffer) => buffer.writable)) return { status: BLK_S.ioErr, written: 0 };
        await this.store.write(offset, data);
        // A driver that did not take FLUSH gets write-through: stable before the completion (virtio 1.2 5.2.6.1).
        if (!this.flushNegotiated) await this.store.flush();
        this.counters.bytesWritten += length;
        return { status: BLK_S.ok, written: 0 };
      case BLK_T.flush:
        this.counters.flushes++;
        await this.store.flush();
        return { status: BLK_S.ok, written: 0 };
      case BLK_T.getId: {
        const target = data.find((buffer) => buffer.writable);
        if (!target) return { status: BLK_S.ioErr, written: 0 };
        const count = Math.min(target.length, ID_BYTES);
        this.context?.memory?.slice(target.address, count).set(this.serial.subarray(0, count));
        return { status: BLK_S.ok, written: count };
      }
      case BLK_T.discard:
      case BLK_T.writeZeroes:
        return this.punch(data, type);
      default:
        return { status: BLK_S.unsupp, written: 0 };
    }
  }

  /** DISCARD and WRITE_ZEROES: one 16-byte segment naming a sector range, which becomes a hole. */
  private async punch(data: ChainBuffer[], type: number): Promise<{ status: number; written: number }> {
    const memory = this.context?.memory;
    const segment = data[0];
    if (!memory || !this.store.canPunchHoles || this.store.readOnly) return { status: BLK_S.unsupp, written: 0 };
    if (data.length !== 1 || segment.writable || segment.length !== RANGE_SEGMENT_BYTES) return { status: BLK_S.ioErr, written: 0 };
    const view = new DataView(memory.slice(segment.address, RANGE_SEGMENT_BYTES).slice().buffer);
    const sector = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
    const count = view.getUint32(8, true);
    const flags = view.getUint32(12, true);
    // Unknown flags, or unmap on a DISCARD, are UNSUPP (virtio 1.2 5.2.6.2); WRITE_ZEROES may unmap.
    if ((flags & ~RANGE_FLAG_UNMAP) !== 0 || (type === BLK_T.discard && (flags & RANGE_FLAG_UNMAP) !== 0)) return { status: BLK_S.unsupp, written: 0 };
    const offset = sector * SECTOR_BYTES;
    if (count === 0 || count > MAX_RANGE_SECTORS || offset + count * SECTOR_BYTES > this.store.sizeBytes) return { status: BLK_S.ioErr, written: 0 };
    await this.store.punchHole(offset, count * SECTOR_BYTES);
    return { status: BLK_S.ok, written: 0 };
  }

  private complete(context: VirtioContext, generation: number, head: number, request: ParsedRequest, code: number, written: number): void {
    this.inFlight--;
    // The device was reset meanwhile: the request is dropped, not answered.
    if (generation === this.generation) this.answer(context, head, request.status, code, written);
    if (this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves once every request handed to the store has completed (and been answered in the used ring). */
  whenIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Writes the status byte and puts the chain in the used ring, interrupting the driver if it wants. */
  private answer(context: VirtioContext, head: number, status: ChainBuffer, code: number, written: number): void {
    if (code !== BLK_S.ok) this.counters.errors++;
    context.memory.slice(status.address, 1)[0] = code;
    // Used length: the bytes the device wrote, the status byte included.
    if (context.queues[0].push(context.memory, head, written + 1, context.queueFeatures)) context.interruptQueue(0);
  }
}
