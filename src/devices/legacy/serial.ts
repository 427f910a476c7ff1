// An 8250/16550A UART register model (the PC's COM ports), after
// vm-superio's Serial and QEMU's hw/char/serial.c. Register semantics follow
// the TI/National PC16550D datasheet.
//
// The transmitter is instantaneous: a byte written to THR goes straight to
// the output sink (or, in loopback, to the receive FIFO), so THR and the
// transmit shift register are always empty when the guest looks.

import { ByteRegisterDevice } from '../bus/bus-device';
import type { InterruptLine } from '../interrupt';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, arrayField, booleanField, byteField, integerField, restoreFields, saveFields } from '../snapshot';

// Register offsets from the UART's base port.
const DATA = 0; // RBR (read) / THR (write); DLL when LCR.DLAB is set
const IER = 1; // interrupt enable; DLM when LCR.DLAB is set
const IIR_FCR = 2; // IIR (read) / FCR (write)
const LCR = 3; // line control
const MCR = 4; // modem control
const LSR = 5; // line status
const MSR = 6; // modem status
const SCR = 7; // scratch

// IER bits.
const IER_RECEIVED_DATA = 0b0000_0001; // ERBFI: received data available
const IER_THR_EMPTY = 0b0000_0010; // ETBEI: transmitter holding register empty
const IER_LINE_STATUS = 0b0000_0100; // ELSI: receiver line status
const IER_MODEM_STATUS = 0b0000_1000; // EDSSI: modem status
const IER_WRITABLE = 0b0000_1111; // the 16550A has no IER bits above these

// IIR values (bits 3:0) and bits.
const IIR_NONE = 0b0000_0001; // no interrupt pending
const IIR_LINE_STATUS = 0b0000_0110; // receiver line status (highest priority)
const IIR_RECEIVED_DATA = 0b0000_0100; // received data available
const IIR_THR_EMPTY = 0b0000_0010; // transmitter holding register empty
const IIR_MODEM_STATUS = 0b0000_0000; // modem status (lowest priority)
const IIR_FIFOS_ENABLED = 0b1100_0000; // both bits set when FCR enabled the FIFOs (a 16550A, not a buggy 16550)

// FCR bits.
const FCR_FIFO_ENABLE = 0b0000_0001; // enable both FIFOs; the other bits count only with it
const FCR_CLEAR_RECEIVE = 0b0000_0010; // clear the receive FIFO (self-clearing)
const FCR_CLEAR_TRANSMIT = 0b0000_0100; // clear the transmit FIFO (self-clearing)
const FCR_STORED = 0b1100_1001; // kept: trigger level (7:6), DMA mode (3), enable (0)

// LCR bits.
const LCR_WORD_LENGTH = 0b0000_0011; // data bits - 5
const LCR_STOP_BITS = 0b0000_0100; // 2 stop bits (1.5 with 5 data bits)
const LCR_PARITY = 0b0000_1000; // a parity bit per character
const LCR_DLAB = 0b1000_0000; // divisor latch access: offsets 0/1 become DLL/DLM

// MCR bits.
const MCR_DTR = 0b0000_0001; // data terminal ready
const MCR_RTS = 0b0000_0010; // request to send
const MCR_OUT1 = 0b0000_0100; // user output 1
const MCR_OUT2 = 0b0000_1000; // user output 2 (gates the IRQ on PCs; not modelled, see class doc)
const MCR_LOOPBACK = 0b0001_0000; // local loopback diagnostic mode
const MCR_WRITABLE = 0b0001_1111; // bits 7:5 are always 0 on a 16550A

// LSR bits.
const LSR_DATA_READY = 0b0000_0001; // DR: a byte is waiting in RBR/the receive FIFO
const LSR_OVERRUN = 0b0000_0010; // OE: a received byte was lost because the FIFO was full
const LSR_PARITY_ERROR = 0b0000_0100; // PE
const LSR_FRAMING_ERROR = 0b0000_1000; // FE
const LSR_BREAK = 0b0001_0000; // BI: break interrupt
const LSR_THR_EMPTY = 0b0010_0000; // THRE: transmitter holding register empty
const LSR_TRANSMITTER_EMPTY = 0b0100_0000; // TEMT: THR and shift register both empty
const LSR_ERRORS = LSR_OVERRUN | LSR_PARITY_ERROR | LSR_FRAMING_ERROR | LSR_BREAK; // cleared by reading LSR; raise the line status interrupt

// MSR bits.
const MSR_DELTA_CTS = 0b0000_0001; // DCTS: CTS changed since MSR was last read
const MSR_DELTA_DSR = 0b0000_0010; // DDSR: DSR changed since MSR was last read
const MSR_TRAILING_EDGE_RI = 0b0000_0100; // TERI: RI went from on to off
const MSR_DELTA_DCD = 0b0000_1000; // DDCD: DCD changed since MSR was last read
const MSR_CTS = 0b0001_0000; // clear to send
const MSR_DSR = 0b0010_0000; // data set ready
const MSR_RI = 0b0100_0000; // ring indicator
const MSR_DCD = 0b1000_0000; // data carrier detect
const MSR_DELTAS = MSR_DELTA_CTS | MSR_DELTA_DSR | MSR_TRAILING_EDGE_RI | MSR_DELTA_DCD;
/** Out of loopback, a host console is always "connected" (crosvm's choice): CTS, DSR and DCD on, RI off. */
const MSR_CONNECTED = MSR_CTS | MSR_DSR | MSR_DCD;

// Pending interrupt sources, one bit each, to detect newly raised ones.
const SOURCE_LINE_STATUS = 0b0001;
const SOURCE_RECEIVED_DATA = 0b0010;
const SOURCE_THR_EMPTY = 0b0100;
const SOURCE_MODEM_STATUS = 0b1000;

/** Receive FIFO depth with FIFOs enabled (vm-superio's 64; a 16550A has 16, a 16750 has 64). */
export const SERIAL_FIFO_SIZE = 64;
/** With FIFOs disabled the UART is a 16450: one receive buffer register. */
const NON_FIFO_RECEIVE_DEPTH = 1;
/** Divisor at reset: 12 is 9600 baud from the PC's 1.8432 MHz clock (QEMU and vm-superio use it too). */
const DEFAULT_DIVISOR = 12;
/** The PC's 1.8432 MHz UART clock over 16: the baud rate of divisor 1. */
const BAUD_BASE = 115200;
const BYTE_MASK = 0xff;

export class SerialError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

export interface SerialOptions {
  /** The UART's IRQ line (COM1/COM3: IRQ 4, COM2/COM4: IRQ 3). */
  interrupt: InterruptLine;
  /** Where transmitted bytes go; without it they are discarded. */
  output?: (bytes: Uint8Array) => void;
  /**
   * Called when the receiver can take host input it could not take before:
   * a guest read emptied the receive FIFO, or the receiver became ready
   * (`inputReady` turned true), so the host can feed input it held back.
   */
  inputDrained?: () => void;
}

/** Plain, JSON-able register state of a Serial, for snapshots. */
export interface SerialState {
  divisor: number;
  ier: number;
  fcr: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  receive: number[];
  thrEmptyPending: boolean;
  raisedSources: number;
  /** The guest read LSR since the receive FIFO was last cleared (see `Serial.inputReady`). */
  receiverArmed: boolean;
}

/** The one field list of a Serial's state: what is saved and what restore checks. */
const SERIAL_FIELDS: StateFields<SerialState, SerialState> = {
  divisor: integerField(0, 0xffff, 'a 16-bit divisor'),
  ier: byteField,
  fcr: byteField,
  lcr: byteField,
  mcr: byteField,
  lsr: byteField,
  msr: byteField,
  scr: byteField,
  receive: arrayField(byteField, { atMost: SERIAL_FIFO_SIZE }),
  thrEmptyPending: booleanField,
  raisedSources: integerField(0, 0xff, 'a set of interrupt sources'),
  receiverArmed: booleanField,
};

/**
 * A 16550A UART.
 *
 * Interrupts are edge-triggered (an irqfd): `interrupt.trigger()` fires each
 * time an enabled source becomes pending that was not pending before — a byte
 * arriving in an empty receive FIFO, THR becoming empty again after every THR
 * write (the transmitter is instantaneous), enabling the THR-empty interrupt
 * while THR is empty, a line or modem status change. A byte arriving while
 * older ones are still unread raises no new edge, as on hardware: the guest's
 * handler reads until LSR.DR is clear.
 *
 * MCR.OUT2, which gates the IRQ pin on a PC motherboard, is not modelled (as
 * in QEMU, crosvm and vm-superio): interrupts depend on IER alone.
 *
 * Without a character-timeout timer, the receive interrupt fires at the first
 * byte whatever FCR's trigger level says, so no byte ever waits unannounced.
 *
 * The model knows no clock: the receiver takes whatever host input it has
 * room for when it is offered. Holding input until the guest is ready
 * (`inputReady`) and delivering it no faster than the line rate
 * (`charactersPerSecond`) is the host feeder's job (SerialInputQueue).
 */
export class Serial implements ByteRegisterDevice, StatefulDevice<SerialState> {
  readonly name = 'serial';
  private readonly interrupt: InterruptLine;
  private readonly output: (bytes: Uint8Array) => void;
  private readonly inputDrained: () => void;

  private divisor = DEFAULT_DIVISOR;
  private ier = 0;
  private fcr = 0;
  private lcr = 0;
  private mcr = 0;
  private lsr = LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
  private msr = MSR_CONNECTED;
  private scr = 0;
  private receive: number[] = [];
  /** The THR-empty interrupt condition: set when THR empties, cleared by an IIR read reporting it or a THR write. */
  private thrEmptyPending = false;
  /** Enabled sources pending after the last update; an edge is a bit that was clear here. */
  private raisedSources = 0;
  /** The guest read LSR since the receive FIFO was last cleared (or since reset). */
  private receiverArmed = false;
  /** Guest register reads and writes; wraps at 2^32. Not part of the state. */
  private accesses = 0;

  constructor(options: SerialOptions) {
    this.interrupt = options.interrupt;
    this.output = options.output ?? (() => {});
    this.inputDrained = options.inputDrained ?? (() => {});
  }

  snapshot(): SerialState {
    // The live registers are this object's own fields, named as in the state.
    return saveFields(this as unknown as SerialState, SERIAL_FIELDS);
  }

  /** Restores the registers in place; raises no interrupt (the restored IIR says what is pending). */
  restore(state: SerialState): void {
    restoreFields(this as unknown as SerialState, state, SERIAL_FIELDS,
      (problem) => new SerialError(`cannot restore serial state: ${problem}; pass a state produced by Serial.snapshot()`));
  }

  /** How many more bytes `enqueueInput` would accept now. */
  get receiveSpace(): number {
    return this.receiveDepth - this.receive.length;
  }

  /**
   * Whether the guest is ready for host input: it enabled the received-data
   * interrupt, or it read LSR (to see LSR.DR) since the receive FIFO was
   * last cleared (reset counts as a clear), and the UART is not in loopback.
   * A host feeder
   * holds input until then, so bytes that arrive before the guest programs
   * the UART are not thrown away by its first FIFO clear (a terminal wired to
   * a real 16550 would lose them; a user piping text does not expect that).
   * `enqueueInput` itself accepts input whatever this says.
   */
  get inputReady(): boolean {
    return !this.loopback && ((this.ier & IER_RECEIVED_DATA) !== 0 || this.receiverArmed);
  }

  /** The guest takes input by the received-data interrupt (IER.ERBFI) rather than by polling LSR. */
  get receiveInterruptEnabled(): boolean {
    return (this.ier & IER_RECEIVED_DATA) !== 0;
  }

  /**
   * Characters per second at the programmed line settings: 115200/divisor
   * baud over start + data + parity + stop bits (10 bits for 8N1). Divisor
   * 0, which the datasheet does not allow, counts as 1.
   */
  get charactersPerSecond(): number {
    const dataBits = 5 + (this.lcr & LCR_WORD_LENGTH);
    const parityBits = this.lcr & LCR_PARITY ? 1 : 0;
    const stopBits = this.lcr & LCR_STOP_BITS ? (dataBits === 5 ? 1.5 : 2) : 1;
    return BAUD_BASE / (this.divisor || 1) / (1 + dataBits + parityBits + stopBits);
  }

  /**
   * How many times the guest read or wrote a register, modulo 2^32: a host
   * feeder that sees it move knows the guest is still busy with the UART
   * (reading what it was sent, echoing it) and can hold more input until the
   * guest has gone quiet.
   */
  get accessCount(): number {
    return this.accesses;
  }

  /**
   * Offers host input (stdin) to the receive FIFO. Returns how many leading
   * bytes were accepted; keep the rest and offer them again later (after
   * `inputDrained`). Nothing is accepted in loopback, where the receiver is
   * wired to the transmitter.
   */
  enqueueInput(bytes: Uint8Array): number {
    if (this.loopback) return 0;
    const accepted = Math.min(bytes.length, this.receiveSpace);
    for (let i = 0; i < accepted; i++) this.receive.push(bytes[i]);
    if (accepted > 0) {
      this.lsr |= LSR_DATA_READY;
      this.updateInterrupt();
    }
    return accepted;
  }

  readRegister(offset: number): number {
    this.accesses = (this.accesses + 1) >>> 0;
    switch (offset) {
      case DATA:
        return this.dlab ? this.divisor & BYTE_MASK : this.readReceiveBuffer();
      case IER:
        return this.dlab ? this.divisor >> 8 : this.ier;
      case IIR_FCR:
        return this.readInterruptIdentification();
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR:
        return this.readLineStatus();
      case MSR:
        return this.readModemStatus();
      case SCR:
        return this.scr;
      default:
        return BYTE_MASK; // past the 8 registers: nothing drives the bus
    }
  }

  writeRegister(offset: number, value: number): void {
    this.accesses = (this.accesses + 1) >>> 0;
    switch (offset) {
      case DATA:
        if (this.dlab) this.divisor = (this.divisor & ~BYTE_MASK) | value;
        else this.transmit(value);
        return;
      case IER:
        if (this.dlab) this.divisor = (this.divisor & BYTE_MASK) | (value << 8);
        else this.writeInterruptEnable(value);
        return;
      case IIR_FCR:
        this.writeFifoControl(value);
        return;
      case LCR:
        this.lcr = value;
        return;
      case MCR:
        this.writeModemControl(value);
        return;
      case SCR:
        this.scr = value;
        return;
      default:
        return; // LSR and MSR are read-only (LSR writes are for factory test only)
    }
  }

  private get dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOPBACK) !== 0;
  }

  private get fifosEnabled(): boolean {
    return (this.fcr & FCR_FIFO_ENABLE) !== 0;
  }

  private get receiveDepth(): number {
    return this.fifosEnabled ? SERIAL_FIFO_SIZE : NON_FIFO_RECEIVE_DEPTH;
  }

  private readReceiveBuffer(): number {
    const byte = this.receive.shift();
    if (this.receive.length === 0) this.lsr &= ~LSR_DATA_READY;
    this.updateInterrupt();
    if (byte === undefined) return 0;
    if (this.receive.length === 0) this.inputDrained();
    return byte;
  }

  /** The guest looked at LSR: arms the receiver; true when that made it ready. */
  private arm(): boolean {
    if (this.receiverArmed) return false;
    const wasReady = this.inputReady;
    this.receiverArmed = true;
    return !wasReady && this.inputReady;
  }

  private readInterruptIdentification(): number {
    const identification = this.pendingIdentification();
    // Reading IIR while it reports THR empty acknowledges that interrupt.
    if (identification === IIR_THR_EMPTY) {
      this.thrEmptyPending = false;
      this.updateInterrupt();
    }
    return identification | (this.fifosEnabled ? IIR_FIFOS_ENABLED : 0);
  }

  private readLineStatus(): number {
    const status = this.lsr;
    this.lsr &= ~LSR_ERRORS;
    this.updateInterrupt();
    if (this.arm()) this.inputDrained();
    return status;
  }

  private readModemStatus(): number {
    const status = this.msr;
    this.msr &= ~MSR_DELTAS;
    this.updateInterrupt();
    return status;
  }

  private transmit(value: number): void {
    // The write fills THR (its interrupt condition ends) and the instantaneous
    // transmitter empties it again: a fresh THR-empty edge per byte.
    this.thrEmptyPending = false;
    this.updateInterrupt();
    if (this.loopback) this.receiveFromLoopback(value);
    else this.output(Uint8Array.of(value));
    this.thrEmptyPending = true;
    this.updateInterrupt();
  }

  private receiveFromLoopback(value: number): void {
    if (this.receive.length >= this.receiveDepth) {
      this.lsr |= LSR_OVERRUN; // the byte is lost, as when the shift register overwrites a full FIFO
      return;
    }
    this.receive.push(value);
    this.lsr |= LSR_DATA_READY;
  }

  private writeInterruptEnable(value: number): void {
    const wasReady = this.inputReady;
    const previous = this.ier;
    this.ier = value & IER_WRITABLE;
    const thrEnabledNow = (this.ier & IER_THR_EMPTY) !== 0;
    // Enabling the THR-empty interrupt while THR is empty raises it at once
    // (Linux's 8250 driver relies on this to start transmitting).
    if (thrEnabledNow && !(previous & IER_THR_EMPTY)) {
      this.thrEmptyPending = (this.lsr & LSR_THR_EMPTY) !== 0;
    } else if (!thrEnabledNow) {
      this.thrEmptyPending = false;
    }
    this.updateInterrupt();
    if (!wasReady && this.inputReady) this.inputDrained();
  }

  private writeFifoControl(value: number): void {
    let request = value;
    // Toggling the enable bit resets both FIFOs; without it set, the other bits are not programmed.
    if ((request ^ this.fcr) & FCR_FIFO_ENABLE) request |= FCR_CLEAR_RECEIVE | FCR_CLEAR_TRANSMIT;
    if (!(request & FCR_FIFO_ENABLE)) {
      this.fcr = 0;
    } else {
      this.fcr = request & FCR_STORED;
    }
    if (request & FCR_CLEAR_RECEIVE) {
      this.receive = [];
      this.lsr &= ~LSR_DATA_READY;
      this.receiverArmed = false; // ready again once the guest reads LSR (or enables the interrupt)
    }
    // FCR_CLEAR_TRANSMIT: the transmit FIFO is always empty (instantaneous transmitter).
    this.updateInterrupt();
  }

  private writeModemControl(value: number): void {
    const wasReady = this.inputReady;
    const oldStatus = this.msr & ~MSR_DELTAS;
    this.mcr = value & MCR_WRITABLE;
    const newStatus = this.loopback ? this.loopbackModemStatus() : MSR_CONNECTED;
    this.msr = (this.msr & MSR_DELTAS) | newStatus | this.modemDeltas(oldStatus, newStatus);
    this.updateInterrupt();
    if (!wasReady && this.inputReady) this.inputDrained(); // out of loopback
  }

  /** In loopback the modem outputs feed the modem inputs: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
  private loopbackModemStatus(): number {
    let status = 0;
    if (this.mcr & MCR_RTS) status |= MSR_CTS;
    if (this.mcr & MCR_DTR) status |= MSR_DSR;
    if (this.mcr & MCR_OUT1) status |= MSR_RI;
    if (this.mcr & MCR_OUT2) status |= MSR_DCD;
    return status;
  }

  private modemDeltas(oldStatus: number, newStatus: number): number {
    const changed = oldStatus ^ newStatus;
    let deltas = 0;
    if (changed & MSR_CTS) deltas |= MSR_DELTA_CTS;
    if (changed & MSR_DSR) deltas |= MSR_DELTA_DSR;
    if (changed & MSR_DCD) deltas |= MSR_DELTA_DCD;
    if (oldStatus & MSR_RI && !(newStatus & MSR_RI)) deltas |= MSR_TRAILING_EDGE_RI;
    return deltas;
  }

  /** Enabled, pending interrupt sources as SOURCE_* bits. */
  private pendingSources(): number {
    let sources = 0;
    if (this.ier & IER_LINE_STATUS && this.lsr & LSR_ERRORS) sources |= SOURCE_LINE_STATUS;
    if (this.ier & IER_RECEIVED_DATA && this.lsr & LSR_DATA_READY) sources |= SOURCE_RECEIVED_DATA;
    if (this.ier & IER_THR_EMPTY && this.thrEmptyPending) sources |= SOURCE_THR_EMPTY;
    if (this.ier & IER_MODEM_STATUS && this.msr & MSR_DELTAS) sources |= SOURCE_MODEM_STATUS;
    return sources;
  }

  /** IIR bits 3:0: the highest-priority pending source. */
  private pendingIdentification(): number {
    const sources = this.pendingSources();
    if (sources & SOURCE_LINE_STATUS) return IIR_LINE_STATUS;
    if (sources & SOURCE_RECEIVED_DATA) return IIR_RECEIVED_DATA;
    if (sources & SOURCE_THR_EMPTY) return IIR_THR_EMPTY;
    if (sources & SOURCE_MODEM_STATUS) return IIR_MODEM_STATUS;
    return IIR_NONE;
  }

  private updateInterrupt(): void {
    const sources = this.pendingSources();
    const newlyRaised = sources & ~this.raisedSources;
    this.raisedSources = sources;
    if (newlyRaised) this.interrupt.trigger();
  }
}
