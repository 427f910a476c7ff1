// A type-0 PCI configuration space: 4 KiB of registers with a write mask per
// bit (Cloud Hypervisor's pci/src/configuration.rs, crosvm's
// pci_configuration.rs). BAR sizing needs no special case: a BAR's writable
// bits are ~(size - 1), so writing all ones reads back the size mask.

import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

export class PciConfigError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/** Header offsets (PCI Local Bus 3.0, 6.1). */
const PCI_REG = {
  vendorId: 0x00,
  deviceId: 0x02,
  command: 0x04,
  status: 0x06,
  revision: 0x08,
  classCode: 0x09,
  headerType: 0x0e,
  bar0: 0x10,
  subsystemVendorId: 0x2c,
  subsystemId: 0x2e,
  capabilitiesPointer: 0x34,
  interruptLine: 0x3c,
  interruptPin: 0x3d,
} as const;

const PCI_COMMAND = { io: 1 << 0, memory: 1 << 1, busMaster: 1 << 2, intxDisable: 1 << 10 } as const;
const PCI_STATUS = { interrupt: 1 << 3, capabilityList: 1 << 4 } as const;
/** Command bits a guest may change: I/O and memory decode, bus master, SERR, INTx disable. */
const COMMAND_WRITABLE = PCI_COMMAND.io | PCI_COMMAND.memory | PCI_COMMAND.busMaster | (1 << 8) | PCI_COMMAND.intxDisable;
/** Status bits cleared by writing 1: parity, signalled/received aborts, SERR, detected parity. */
const STATUS_WRITE_ONE_TO_CLEAR = 0xf900;

/** Header type 0x00 (a type-0 header) with bit 7 set. */
const HEADER_TYPE_MULTI_FUNCTION = 0x80;

/** A function's whole configuration space (PCIe size; the legacy mechanism reaches the first 256 bytes). */
export const CONFIG_SPACE_BYTES = 4096;
/** Legacy configuration mechanism #1 reaches only the first 256 bytes. */
export const LEGACY_CONFIG_BYTES = 256;
const BAR_COUNT = 6;
/** Capabilities start after the header and must fit where mechanism #1 reaches them. */
const FIRST_CAPABILITY = 0x40;
const CAPABILITY_LIMIT = LEGACY_CONFIG_BYTES;

export type BarKind = 'io' | 'memory32' | 'memory64';

export interface BarDefinition {
  index: number;
  kind: BarKind;
  /** A power of two: at least 16 for memory, 4 for I/O. */
  size: number;
  /** The address tsvmm assigns at build time; the guest may move it. */
  address: number;
  prefetchable?: boolean;
}

/** Where a BAR is now, as the guest programmed it. */
export interface BarPlacement {
  index: number;
  kind: BarKind;
  size: number;
  address: number;
  /** The command register's I/O or memory decode bit for this BAR's kind is set. */
  decoding: boolean;
}

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  classCode: number;
  subclass: number;
  progIf?: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** Header type bit 7: the function says functions 1..7 of its slot may exist, so software probes them. */
  multiFunction?: boolean;
}

export class PciConfigSpace {
  private readonly bytes = new Uint8Array(CONFIG_SPACE_BYTES);
  private readonly data = new DataView(this.bytes.buffer);
  /** Bits the guest may write; everything else is read-only. */
  private readonly writable = new Uint8Array(CONFIG_SPACE_BYTES);
  /** Bits a guest write of 1 clears. */
  private readonly writeOneToClear = new Uint8Array(CONFIG_SPACE_BYTES);
  private readonly bars: (BarDefinition | undefined)[] = new Array(BAR_COUNT).fill(undefined);
  private lastCapability = 0;
  private nextCapability = FIRST_CAPABILITY;

  constructor(identity: PciIdentity) {
    this.data.setUint16(PCI_REG.vendorId, identity.vendorId, true);
    this.data.setUint16(PCI_REG.deviceId, identity.deviceId, true);
    this.bytes[PCI_REG.revision] = identity.revision ?? 0;
    this.bytes[PCI_REG.classCode] = identity.progIf ?? 0;
    this.bytes[PCI_REG.classCode + 1] = identity.subclass;
    this.bytes[PCI_REG.classCode + 2] = identity.classCode;
    this.bytes[PCI_REG.headerType] = identity.multiFunction ? HEADER_TYPE_MULTI_FUNCTION : 0;
    this.data.setUint16(PCI_REG.subsystemVendorId, identity.subsystemVendorId ?? 0, true);
    this.data.setUint16(PCI_REG.subsystemId, identity.subsystemId ?? 0, true);
    this.setWritable(PCI_REG.command, 2, COMMAND_WRITABLE);
    this.writeOneToClear[PCI_REG.status + 1] = STATUS_WRITE_ONE_TO_CLEAR >> 8;
    this.writable[PCI_REG.interruptLine] = 0xff;
    this.writable[0x0c] = 0xff; // cache line size: software's scratch, as on real devices
  }

  /** Declares a BAR; its address bits become writable down to its size. */
  addBar(bar: BarDefinition): void {
    const { index, kind, size, address } = bar;
    const minimum = kind === 'io' ? 4 : 16;
    if (!Number.isInteger(index) || index < 0 || index >= BAR_COUNT || (kind === 'memory64' && index === BAR_COUNT - 1)) {
      throw new PciConfigError(`BAR ${index} does not exist (0..5; a 64-bit BAR takes two)`);
    }
    if (this.bars[index] || (kind === 'memory64' && this.bars[index + 1])) throw new PciConfigError(`BAR ${index} is declared twice`);
    if (size < minimum || (size & (size - 1)) !== 0 || size > 2 ** 32) throw new PciConfigError(`BAR ${index} size ${size} is not a power of two from ${minimum}`);
    if (address % size !== 0) throw new PciConfigError(`BAR ${index} at 0x${address.toString(16)} is not aligned to its size 0x${size.toString(16)}`);
    this.bars[index] = { ...bar };
    if (kind === 'memory64') this.bars[index + 1] = { ...bar };
    const at = PCI_REG.bar0 + 4 * index;
    const flags = kind === 'io' ? 0x1 : (kind === 'memory64' ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
    this.data.setUint32(at, ((address % 2 ** 32) | flags) >>> 0, true);
    this.setWritable(at, 4, (~(size - 1) & (kind === 'io' ? 0xffff_fffc : 0xffff_fff0)) >>> 0);
    if (kind === 'memory64') {
      this.data.setUint32(at + 4, Math.floor(address / 2 ** 32), true);
      this.setWritable(at + 4, 4, 0xffff_ffff);
    }
  }

  /**
   * Appends a capability (its bytes start with the id; the next pointer is
   * filled in here) and returns its offset. `writableMask` marks the bytes
   * the guest may change, from the capability's start.
   */
  addCapability(body: Uint8Array, writableMask?: Uint8Array): number {
    const offset = this.nextCapability;
    const length = (body.length + 3) & ~3;
    if (offset + length > CAPABILITY_LIMIT) throw new PciConfigError(`no room for a ${body.length}-byte capability below 0x${CAPABILITY_LIMIT.toString(16)}`);
    this.bytes.set(body, offset);
    this.bytes[offset + 1] = 0;
    if (writableMask) this.writable.set(writableMask.subarray(0, body.length), offset);
    if (this.lastCapability === 0) this.bytes[PCI_REG.capabilitiesPointer] = offset;
    else this.bytes[this.lastCapability + 1] = offset;
    this.data.setUint16(PCI_REG.status, this.data.getUint16(PCI_REG.status, true) | PCI_STATUS.capabilityList, true);
    this.lastCapability = offset;
    this.nextCapability = offset + length;
    return offset;
  }

  setInterrupt(line: number, pin: number): void {
    this.bytes[PCI_REG.interruptLine] = line;
    this.bytes[PCI_REG.interruptPin] = pin;
  }

  /** The interrupt status bit of the status register (INTx asserted), read-only to the guest. */
  setInterruptStatus(asserted: boolean): void {
    const status = this.data.getUint16(PCI_REG.status, true);
    this.data.setUint16(PCI_REG.status, asserted ? status | PCI_STATUS.interrupt : status & ~PCI_STATUS.interrupt, true);
  }

  get command(): number {
    return this.data.getUint16(PCI_REG.command, true);
  }

  /** Reads `data.length` bytes at `offset`; past the space, all ones. */
  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      data[i] = at >= 0 && at < CONFIG_SPACE_BYTES ? this.bytes[at] : 0xff;
    }
  }

  /** Writes through the masks: read-only bits keep their value, RW1C bits clear where a 1 is written. */
  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      if (at < 0 || at >= CONFIG_SPACE_BYTES) continue;
      const mask = this.writable[at];
      const clear = this.writeOneToClear[at] & data[i];
      this.bytes[at] = ((this.bytes[at] & ~mask) | (data[i] & mask)) & ~clear;
    }
  }

  /**
   * Makes `length` bytes from `offset` writable in every bit: the
   * device-specific registers of a chipset function (PAM, PIRQ routing),
   * which QEMU leaves writable past the header as well.
   */
  allowWrites(offset: number, length: number): void {
    this.writable.fill(0xff, offset, offset + length);
  }

  /** Bytes of the space as they are (for device code that owns a capability). */
  byteAt(offset: number): number {
    return this.bytes[offset];
  }

  setByte(offset: number, value: number): void {
    this.bytes[offset] = value;
  }

  /** A copy of the whole space as it is (what a snapshot keeps). */
  allBytes(): Uint8Array {
    return this.bytes.slice();
  }

  /** Puts a whole space back as allBytes() gave it, past the write masks (a restore, not a guest write). */
  setAllBytes(bytes: Uint8Array): void {
    if (bytes.length !== CONFIG_SPACE_BYTES) throw new PciConfigError(`a configuration space is ${CONFIG_SPACE_BYTES} bytes, not ${bytes.length}`);
    this.bytes.set(bytes);
  }

  /** Every declared BAR where the guest has put it now. */
  barPlacements(): BarPlacement[] {
    const command = this.command;
    const placements: BarPlacement[] = [];
    for (let index = 0; index < BAR_COUNT; index++) {
      const bar = this.bars[index];
      if (!bar || bar.index !== index) continue;
      const at = PCI_REG.bar0 + 4 * index;
      const low = (this.data.getUint32(at, true) & (bar.kind === 'io' ? 0xffff_fffc : 0xffff_fff0)) >>> 0;
      const high = bar.kind === 'memory64' ? this.data.getUint32(at + 4, true) : 0;
      placements.push({
        index,
        kind: bar.kind,
        size: bar.size,
        address: low + high * 2 ** 32,
        decoding: (command & (bar.kind === 'io' ? PCI_COMMAND.io : PCI_COMMAND.memory)) !== 0,
      });
    }
    return placements;
  }

  private setWritable(offset: number, length: number, mask: number): void {
    for (let i = 0; i < length; i++) this.writable[offset + i] = (mask >>> (8 * i)) & 0xff;
  }
}

/** One function on the PCI bus: its configuration space and what its BARs decode to. */
export interface PciFunction {
  readonly name: string;
  readonly config: PciConfigSpace;
  /** A config write landed (the root has already applied it through the masks). */
  configWritten?(offset: number, length: number): void;
  /** The region behind BAR `index`: offsets are from the BAR's base. */
  barRegion(index: number): { read(offset: number, data: Uint8Array): void; write(offset: number, data: Uint8Array): void } | undefined;
  /**
   * Places in BAR `index` where a write only signals (virtio queue notify):
   * the host may catch those writes without an exit (KVM_IOEVENTFD) and call
   * `signal` itself. A write that reaches barRegion instead must do the same.
   */
  doorbells?(index: number): readonly { offset: number; length: number; signal: () => void }[];
}
