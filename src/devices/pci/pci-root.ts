// PCI bus 0 behind configuration mechanism #1 (ports 0xcf8-0xcff): the
// CONFIG_ADDRESS register at offsets 0-3 and the CONFIG_DATA window at 4-7
// (crosvm's PciConfigIo, Cloud Hypervisor's PciConfigIo). Slot 0 holds the
// host bridge that firmware and Linux's pci_sanity_check look for. A byte
// access at 0xcf9, inside CONFIG_ADDRESS, is the PIIX3's reset control
// register (a dword at 0xcf8 is still CONFIG_ADDRESS), as on a PC.

import type { BusDevice, ByteRegisterDevice } from '../bus/bus-device';
import { StatefulDevice, StateFields, arrayField, bitsField, bytesField, isSnapshottable, restoreFields, saveFields } from '../snapshot';
import { CONFIG_SPACE_BYTES, LEGACY_CONFIG_BYTES, PciConfigError, PciConfigSpace, PciFunction } from './config-space';

/** Slots on one bus. */
export const PCI_SLOTS = 32;
/** The ports the root claims: CONFIG_ADDRESS (4) and CONFIG_DATA (4). */
export const PCI_CONFIG_PORT_COUNT = 8;
const ADDRESS_ENABLE = 0x8000_0000;
/** The bits of CONFIG_ADDRESS that hold something: enable, bus, device, function, register (bits 1:0 read 0). */
const ADDRESS_WRITABLE = 0x80ff_fffc;

/** The first byte past the type-0 header: the i440FX's own registers (PAM at 0x59-0x5f, SMRAM at 0x72). */
const HOST_BRIDGE_REGISTERS_START = 0x40;
/** PAM0: bits 5:4 govern 0xf0000-0xfffff; PAM1..PAM6 (0x5a-0x5f) govern 16 KiB each from 0xc0000, low nibble first. */
const PAM0 = 0x59;
const PAM_LAST = 0x5f;
const PAM_WRITE_ENABLE = 0x2; // within a segment's 2-bit field; 0x1 is read enable
const BIOS_SEGMENT = { base: 0xf_0000, size: 0x1_0000 };
const EXPANSION_SEGMENTS_START = 0xc_0000;
const EXPANSION_SEGMENT_SIZE = 0x4000;

/** A range PAM governs, and whether guest writes reach RAM there. */
export interface PamSegment {
  base: number;
  size: number;
  writable: boolean;
}
/** CONFIG_ADDRESS's byte 1, port 0xcf9: the reset control register when accessed alone. */
const RESET_CONTROL_OFFSET = 1;

/**
 * What a snapshot keeps of the root. The CONFIG_ADDRESS latch: a guest
 * paused between its write to 0xcf8 and its access of 0xcfc must reach the
 * same register after a restore. And the configuration spaces of the
 * chipset functions, which have no state of their own (the host bridge at
 * 00:00.0, the PIIX3 at 00:01.0), in slot order; the virtio functions save
 * theirs with the rest of their state.
 */
export interface PciRootState {
  configAddress: number;
  chipsetConfig: string[];
}

interface PciRootLiveState {
  configAddress: number;
  chipsetConfig: Uint8Array[];
}

/**
 * The i440FX host bridge QEMU -M pc and crosvm put at 00:00.0 (what SeaBIOS
 * and Linux's sanity check expect). Its registers past the header read back
 * what was written; the PAM registers, which SeaBIOS uses to make
 * 0xc0000-0xfffff writable and then read-only again, are decoded by
 * PciRoot.pamSegments for whoever owns that memory.
 */
class HostBridge implements PciFunction {
  readonly name = 'host-bridge';
  readonly config = new PciConfigSpace({
    vendorId: 0x8086, deviceId: 0x1237, classCode: 0x06, subclass: 0x00, subsystemVendorId: 0x1af4, subsystemId: 0x1100,
  });

  constructor() {
    this.config.allowWrites(HOST_BRIDGE_REGISTERS_START, LEGACY_CONFIG_BYTES - HOST_BRIDGE_REGISTERS_START);
  }

  barRegion(): undefined {
    return undefined;
  }
}

export class PciRoot implements BusDevice, StatefulDevice<PciRootState> {
  readonly name = 'pci-config';
  private address = 0;
  private readonly slots: (PciFunction | undefined)[] = new Array(PCI_SLOTS).fill(undefined);
  /** Config accesses of widths or alignments the spec does not allow, ignored (for stats). */
  oddAccesses = 0;

  /**
   * `onConfigWrite` runs after any write to a present function's space (the
   * board re-reads its BARs); `resetControl` answers byte accesses of 0xcf9.
   */
  constructor(
    private readonly onConfigWrite: (slot: number, fn: PciFunction, offset: number) => void = () => {},
    private readonly resetControl?: ByteRegisterDevice,
  ) {
    this.slots[0] = new HostBridge();
  }

  /** The host bridge's PAM segments as its registers say now (all read-only at reset). */
  pamSegments(): PamSegment[] {
    const config = this.slots[0]!.config;
    const segments: PamSegment[] = [{ ...BIOS_SEGMENT, writable: ((config.byteAt(PAM0) >> 4) & PAM_WRITE_ENABLE) !== 0 }];
    for (let register = PAM0 + 1; register <= PAM_LAST; register++) {
      const value = config.byteAt(register);
      for (const [nibble, shift] of [[0, 0], [1, 4]]) {
        const base = EXPANSION_SEGMENTS_START + (2 * (register - PAM0 - 1) + nibble) * EXPANSION_SEGMENT_SIZE;
        segments.push({ base, size: EXPANSION_SEGMENT_SIZE, writable: ((value >> shift) & PAM_WRITE_ENABLE) !== 0 });
      }
    }
    return segments;
  }

  /** Whether a config write at host bridge `register` (a dword's first byte) may have changed a PAM register. */
  static touchesPam(register: number, length = 4): boolean {
    return register <= PAM_LAST && register + length > PAM0;
  }

  /** Puts `fn` in `slot` (1..31). */
  attach(slot: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 1 || slot >= PCI_SLOTS) throw new RangeError(`PCI slot ${slot} is not 1..${PCI_SLOTS - 1}`);
    if (this.slots[slot]) throw new RangeError(`PCI slot ${slot} holds ${this.slots[slot]!.name} already`);
    this.slots[slot] = fn;
  }

  functionAt(slot: number): PciFunction | undefined {
    return this.slots[slot];
  }

  read(offset: number, data: Uint8Array): void {
    if (this.resetControl && offset === RESET_CONTROL_OFFSET && data.length === 1) {
      data[0] = this.resetControl.readRegister(0);
      return;
    }
    if (offset < 4) {
      // CONFIG_ADDRESS reads back what was written (Linux's pci_check_type1 depends on it).
      for (let i = 0; i < data.length; i++) data[i] = offset + i < 4 ? (this.address >>> (8 * (offset + i))) & 0xff : 0xff;
      return;
    }
    const target = this.target(offset, data.length);
    if (!target) {
      data.fill(0xff);
      return;
    }
    target.fn.config.read(target.register, data);
  }

  write(offset: number, data: Uint8Array): void {
    if (this.resetControl && offset === RESET_CONTROL_OFFSET && data.length === 1) {
      this.resetControl.writeRegister(0, data[0]);
      return;
    }
    if (offset < 4) {
      // Only a dword write latches CONFIG_ADDRESS (PCI 3.0 3.2.2.3.2); narrower ones, such as
      // Linux's outb(0x01, 0xcfb) probe, have no effect.
      if (offset !== 0 || data.length !== 4) {
        this.oddAccesses++;
        return;
      }
      this.address = ((data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) & ADDRESS_WRITABLE) >>> 0;
      return;
    }
    const target = this.target(offset, data.length);
    if (!target) return;
    target.fn.config.write(target.register, data);
    target.fn.configWritten?.(target.register, data.length);
    this.onConfigWrite(target.slot, target.fn, target.register);
  }

  snapshot(): PciRootState {
    const chipset = this.chipsetFunctions();
    const live: PciRootLiveState = {
      configAddress: this.address,
      chipsetConfig: chipset.map((fn) => fn.config.allBytes()),
    };
    return saveFields(live, this.stateFields(chipset.length));
  }

  restore(state: PciRootState): void {
    const chipset = this.chipsetFunctions();
    const live: PciRootLiveState = { configAddress: 0, chipsetConfig: [] };
    restoreFields(live, state, this.stateFields(chipset.length), (problem) => new PciConfigError(
      `cannot restore the PCI root's state: ${problem}; pass a state produced by PciRoot.snapshot() on a board with the same chipset functions (${chipset.map((fn) => fn.name).join(', ')})`));
    this.address = live.configAddress;
    chipset.forEach((fn, i) => fn.config.setAllBytes(live.chipsetConfig[i]));
  }

  /** The attached functions with no state of their own, in slot order. */
  private chipsetFunctions(): PciFunction[] {
    return this.slots.filter((fn): fn is PciFunction => fn !== undefined && !isSnapshottable(fn));
  }

  private stateFields(chipsetCount: number): StateFields<PciRootLiveState, PciRootState> {
    return {
      configAddress: bitsField(ADDRESS_WRITABLE),
      chipsetConfig: arrayField(bytesField(CONFIG_SPACE_BYTES), { exactly: chipsetCount }),
    };
  }

  /** The function and register CONFIG_DATA + `offset - 4` selects, or undefined (absent, disabled, odd access). */
  private target(offset: number, length: number): { slot: number; fn: PciFunction; register: number } | undefined {
    const within = offset - 4;
    // A byte or word at 0xcfc + k is bytes k.. of the selected dword; nothing may cross it.
    if (within + length > 4 || (length === 2 && (within & 1) !== 0) || length === 3) {
      this.oddAccesses++;
      return undefined;
    }
    const address = this.address;
    if ((address & ADDRESS_ENABLE) === 0) return undefined;
    const bus = (address >>> 16) & 0xff;
    const slot = (address >>> 11) & 0x1f;
    const fn = (address >>> 8) & 0x7;
    if (bus !== 0 || fn !== 0) return undefined;
    const present = this.slots[slot];
    if (!present) return undefined;
    const register = (address & 0xfc) + within;
    if (register >= LEGACY_CONFIG_BYTES) return undefined;
    return { slot, fn: present, register };
  }
}
