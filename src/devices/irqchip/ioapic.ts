// A userspace Intel 82093AA I/O APIC, for tsvmm's --split-irqchip mode where
// KVM keeps only the local APICs. Register semantics follow the 82093AA
// datasheet (290566-001); delivery follows crosvm's
// devices/src/irqchip/ioapic.rs and QEMU's hw/intc/ioapic.c: the IOAPIC does
// not talk to the local APICs itself, it turns each redirection entry into
// the MSI message the entry describes (Intel SDM vol. 3, 11.11 "Message
// Signalled Interrupts") and hands it to an injected sendMsi (in tsvmm:
// KVM_SIGNAL_MSI). KVM reports the EOI of a level-triggered vector with
// KVM_EXIT_IOAPIC_EOI, which the VMM forwards to endOfInterrupt().
//
// Input pins take the logical level (asserted or not), as QEMU's, KVM's and
// crosvm's IOAPICs do: the polarity bit is stored and read back, and the
// board's wiring (not the model) is what inverts an active-low PCI line.

import { BusDevice } from '../bus/bus-device';
import type { InterruptLine, MsiMessage } from '../interrupt';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, arrayField, bitsField, booleanField, byteField, integerField, recordField, restoreFields, saveFields } from '../snapshot';

/** Input pins (redirection entries) of the 82093AA: ISA IRQs 0-15 and PCI INTA-INTD lines. */
export const IOAPIC_PIN_COUNT = 24;
/** The MMIO window the IOAPIC claims from its base (0xfec00000): KVM's IOAPIC_MEM_LENGTH. */
export const IOAPIC_MMIO_SIZE = 0x100;
/**
 * The VER register's version: 0x11, the 82093AA's, which is also what KVM's
 * in-kernel IOAPIC reports (IOAPIC_VERSION_ID) and what tsvmm's MP table
 * declares. crosvm's 0x20 (ICH10) promises an EOI register at offset 0x40
 * that a guest may then use for directed EOI; tsvmm gets EOIs from KVM
 * (KVM_EXIT_IOAPIC_EOI), so it has no use for one.
 */
export const IOAPIC_VERSION = 0x11;

// MMIO offsets from the base (datasheet 3.0: the only two directly addressed registers).
const IOREGSEL = 0x00; // I/O register select: which indirect register IOWIN shows (bits 7:0)
const IOWIN = 0x10; // I/O window: the selected register, read/write
const REGISTER_WIDTH = 4; // IOWIN is a 32-bit register; accesses of other widths are dropped

// Indirect registers (IOREGSEL values).
const REG_ID = 0x00; // IOAPICID: bits 27:24 the APIC id
const REG_VERSION = 0x01; // IOAPICVER: bits 23:16 max redirection entry, 7:0 version (read only)
const REG_ARBITRATION = 0x02; // IOAPICARB: bits 27:24 the arbitration id (read only)
const REG_REDIRECTION_BASE = 0x10; // IOREDTBL[pin] low dword at 0x10 + 2 * pin, high dword at + 1

const ID_SHIFT = 24;
const ID_MASK = 0x0f; // a 4-bit APIC id
const VERSION_MAX_ENTRY_SHIFT = 16;

// Redirection entry, low dword.
const ENTRY_VECTOR_MASK = 0x0000_00ff; // bits 7:0: the interrupt vector, 0x10..0xfe
const ENTRY_DELIVERY_MODE_SHIFT = 8; // bits 10:8: 000 fixed, 001 lowest priority, 010 SMI, 100 NMI, 101 INIT, 111 ExtINT
const ENTRY_DELIVERY_MODE_MASK = 0b111;
const ENTRY_DESTINATION_MODE = 1 << 11; // 0 physical (destination = APIC id), 1 logical (destination = set of APICs)
// Bit 12, delivery status (read only, "send pending"), always reads 0 here: messages go out at once.
const ENTRY_POLARITY_LOW = 1 << 13; // 0 active high, 1 active low (stored only, see the header)
const ENTRY_REMOTE_IRR = 1 << 14; // read only, level entries: accepted by a local APIC, no EOI yet
const ENTRY_TRIGGER_LEVEL = 1 << 15; // 0 edge, 1 level
const ENTRY_MASKED = 1 << 16; // 1: the pin delivers nothing
/** The low-dword bits a guest can write: everything but delivery status, remote IRR and the reserved bits 31:17. */
const ENTRY_LOW_WRITABLE =
  ENTRY_VECTOR_MASK | (ENTRY_DELIVERY_MODE_MASK << ENTRY_DELIVERY_MODE_SHIFT) | ENTRY_DESTINATION_MODE | ENTRY_POLARITY_LOW | ENTRY_TRIGGER_LEVEL | ENTRY_MASKED; // 0x0001_afff
// Redirection entry, high dword.
const ENTRY_DESTINATION_SHIFT = 24; // bits 63:56: destination APIC id or logical set
const ENTRY_HIGH_WRITABLE = 0xff00_0000; // bits 55:32 are reserved
/** After reset every entry is masked (datasheet 3.2.4); everything else is 0. */
const ENTRY_RESET_LOW = ENTRY_MASKED;

// MSI message (Intel SDM vol. 3, 11.11.1 and 11.11.2).
const MSI_ADDRESS_BASE = 0xfee0_0000; // bits 31:20 are always 0xfee
const MSI_ADDRESS_DESTINATION_SHIFT = 12; // bits 19:12: destination id
const MSI_ADDRESS_DESTINATION_MODE = 1 << 2; // bit 2: 0 physical, 1 logical
const MSI_DATA_DELIVERY_MODE_SHIFT = 8; // bits 10:8, the same encoding as the redirection entry
const MSI_DATA_LEVEL_ASSERT = 1 << 14; // bit 14: assert (ignored for edge messages)
const MSI_DATA_TRIGGER_LEVEL = 1 << 15; // bit 15: 0 edge, 1 level

const VECTOR_LIMIT = 0x100;

export class IoapicError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

export interface IoapicOptions {
  /** Delivers one interrupt message to the local APICs (in tsvmm: KVM_SIGNAL_MSI). */
  sendMsi: (address: number, data: number) => void;
  /**
   * Called after the guest changed pin `pin`'s redirection entry, with the
   * MSI message the pin now sends, or null while it is masked. A VMM with
   * the local APICs in KVM mirrors it into KVM's GSI routing table as an MSI
   * route for GSI `pin` (QEMU's ioapic_update_kvm_routes): KVM's split
   * irqchip only exits with KVM_EXIT_IOAPIC_EOI for level-triggered vectors
   * it finds among the MSI routes of GSIs 0..pins-1 (kvm_scan_ioapic_routes).
   */
  routeChanged?: (pin: number, route: MsiMessage | null) => void;
  /** The APIC id in the ID register after reset, 0..15 (default 0; tsvmm's MP table declares the vCPU count). */
  id?: number;
}

/** One redirection entry as its two 32-bit halves. */
export interface IoapicRedirectionEntry {
  low: number;
  high: number;
}

/** Plain, JSON-able state of an Ioapic. */
export interface IoapicState {
  ioregsel: number;
  id: number;
  redirectionTable: IoapicRedirectionEntry[];
  /** Each input pin's current (logical) level. */
  lineLevels: boolean[];
}

/** The one field list of an Ioapic's state (the model keeps these fields in a record of the same shape). */
const IOAPIC_FIELDS: StateFields<IoapicState, IoapicState> = {
  ioregsel: byteField,
  id: integerField(0, ID_MASK, `a 4-bit APIC id 0..${ID_MASK}`),
  redirectionTable: arrayField(
    recordField<IoapicRedirectionEntry, IoapicRedirectionEntry>(
      {
        low: bitsField(ENTRY_LOW_WRITABLE | ENTRY_REMOTE_IRR, 'a redirection entry low dword (no delivery status or reserved bits)'),
        high: bitsField(ENTRY_HIGH_WRITABLE, 'a redirection entry high dword (only the destination, bits 31:24)'),
      },
      () => ({ low: ENTRY_RESET_LOW, high: 0 }),
    ),
    { exactly: IOAPIC_PIN_COUNT },
  ),
  lineLevels: arrayField(booleanField, { exactly: IOAPIC_PIN_COUNT }),
};

/** The MSI message a redirection entry sends (address and data; the level-assert bit is set on every message, as Linux composes them). */
export function redirectionEntryMsi(entry: IoapicRedirectionEntry): MsiMessage {
  const destination = entry.high >>> ENTRY_DESTINATION_SHIFT;
  const address = MSI_ADDRESS_BASE | (destination << MSI_ADDRESS_DESTINATION_SHIFT) | (entry.low & ENTRY_DESTINATION_MODE ? MSI_ADDRESS_DESTINATION_MODE : 0);
  const deliveryMode = (entry.low >> ENTRY_DELIVERY_MODE_SHIFT) & ENTRY_DELIVERY_MODE_MASK;
  const trigger = entry.low & ENTRY_TRIGGER_LEVEL ? MSI_DATA_TRIGGER_LEVEL : 0;
  const data = (entry.low & ENTRY_VECTOR_MASK) | (deliveryMode << MSI_DATA_DELIVERY_MODE_SHIFT) | MSI_DATA_LEVEL_ASSERT | trigger;
  return { address: address >>> 0, data };
}

function isLevel(entry: IoapicRedirectionEntry): boolean {
  return (entry.low & ENTRY_TRIGGER_LEVEL) !== 0;
}

function isMasked(entry: IoapicRedirectionEntry): boolean {
  return (entry.low & ENTRY_MASKED) !== 0;
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 0 || id > ID_MASK) {
    throw new IoapicError(`${what}: IOAPIC id ${id} is not 0..${ID_MASK} (a 4-bit APIC id)`);
  }
}

/**
 * The 82093AA IOAPIC at 0xfec00000: IOREGSEL (0x00) and IOWIN (0x10), the
 * ID, VER (0x00170011: version 0x11, 24 entries), ARB and 24 redirection
 * registers, and 24 input pins that send MSI messages.
 *
 * Access widths: IOREGSEL takes any width (the low byte of a write selects,
 * a read returns it zero-extended), like QEMU's and KVM's. IOWIN must be
 * read and written as a dword (datasheet 3.0): other widths read as 0 and
 * writes are dropped, like QEMU's. Accesses at any other offset are ignored
 * the same way (this IOAPIC has no EOI register). All ignored accesses are
 * counted in rejectedReads/rejectedWrites.
 *
 * Delivery: an unmasked edge-triggered pin sends its message on each rising
 * edge; a rising edge while masked is lost (datasheet, and QEMU). An unmasked
 * level-triggered pin sends while it is asserted and remote IRR is clear, and
 * sets remote IRR; endOfInterrupt(vector) clears it and sends again if the
 * pin is still asserted. Unmasking (or reprogramming) an asserted level pin
 * with remote IRR clear sends. Switching an entry to edge clears remote IRR
 * (QEMU, crosvm; Linux relies on it to "EOI" a pin on IOAPICs without an EOI
 * register).
 */
export class Ioapic implements BusDevice, StatefulDevice<IoapicState> {
  readonly name = 'ioapic';
  /** IOWIN reads of a width other than 4 and reads at offsets other than IOREGSEL and IOWIN (answered with 0). */
  rejectedReads = 0;
  /** IOWIN writes of a width other than 4 and writes at offsets other than IOREGSEL and IOWIN (dropped). */
  rejectedWrites = 0;
  private readonly sendMsi: IoapicOptions['sendMsi'];
  private readonly routeChanged?: IoapicOptions['routeChanged'];
  /** Everything snapshot() saves, under IOAPIC_FIELDS' names. */
  private readonly regs: IoapicState;

  constructor(options: IoapicOptions) {
    const id = options.id ?? 0;
    checkId(id, 'cannot create the IOAPIC');
    this.sendMsi = options.sendMsi;
    this.routeChanged = options.routeChanged;
    this.regs = {
      ioregsel: 0,
      id,
      redirectionTable: Array.from({ length: IOAPIC_PIN_COUNT }, () => ({ low: ENTRY_RESET_LOW, high: 0 })),
      lineLevels: new Array<boolean>(IOAPIC_PIN_COUNT).fill(false),
    };
  }

  snapshot(): IoapicState {
    return saveFields(this.regs, IOAPIC_FIELDS);
  }

  /**
   * Puts `state` (from snapshot()) back and announces every pin's route (the
   * host's routing table must follow the restored entries); sends no
   * interrupt (pending level interrupts go out on the next EOI or line change).
   */
  restore(state: IoapicState): void {
    restoreFields(this.regs, state, IOAPIC_FIELDS, (problem) => new IoapicError(`cannot restore IOAPIC state: ${problem}; pass a state produced by Ioapic.snapshot()`));
    this.regs.redirectionTable.forEach((entry, pin) => this.routeChanged?.(pin, isMasked(entry) ? null : redirectionEntryMsi(entry)));
  }

  /** Pin `pin`'s redirection entry as the guest reads it. */
  redirectionEntry(pin: number): IoapicRedirectionEntry {
    this.checkPin(pin, 'read the redirection entry of');
    return { ...this.regs.redirectionTable[pin] };
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    let value: number;
    if (offset === IOREGSEL) {
      value = this.regs.ioregsel;
    } else if (offset === IOWIN && data.length === REGISTER_WIDTH) {
      value = this.readRegister(this.regs.ioregsel);
    } else {
      this.rejectedReads++;
      return;
    }
    for (let i = 0; i < Math.min(data.length, REGISTER_WIDTH); i++) data[i] = (value >>> (8 * i)) & 0xff;
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === IOREGSEL && data.length > 0) {
      this.regs.ioregsel = data[0];
    } else if (offset === IOWIN && data.length === REGISTER_WIDTH) {
      this.writeRegister(this.regs.ioregsel, (data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) >>> 0);
    } else {
      this.rejectedWrites++;
    }
  }

  /** Sets input pin `pin` to `level` (true = asserted); see the class doc for what that sends. */
  setIrqLine(pin: number, level: boolean): void {
    this.checkPin(pin, 'set the line of');
    const wasHigh = this.regs.lineLevels[pin];
    this.regs.lineLevels[pin] = level;
    const entry = this.regs.redirectionTable[pin];
    if (!level || isMasked(entry)) return;
    if (isLevel(entry)) this.deliverLevel(pin);
    else if (!wasHigh) this.deliver(pin);
  }

  /** An edge from an ISA device (UART, PIT): raises the pin and lowers it again. */
  pulse(pin: number): void {
    this.checkPin(pin, 'pulse');
    this.setIrqLine(pin, true);
    this.setIrqLine(pin, false);
  }

  /**
   * A local APIC's EOI of `vector` (KVM_EXIT_IOAPIC_EOI): clears remote IRR of
   * every level-triggered entry with that vector and, when its pin is still
   * asserted and unmasked, sends the interrupt again.
   */
  endOfInterrupt(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector >= VECTOR_LIMIT) {
      throw new IoapicError(`cannot end interrupt vector ${vector}: a vector is 0..${VECTOR_LIMIT - 1}`);
    }
    for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
      const entry = this.regs.redirectionTable[pin];
      if ((entry.low & ENTRY_VECTOR_MASK) !== vector || !isLevel(entry)) continue;
      entry.low &= ~ENTRY_REMOTE_IRR;
      if (this.regs.lineLevels[pin] && !isMasked(entry)) this.deliverLevel(pin);
    }
  }

  private checkPin(pin: number, what: string): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PIN_COUNT) {
      throw new IoapicError(`cannot ${what} IOAPIC pin ${pin}: the IOAPIC has pins 0..${IOAPIC_PIN_COUNT - 1}`);
    }
  }

  private readRegister(register: number): number {
    switch (register) {
      case REG_ID:
      case REG_ARBITRATION: // the arbitration id is loaded from the APIC id (datasheet 3.2.3), as KVM and QEMU report it
        return (this.regs.id << ID_SHIFT) >>> 0;
      case REG_VERSION:
        return ((IOAPIC_PIN_COUNT - 1) << VERSION_MAX_ENTRY_SHIFT) | IOAPIC_VERSION;
      default: {
        const entry = this.entryAt(register);
        if (!entry) return 0; // unimplemented registers read as 0, as QEMU's
        return register & 1 ? entry.high : entry.low;
      }
    }
  }

  private writeRegister(register: number, value: number): void {
    if (register === REG_ID) {
      this.regs.id = (value >>> ID_SHIFT) & ID_MASK;
      return;
    }
    const entry = this.entryAt(register);
    if (!entry) return; // VER, ARB and unimplemented registers are read only
    const pin = (register - REG_REDIRECTION_BASE) >> 1;
    if (register & 1) {
      entry.high = (value & ENTRY_HIGH_WRITABLE) >>> 0;
    } else {
      entry.low = ((value & ENTRY_LOW_WRITABLE) | (entry.low & ENTRY_REMOTE_IRR)) >>> 0;
      if (!isLevel(entry)) entry.low &= ~ENTRY_REMOTE_IRR;
    }
    this.routeChanged?.(pin, isMasked(entry) ? null : redirectionEntryMsi(entry));
    if (isLevel(entry) && this.regs.lineLevels[pin] && !isMasked(entry)) this.deliverLevel(pin);
  }

  private entryAt(register: number): IoapicRedirectionEntry | undefined {
    if (register < REG_REDIRECTION_BASE) return undefined;
    return this.regs.redirectionTable[(register - REG_REDIRECTION_BASE) >> 1];
  }

  /** A level-triggered pin: sends unless a delivery is still awaiting its EOI. */
  private deliverLevel(pin: number): void {
    const entry = this.regs.redirectionTable[pin];
    if (entry.low & ENTRY_REMOTE_IRR) return;
    entry.low |= ENTRY_REMOTE_IRR;
    this.deliver(pin);
  }

  private deliver(pin: number): void {
    const { address, data } = redirectionEntryMsi(this.regs.redirectionTable[pin]);
    this.sendMsi(address, data);
  }
}

/** An InterruptLine that pulses IOAPIC pin `pin`, for an edge-triggered ISA device (Serial, Pit). */
export function ioapicInterruptLine(ioapic: Ioapic, pin: number): InterruptLine {
  if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PIN_COUNT) {
    throw new IoapicError(`cannot wire an interrupt line to IOAPIC pin ${pin}: the IOAPIC has pins 0..${IOAPIC_PIN_COUNT - 1}`);
  }
  return { trigger: () => ioapic.pulse(pin) };
}
