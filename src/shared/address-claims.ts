// Which port and MMIO addresses the device thread serves, in shared memory.
// vCPU workers answer accesses nobody claims on their own thread (reads as
// all ones, writes dropped) without a hand-off, so they must know the claims;
// and claims move while the guest runs (a PCI BAR the guest reprograms), so
// the table lives in a SharedArrayBuffer that the device thread rewrites.
//
// Ports: a 64 Ki-bit bitmap that vCPUs read directly. The writer changes only
// the bytes that differ, so a port that stays claimed is never seen cleared.
// MMIO: a sorted range list under a generation counter (a seqlock: odd while
// being written). A vCPU keeps its own copy and re-reads it when the
// generation has moved, which costs one atomic load per MMIO exit.

export interface ClaimedRange {
  base: number;
  length: number;
}

const PORT_SPACE = 0x10000;
const PORT_BITMAP_BYTES = PORT_SPACE / 8;
/** Enough for the board, the IOAPIC and every BAR of 32 PCI slots with 6 BARs each. */
export const MAX_MMIO_CLAIMS = 256;

const HEADER = { generation: 0, mmioCount: 1 } as const;
/** How long a reader sleeps on a publish in progress before it looks again. */
const PUBLISH_WAIT_MS = 1;
const HEADER_BYTES = 64;
const MMIO_OFFSET = HEADER_BYTES;
const MMIO_BYTES = MAX_MMIO_CLAIMS * 2 * 8;
const PORTS_OFFSET = MMIO_OFFSET + MMIO_BYTES;
const TABLE_BYTES = PORTS_OFFSET + PORT_BITMAP_BYTES;

/** Where the table's parts are, for a reader outside JavaScript (the native exit loop). */
export const CLAIM_TABLE_LAYOUT = {
  /** Int32 header slots. */
  generation: HEADER.generation,
  mmioCount: HEADER.mmioCount,
  /** Byte offset of the MMIO ranges: Float64 pairs (base, end), sorted by base. */
  mmioOffset: MMIO_OFFSET,
  maxMmioClaims: MAX_MMIO_CLAIMS,
  /** Byte offset of the port bitmap (bit port & 7 of byte port >> 3). */
  portsOffset: PORTS_OFFSET,
} as const;

/** The device thread's side: publishes the buses' ranges whenever they change. */
export class ClaimTable {
  readonly buffer = new SharedArrayBuffer(TABLE_BYTES);
  private readonly header = new Int32Array(this.buffer, 0, HEADER_BYTES / 4);
  private readonly mmio = new Float64Array(this.buffer, MMIO_OFFSET, MAX_MMIO_CLAIMS * 2);
  private readonly ports = new Uint8Array(this.buffer, PORTS_OFFSET, PORT_BITMAP_BYTES);

  publish(ports: readonly ClaimedRange[], mmio: readonly ClaimedRange[]): void {
    if (mmio.length > MAX_MMIO_CLAIMS) {
      throw new RangeError(`${mmio.length} MMIO ranges are claimed; the shared claim table holds ${MAX_MMIO_CLAIMS}`);
    }
    const bitmap = new Uint8Array(PORT_BITMAP_BYTES);
    for (const { base, length } of ports) {
      for (let port = base; port < base + length && port < PORT_SPACE; port++) bitmap[port >>> 3] |= 1 << (port & 7);
    }
    for (let i = 0; i < PORT_BITMAP_BYTES; i++) {
      if (this.ports[i] !== bitmap[i]) this.ports[i] = bitmap[i];
    }
    const sorted = [...mmio].sort((a, b) => a.base - b.base);
    Atomics.add(this.header, HEADER.generation, 1); // odd: readers wait
    sorted.forEach(({ base, length }, i) => {
      this.mmio[2 * i] = base;
      this.mmio[2 * i + 1] = base + length;
    });
    Atomics.store(this.header, HEADER.mmioCount, sorted.length);
    Atomics.add(this.header, HEADER.generation, 1); // even again: published
    Atomics.notify(this.header, HEADER.generation);
  }
}

/** A vCPU's side: asks whether an address is claimed. */
export class AddressClaims {
  private readonly header: Int32Array;
  private readonly sharedMmio: Float64Array;
  private readonly ports: Uint8Array;
  /** This reader's copy of the MMIO ranges, and the generation it was taken at. */
  private mmioBases = new Float64Array(0);
  private mmioEnds = new Float64Array(0);
  private seenGeneration = -1;

  constructor(buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.sharedMmio = new Float64Array(buffer, MMIO_OFFSET, MAX_MMIO_CLAIMS * 2);
    this.ports = new Uint8Array(buffer, PORTS_OFFSET, PORT_BITMAP_BYTES);
  }

  portClaimed(port: number): boolean {
    return (this.ports[port >>> 3] & (1 << (port & 7))) !== 0;
  }

  mmioClaimed(address: number): boolean {
    if (Atomics.load(this.header, HEADER.generation) !== this.seenGeneration) this.reloadMmio();
    // Binary search for the last range starting at or below the address.
    const bases = this.mmioBases;
    let low = 0;
    let high = bases.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (bases[middle] <= address) low = middle + 1;
      else high = middle - 1;
    }
    return high >= 0 && address < this.mmioEnds[high];
  }

  private reloadMmio(): void {
    for (;;) {
      const before = Atomics.load(this.header, HEADER.generation);
      if ((before & 1) !== 0) {
        // A publish is being written (microseconds, unless its thread lost its core): sleep on the word, not spin.
        Atomics.wait(this.header, HEADER.generation, before, PUBLISH_WAIT_MS);
        continue;
      }
      const count = Atomics.load(this.header, HEADER.mmioCount);
      const bases = new Float64Array(count);
      const ends = new Float64Array(count);
      for (let i = 0; i < count; i++) {
        bases[i] = this.sharedMmio[2 * i];
        ends[i] = this.sharedMmio[2 * i + 1];
      }
      if (Atomics.load(this.header, HEADER.generation) !== before) continue;
      this.mmioBases = bases;
      this.mmioEnds = ends;
      this.seenGeneration = before;
      return;
    }
  }
}
