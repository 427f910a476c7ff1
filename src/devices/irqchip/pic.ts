// A userspace pair of Intel 8259A programmable interrupt controllers, for
// tsvmm's --split-irqchip mode where KVM does not emulate them: the master at
// ports 0x20-0x21 takes IRQs 0-7, the slave at 0xa0-0xa1 takes IRQs 8-15 and
// drives the master's input 2. The PIIX/ICH edge/level control registers
// (ELCR) at 0x4d0-0x4d1 choose each IRQ's trigger mode. Semantics follow the
// 8259A datasheet (231468); priority resolution with a rotating "highest
// priority" level, the ELCR masks and the cascade follow QEMU's
// hw/intc/i8259.c, crosvm's devices/src/irqchip/pic.rs and KVM's
// arch/x86/kvm/i8259.c.
//
// The model has no clock and no threads: inputs arrive through setIrqLine(),
// the master's INT output leaves through an injected onIntChange callback,
// and the vCPU's interrupt acknowledge cycle is acknowledge().

import { ByteRegisterDevice } from '../bus/bus-device';
import type { InterruptLine } from '../interrupt';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import {
  StatefulDevice, StateFields, bitsField, booleanField, byteField, integerField, oneOfField, recordField, restoreFields, saveFields,
} from '../snapshot';

/** Each chip claims two ports (command, data). */
export const PIC_PORT_COUNT = 2;
/** ELCR1 (IRQs 0-7) and ELCR2 (IRQs 8-15), on consecutive ports. */
export const PIC_ELCR_PORT_COUNT = 2;
/** IRQs 0-15: 0-7 on the master, 8-15 on the slave. */
export const PIC_IRQ_COUNT = 16;
/** The master input the slave's INT output is wired to (ISA devices on "IRQ 2" use IRQ 9). */
export const PIC_CASCADE_IRQ = 2;

// Port offsets from each chip's base.
const COMMAND_PORT = 0; // A0=0. Write: ICW1, OCW2, OCW3. Read: IRR or ISR (per OCW3), or the poll word
const DATA_PORT = 1; // A0=1. Write: ICW2-ICW4 during initialization, else OCW1 (the IMR). Read: IMR

// ICW1 (command port, D4=1).
const ICW1_SELECT = 0b0001_0000; // D4: this command is ICW1 and starts initialization
const ICW1_IC4 = 0b0000_0001; // IC4: ICW4 follows
const ICW1_SINGLE = 0b0000_0010; // SNGL: single 8259A, no ICW3
const ICW1_LTIM = 0b0000_1000; // LTIM: every input is level triggered
// ADI (bit 2) and A7-A5 (bits 7:5) only matter in 8080 mode, which is not modeled.

// ICW2 (data port, after ICW1).
const ICW2_VECTOR_BASE = 0b1111_1000; // T7-T3; in 8086 mode the low three bits are the IR level

// ICW4 (data port, after ICW3 or ICW2, if ICW1 asked for it).
const ICW4_8086 = 0b0000_0001; // uPM: 8086/8088 mode (stored; 8080 mode's CALL sequence is not modeled)
const ICW4_AUTO_EOI = 0b0000_0010; // AEOI: the INTA cycle ends the interrupt itself
// Bits 3:2 (buffered mode, master/slave buffer) only steer the data bus buffers.
const ICW4_SPECIAL_FULLY_NESTED = 0b0001_0000; // SFNM: the master lets a higher slave IRQ nest on IR2

// OCW3 (command port, D4=0, D3=1); OCW2 has D4=D3=0.
const OCW3_SELECT = 0b0000_1000; // D3: this command is OCW3
const OCW3_READ_ISR = 0b0000_0001; // RIS: with RR, the command port reads ISR (1) or IRR (0)
const OCW3_READ_REGISTER = 0b0000_0010; // RR: RIS is valid
const OCW3_POLL = 0b0000_0100; // P: the next read is the poll word (and acknowledges)
const OCW3_SPECIAL_MASK = 0b0010_0000; // SMM: special mask mode on (1) or off (0)
const OCW3_SET_SPECIAL_MASK = 0b0100_0000; // ESMM: SMM is valid

// OCW2 (command port, D4=D3=0): R, SL and EOI in bits 7:5, the level L2-L0 in bits 2:0.
const OCW2_COMMAND_SHIFT = 5;
const OCW2_LEVEL = 0b0000_0111;
const OCW2_ROTATE_AUTO_EOI_CLEAR = 0b000; // rotate in automatic EOI mode: off
const OCW2_NON_SPECIFIC_EOI = 0b001; // end the highest-priority interrupt in service
const OCW2_SPECIFIC_EOI = 0b011; // end the interrupt at level L
const OCW2_ROTATE_AUTO_EOI_SET = 0b100; // rotate in automatic EOI mode: on
const OCW2_ROTATE_NON_SPECIFIC_EOI = 0b101; // non-specific EOI, then that level becomes the lowest priority
const OCW2_SET_PRIORITY = 0b110; // level L becomes the lowest priority
const OCW2_ROTATE_SPECIFIC_EOI = 0b111; // specific EOI, then level L becomes the lowest priority
// 0b010 is a no-op.

const POLL_INTERRUPT = 0b1000_0000; // poll word bit 7 (I): an interrupt was pending; bits 2:0 (W) are its level

// ELCR: 1 = level triggered. Bits of IRQs wired to system-board devices are reserved (always edge).
const ELCR_MASTER_WRITABLE = 0b1111_1000; // IRQ 0 (timer), 1 (keyboard) and 2 (cascade) are edge
const ELCR_SLAVE_WRITABLE = 0b1101_1110; // IRQ 8 (RTC) and 13 (FPU error) are edge
const ELCR_MASTER = 0; // ELCR port offsets
const ELCR_SLAVE = 1;

const LEVELS = 8; // IR0-IR7 on each chip
const LEVEL_MASK = LEVELS - 1;
const ALL_LEVELS = 0xff;
const NO_PRIORITY = LEVELS; // priorityOf() of an empty set
const NO_IRQ = -1;
const SPURIOUS_LEVEL = 7; // a chip answers an INTA with nothing to deliver with its IR7 vector
const CASCADE_BIT = 1 << PIC_CASCADE_IRQ;

/** Where a chip is in its initialization sequence: 'ready' means data port writes go to the IMR. */
export type PicInitStep = 'ready' | 'icw2' | 'icw3' | 'icw4';
const INIT_STEPS: readonly PicInitStep[] = ['ready', 'icw2', 'icw3', 'icw4'];

export class PicError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

export interface PicOptions {
  /**
   * Called when the master's INT output changes: true when an unmasked
   * request (the slave's included, through IR2) outranks everything in
   * service, false when none does any more. In tsvmm: request (or stop
   * requesting) an ExtINT injection on the boot vCPU.
   */
  onIntChange: (asserted: boolean) => void;
}

/** One 8259A, as plain JSON-able data. Bit n of each mask is the chip's IR n. */
export interface PicChipState {
  irr: number;
  imr: number;
  isr: number;
  /** The levels of the input lines (edge detection needs the previous level). */
  lineLevels: number;
  /** The IR level with the highest priority, 0..7 (0 until rotated; the lowest is the one before it). */
  highestPriority: number;
  vectorBase: number;
  initStep: PicInitStep;
  icw4Needed: boolean;
  singleMode: boolean;
  /** ICW1 LTIM: every input level triggered, whatever the ELCR says. */
  levelTriggered: boolean;
  mode8086: boolean;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNested: boolean;
  /** OCW3: the command port reads ISR (true) or IRR (false). */
  readIsr: boolean;
  /** OCW3: a poll command waits for the next read. */
  pollPending: boolean;
  specialMask: boolean;
  /** This chip's ELCR byte. */
  elcr: number;
}

export interface PicState {
  master: PicChipState;
  slave: PicChipState;
}

class Chip {
  irr = 0;
  imr = 0;
  isr = 0;
  lineLevels = 0;
  highestPriority = 0;
  vectorBase = 0;
  initStep: PicInitStep = 'ready';
  icw4Needed = false;
  singleMode = false;
  levelTriggered = false;
  mode8086 = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialFullyNested = false;
  readIsr = false;
  pollPending = false;
  specialMask = false;
  elcr = 0;

  constructor(readonly isMaster: boolean) {}

  get elcrWritable(): number {
    return this.isMaster ? ELCR_MASTER_WRITABLE : ELCR_SLAVE_WRITABLE;
  }

  /** The inputs whose IRR bit follows the line rather than latching its rising edge. */
  get levelInputs(): number {
    return this.levelTriggered ? ALL_LEVELS : this.elcr;
  }

  setLine(level: number, high: boolean): void {
    const bit = 1 << level;
    if (high) {
      if (this.levelInputs & bit || !(this.lineLevels & bit)) this.irr |= bit;
      this.lineLevels |= bit;
    } else {
      if (this.levelInputs & bit) this.irr &= ~bit;
      this.lineLevels &= ~bit;
    }
  }

  /** How far below the highest priority the best level in `mask` is: 0 is the highest, NO_PRIORITY if the mask is empty. */
  priorityOf(mask: number): number {
    if (mask === 0) return NO_PRIORITY;
    let priority = 0;
    while (!(mask & (1 << ((priority + this.highestPriority) & LEVEL_MASK)))) priority++;
    return priority;
  }

  /** The level this chip's INT output requests, or NO_IRQ: the best unmasked request, if it outranks everything in service. */
  pendingLevel(): number {
    const requested = this.priorityOf(this.irr & ~this.imr);
    if (requested === NO_PRIORITY) return NO_IRQ;
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr; // masked levels in service do not hold lower ones back
    if (this.specialFullyNested && this.isMaster) inService &= ~CASCADE_BIT; // a higher slave IRQ may nest
    return requested < this.priorityOf(inService) ? (requested + this.highestPriority) & LEVEL_MASK : NO_IRQ;
  }

  /** The INTA (or poll) of `level`: into service, or ended at once in automatic EOI mode. */
  acknowledge(level: number): void {
    const bit = 1 << level;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.highestPriority = (level + 1) & LEVEL_MASK;
    } else {
      this.isr |= bit;
    }
    if (!(this.levelInputs & bit)) this.irr &= ~bit; // a level input's request lasts as long as its line
  }

  /** ICW1: restarts initialization (datasheet "Initialization Command Words"). */
  startInitialization(icw1: number): void {
    this.levelTriggered = (icw1 & ICW1_LTIM) !== 0;
    this.icw4Needed = (icw1 & ICW1_IC4) !== 0;
    this.singleMode = (icw1 & ICW1_SINGLE) !== 0;
    // The edge sense circuit is reset: latched edges are forgotten and a line
    // that is high must fall and rise again. Level inputs show their line.
    this.irr = this.lineLevels & this.levelInputs;
    this.imr = 0;
    this.isr = 0;
    this.highestPriority = 0; // IR7 has the lowest priority
    this.vectorBase = 0;
    this.readIsr = false; // status read set to IRR
    this.pollPending = false;
    this.specialMask = false;
    // ICW4 functions are cleared; ICW4 sets them again if IC4 asked for it.
    this.mode8086 = false;
    this.autoEoi = false;
    this.rotateOnAutoEoi = false;
    this.specialFullyNested = false;
    this.initStep = 'icw2';
  }

  writeData(value: number): void {
    switch (this.initStep) {
      case 'ready':
        this.imr = value; // OCW1
        return;
      case 'icw2':
        this.vectorBase = value & ICW2_VECTOR_BASE;
        this.initStep = !this.singleMode ? 'icw3' : this.icw4Needed ? 'icw4' : 'ready';
        return;
      case 'icw3':
        // The master's slave bitmap and the slave's id: the wiring is fixed (slave on IR2).
        this.initStep = this.icw4Needed ? 'icw4' : 'ready';
        return;
      case 'icw4':
        this.mode8086 = (value & ICW4_8086) !== 0;
        this.autoEoi = (value & ICW4_AUTO_EOI) !== 0;
        this.specialFullyNested = (value & ICW4_SPECIAL_FULLY_NESTED) !== 0;
        this.initStep = 'ready';
        return;
    }
  }

  writeOcw3(value: number): void {
    if (value & OCW3_POLL) this.pollPending = true;
    if (value & OCW3_READ_REGISTER) this.readIsr = (value & OCW3_READ_ISR) !== 0;
    if (value & OCW3_SET_SPECIAL_MASK) this.specialMask = (value & OCW3_SPECIAL_MASK) !== 0;
  }

  writeOcw2(value: number): void {
    const level = value & OCW2_LEVEL;
    const command = value >> OCW2_COMMAND_SHIFT;
    switch (command) {
      case OCW2_ROTATE_AUTO_EOI_CLEAR:
      case OCW2_ROTATE_AUTO_EOI_SET:
        this.rotateOnAutoEoi = command === OCW2_ROTATE_AUTO_EOI_SET;
        return;
      case OCW2_NON_SPECIFIC_EOI:
      case OCW2_ROTATE_NON_SPECIFIC_EOI: {
        const priority = this.priorityOf(this.isr);
        if (priority === NO_PRIORITY) return;
        const ended = (priority + this.highestPriority) & LEVEL_MASK;
        this.isr &= ~(1 << ended);
        if (command === OCW2_ROTATE_NON_SPECIFIC_EOI) this.highestPriority = (ended + 1) & LEVEL_MASK;
        return;
      }
      case OCW2_SPECIFIC_EOI:
      case OCW2_ROTATE_SPECIFIC_EOI:
        this.isr &= ~(1 << level);
        if (command === OCW2_ROTATE_SPECIFIC_EOI) this.highestPriority = (level + 1) & LEVEL_MASK;
        return;
      case OCW2_SET_PRIORITY:
        this.highestPriority = (level + 1) & LEVEL_MASK;
        return;
      default: // no operation
    }
  }
}

/** The one field list of a chip's state, read from and written to the Chip's same-named fields; only the ELCR's writable bits differ. */
function chipFields(elcrWritable: number): StateFields<Chip, PicChipState> {
  return {
    irr: byteField,
    imr: byteField,
    isr: byteField,
    lineLevels: byteField,
    highestPriority: integerField(0, LEVEL_MASK, `a level 0..${LEVEL_MASK}`),
    vectorBase: bitsField(ICW2_VECTOR_BASE, 'a vector base (a multiple of 8)'),
    initStep: oneOfField(INIT_STEPS),
    icw4Needed: booleanField,
    singleMode: booleanField,
    levelTriggered: booleanField,
    mode8086: booleanField,
    autoEoi: booleanField,
    rotateOnAutoEoi: booleanField,
    specialFullyNested: booleanField,
    readIsr: booleanField,
    pollPending: booleanField,
    specialMask: booleanField,
    elcr: bitsField(elcrWritable, `an ELCR byte within 0x${elcrWritable.toString(16)}`),
  };
}

/** What a Pic's state holds. */
interface PicChips {
  master: Chip;
  slave: Chip;
}

const PIC_FIELDS: StateFields<PicChips, PicState> = {
  master: recordField(chipFields(ELCR_MASTER_WRITABLE), () => new Chip(true)),
  slave: recordField(chipFields(ELCR_SLAVE_WRITABLE), () => new Chip(false)),
};

/** The two ports of one chip, for insertion on the I/O bus with byteRegisters(). */
class ChipPorts implements ByteRegisterDevice {
  constructor(
    readonly name: string,
    private readonly read: (offset: number) => number,
    private readonly write: (offset: number, value: number) => void,
  ) {}

  readRegister(offset: number): number {
    return this.read(offset);
  }

  writeRegister(offset: number, value: number): void {
    this.write(offset, value);
  }
}

/**
 * The two cascaded 8259As of a PC and their ELCR. Insert the three port
 * views: `masterPorts` at 0x20 and `slavePorts` at 0xa0 (two ports each:
 * command, data) and `elcrPorts` at 0x4d0 (two ports: ELCR1, ELCR2).
 *
 * Inputs: setIrqLine(irq, level) for IRQs 0-15 except 2, the cascade. An
 * edge-triggered input latches its IRR bit on a rising edge (the bit stays
 * set, masked or not, until the request is acknowledged); a level-triggered
 * one (its ELCR bit, or LTIM in ICW1) has its IRR bit follow the line.
 *
 * The cascade: the slave's INT output drives the master's IR2, and the
 * master's IR2 request follows that wire: set while the slave requests (again
 * after an acknowledge, so a second slave request in automatic EOI mode is
 * not lost), gone when the slave's request is masked or withdrawn. This is
 * the real chip's rule that an edge request counts only while its input stays
 * high until the INTA; QEMU and KVM latch IR2 instead, and then answer such an
 * INTA with the slave's spurious vector (IRQ 15), which here cannot happen.
 *
 * Not modeled: 8080/8085 mode (vectors are always base + level, as in 8086
 * mode), buffered mode, other cascade wirings than the PC's (ICW3 is
 * accepted and ignored), and the hardware's "IR must stay high until the
 * first INTA" rule (a withdrawn edge request is still delivered).
 */
export class Pic implements StatefulDevice<PicState> {
  /** Ports 0x20-0x21: offset 0 command (ICW1, OCW2, OCW3 / IRR, ISR, poll), offset 1 data (ICW2-4, OCW1 / IMR). */
  readonly masterPorts: ByteRegisterDevice;
  /** Ports 0xa0-0xa1, the same registers for the slave. */
  readonly slavePorts: ByteRegisterDevice;
  /** Ports 0x4d0-0x4d1: ELCR1 (IRQs 0-7) and ELCR2 (IRQs 8-15); 1 = level triggered. */
  readonly elcrPorts: ByteRegisterDevice;
  private readonly onIntChange: PicOptions['onIntChange'];
  /** Everything snapshot() saves, under PIC_FIELDS' names. */
  private readonly chips: PicChips = { master: new Chip(true), slave: new Chip(false) };
  private int = false;

  constructor(options: PicOptions) {
    this.onIntChange = options.onIntChange;
    this.masterPorts = new ChipPorts('pic-master', (o) => this.readPort(this.master, o), (o, v) => this.writePort(this.master, o, v));
    this.slavePorts = new ChipPorts('pic-slave', (o) => this.readPort(this.slave, o), (o, v) => this.writePort(this.slave, o, v));
    this.elcrPorts = new ChipPorts('pic-elcr', (o) => this.readElcr(o), (o, v) => this.writeElcr(o, v));
  }

  private get master(): Chip {
    return this.chips.master;
  }

  private get slave(): Chip {
    return this.chips.slave;
  }

  snapshot(): PicState {
    return saveFields(this.chips, PIC_FIELDS);
  }

  /**
   * Puts `state` (from snapshot()) back. Calls nothing, not even onIntChange
   * when INT differs from before: INT's receiver (the boot vCPU's pending
   * ExtINT) is restored with its own state; read intAsserted.
   */
  restore(state: PicState): void {
    restoreFields(this.chips, state, PIC_FIELDS, (problem) => new PicError(`cannot restore PIC state: ${problem}; pass a state produced by Pic.snapshot()`));
    this.int = this.master.pendingLevel() !== NO_IRQ;
  }

  /** The master's INT output: an interrupt is waiting for acknowledge(). */
  get intAsserted(): boolean {
    return this.int;
  }

  /** Sets IRQ `irq`'s input line (0-15, not 2) to `level` (true = high). */
  setIrqLine(irq: number, level: boolean): void {
    this.checkIrq(irq, 'set the line of');
    if (irq < LEVELS) this.master.setLine(irq, level);
    else this.slave.setLine(irq - LEVELS, level);
    this.update();
  }

  /** An edge from an ISA device (UART, PIT): raises the line and lowers it again. A level-triggered input keeps nothing. */
  pulse(irq: number): void {
    this.checkIrq(irq, 'pulse');
    this.setIrqLine(irq, true);
    this.setIrqLine(irq, false);
  }

  /**
   * The CPU's interrupt acknowledge cycle: returns the vector of the
   * highest-priority request and puts it in service (or ends it, in
   * automatic EOI mode). With nothing to deliver (a request masked or
   * withdrawn after INT rose) the master answers with its IR7 vector and puts
   * nothing in service, as the hardware does. Were IR2 requested with nothing
   * on the slave (only a restored state could say so), the slave would answer
   * with its IR7 vector (IRQ 15) and the master put IR2 in service.
   */
  acknowledge(): number {
    const level = this.master.pendingLevel();
    let vector: number;
    if (level === NO_IRQ) {
      vector = this.master.vectorBase + SPURIOUS_LEVEL;
    } else {
      if (level === PIC_CASCADE_IRQ) {
        const slaveLevel = this.slave.pendingLevel();
        if (slaveLevel === NO_IRQ) {
          vector = this.slave.vectorBase + SPURIOUS_LEVEL;
        } else {
          this.slave.acknowledge(slaveLevel);
          vector = this.slave.vectorBase + slaveLevel;
        }
      } else {
        vector = this.master.vectorBase + level;
      }
      this.master.acknowledge(level);
    }
    this.update();
    return vector;
  }

  private checkIrq(irq: number, what: string): void {
    if (!Number.isInteger(irq) || irq < 0 || irq >= PIC_IRQ_COUNT) {
      throw new PicError(`cannot ${what} PIC IRQ ${irq}: the PICs have IRQs 0..${PIC_IRQ_COUNT - 1}`);
    }
    if (irq === PIC_CASCADE_IRQ) {
      throw new PicError(`cannot ${what} PIC IRQ ${irq}: it is the master's cascade input from the slave (ISA IRQ 2 devices use IRQ 9)`);
    }
  }

  private readPort(chip: Chip, offset: number): number {
    if (offset !== COMMAND_PORT && offset !== DATA_PORT) return 0;
    if (chip.pollPending) {
      // The read after a poll command is an INTA: the poll word, and the level goes in service.
      chip.pollPending = false;
      const level = chip.pendingLevel();
      if (level === NO_IRQ) return 0;
      chip.acknowledge(level);
      this.update();
      return POLL_INTERRUPT | level;
    }
    if (offset === DATA_PORT) return chip.imr;
    return chip.readIsr ? chip.isr : chip.irr;
  }

  private writePort(chip: Chip, offset: number, value: number): void {
    if (offset === DATA_PORT) chip.writeData(value);
    else if (offset !== COMMAND_PORT) return;
    else if (value & ICW1_SELECT) chip.startInitialization(value);
    else if (value & OCW3_SELECT) chip.writeOcw3(value);
    else chip.writeOcw2(value);
    this.update();
  }

  private readElcr(offset: number): number {
    if (offset === ELCR_MASTER) return this.master.elcr;
    if (offset === ELCR_SLAVE) return this.slave.elcr;
    return 0;
  }

  private writeElcr(offset: number, value: number): void {
    const chip = offset === ELCR_MASTER ? this.master : offset === ELCR_SLAVE ? this.slave : null;
    if (!chip) return;
    chip.elcr = value & chip.elcrWritable;
    // Inputs now level triggered show their line; edge ones keep what they latched.
    chip.irr = (chip.irr & ~chip.levelInputs) | (chip.lineLevels & chip.levelInputs);
    this.update();
  }

  /** Propagates the slave's INT to the master's IR2, then reports a change of the master's INT. */
  private update(): void {
    if (this.slave.pendingLevel() !== NO_IRQ) {
      this.master.irr |= CASCADE_BIT;
      this.master.lineLevels |= CASCADE_BIT;
    } else {
      this.master.irr &= ~CASCADE_BIT;
      this.master.lineLevels &= ~CASCADE_BIT;
    }
    const asserted = this.master.pendingLevel() !== NO_IRQ;
    if (asserted === this.int) return;
    this.int = asserted;
    this.onIntChange(asserted);
  }
}

/** An InterruptLine that pulses PIC IRQ `irq`, for an edge-triggered ISA device (Serial, Pit). */
export function picInterruptLine(pic: Pic, irq: number): InterruptLine {
  if (!Number.isInteger(irq) || irq < 0 || irq >= PIC_IRQ_COUNT || irq === PIC_CASCADE_IRQ) {
    throw new PicError(`cannot wire an interrupt line to PIC IRQ ${irq}: the PICs take IRQs 0..${PIC_IRQ_COUNT - 1} except ${PIC_CASCADE_IRQ}, the cascade`);
  }
  return { trigger: () => pic.pulse(irq) };
}
