// Which port and MMIO addresses the device thread serves. The device thread
// publishes this set to every vCPU worker when the VM starts (the buses are
// fixed from then on), so a worker answers accesses nobody claims on its own
// thread (reads as all ones, writes dropped) without a hand-off.

export interface ClaimedRange {
  base: number;
  length: number;
}

export interface ClaimedRanges {
  ports: ClaimedRange[];
  mmio: ClaimedRange[];
}

const PORT_SPACE = 0x10000;

export class AddressClaims {
  private readonly portBitmap = new Uint8Array(PORT_SPACE / 8);
  private readonly mmioBases: Float64Array;
  private readonly mmioEnds: Float64Array;

  constructor(ranges: ClaimedRanges) {
    for (const { base, length } of ranges.ports) {
      for (let port = base; port < base + length && port < PORT_SPACE; port++) {
        this.portBitmap[port >>> 3] |= 1 << (port & 7);
      }
    }
    const mmio = [...ranges.mmio].sort((a, b) => a.base - b.base);
    this.mmioBases = Float64Array.from(mmio, (r) => r.base);
    this.mmioEnds = Float64Array.from(mmio, (r) => r.base + r.length);
  }

  portClaimed(port: number): boolean {
    return (this.portBitmap[port >>> 3] & (1 << (port & 7))) !== 0;
  }

  mmioClaimed(address: number): boolean {
    // Binary search for the last range starting at or below the address.
    let low = 0;
    let high = this.mmioBases.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.mmioBases[middle] <= address) low = middle + 1;
      else high = middle - 1;
    }
    return high >= 0 && address < this.mmioEnds[high];
  }
}
