// The i8042 keyboard controller with an AT keyboard behind it and no mouse,
// as firmware and Linux probe it. Linux reboots (reboot=k) by writing the
// "pulse reset line" command to port 0x64, which is all crosvm's model does;
// firmware needs the rest: SeaBIOS (src/hw/ps2port.c) runs the controller
// self-test (0xaa -> 0x55), the keyboard interface test (0xab -> 0x00),
// rewrites the command byte (0x20/0x60) and resets the keyboard (0xff ->
// 0xfa 0xaa), and gives up on the keyboard when any answer is missing. The
// answers follow QEMU's hw/input/pckbd.c and ps2.c. There is no mouse: the
// auxiliary port takes commands and never answers, as an empty PS/2 port.
// No keys are ever pressed; the keyboard only answers commands.

import { ByteRegisterDevice } from '../bus/bus-device';
import type { InterruptLine } from '../interrupt';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, arrayField, booleanField, byteField, checkFields, integerField, loadFields, saveFields } from '../snapshot';

/** The data port; the board claims it apart from 0x61.. (0x61 is system control port B). */
const DATA_PORT = 0x60;
/** System control port B on a PC; the i8042's registers are decoded by their PC port numbers. */
const PORT_B_ADDRESS = 0x61;

/** Ports from 0x61 (system control port B) to 0x64, crosvm's range. */
export const I8042_PORT_COUNT = 4;
/** 0x62 to 0x64, when the userspace PIT serves port 0x61 (crosvm: pit_uses_speaker_port). */
export const I8042_PORT_COUNT_WITH_PIT_SPEAKER = 3;
/** The first port of the full range; the register decode below is by absolute port. */
const DEFAULT_BASE_PORT = PORT_B_ADDRESS;

const PORT_B = PORT_B_ADDRESS; // system control port B (speaker, PIT channel 2 gate and output)
const COMMAND_STATUS = 0x64; // i8042 command (write) / status (read)

// Status register bits.
const STATUS_OUTPUT_FULL = 0x01;
const STATUS_SYSTEM_FLAG = 0x04; // set by a passed self-test
const STATUS_LAST_WRITE_COMMAND = 0x08; // the last write went to 0x64, not 0x60
const STATUS_UNLOCKED = 0x10; // the keyboard inhibit switch is off
const STATUS_AUX_DATA = 0x20; // the byte in the output buffer came from the auxiliary port
/** QEMU's status after reset (KBD_STAT_CMD | KBD_STAT_UNLOCKED). */
const STATUS_AT_RESET = STATUS_LAST_WRITE_COMMAND | STATUS_UNLOCKED;

// Command byte ("mode") bits.
const MODE_KEYBOARD_INTERRUPT = 0x01;
const MODE_AUX_INTERRUPT = 0x02;
const MODE_KEYBOARD_DISABLED = 0x10;
const MODE_AUX_DISABLED = 0x20;
/** QEMU's command byte after reset. */
const MODE_AT_RESET = MODE_KEYBOARD_INTERRUPT | MODE_AUX_INTERRUPT;

// Output port bits: bit 0 low holds the CPU in reset, bit 1 is the A20 gate.
const OUTPUT_PORT_RESET_HIGH = 0x01;
const OUTPUT_PORT_AT_RESET = 0xcf; // QEMU: KBD_OUT_RESET | KBD_OUT_A20 | KBD_OUT_ONES

// Controller commands (writes to 0x64).
const CMD_READ_MODE = 0x20;
const CMD_WRITE_MODE = 0x60;
const CMD_DISABLE_AUX = 0xa7;
const CMD_ENABLE_AUX = 0xa8;
const CMD_TEST_AUX = 0xa9;
const CMD_SELF_TEST = 0xaa;
const CMD_TEST_KEYBOARD = 0xab;
const CMD_DISABLE_KEYBOARD = 0xad;
const CMD_ENABLE_KEYBOARD = 0xae;
const CMD_READ_INPUT_PORT = 0xc0;
const CMD_READ_OUTPUT_PORT = 0xd0;
const CMD_WRITE_OUTPUT_PORT = 0xd1;
const CMD_WRITE_KEYBOARD_OUTPUT = 0xd2;
const CMD_WRITE_AUX_OUTPUT = 0xd3;
const CMD_WRITE_AUX = 0xd4;
const CMD_READ_TEST_INPUTS = 0xe0;
/** 0xf0..0xff pulse output port bits 0..3 low; a pulse of bit 0 (0xfe, the usual one) resets the CPU. */
const CMD_PULSE_FIRST = 0xf0;
const PULSE_RESET_BIT = 0x01;

const SELF_TEST_PASSED = 0x55;
const INTERFACE_TEST_PASSED = 0x00;
/** What the input port reads as: keyboard not inhibited (QEMU's answer). */
const INPUT_PORT_VALUE = 0x80;

// Keyboard commands (writes to 0x60 with no controller command pending) and replies.
const KBD_SET_LEDS = 0xed;
const KBD_ECHO = 0xee;
const KBD_SCANCODE_SET = 0xf0;
const KBD_GET_ID = 0xf2;
const KBD_SET_RATE = 0xf3;
const KBD_ENABLE = 0xf4;
const KBD_RESET_DISABLE = 0xf5;
const KBD_RESET_ENABLE = 0xf6;
const KBD_RESET = 0xff;
const KBD_ACK = 0xfa;
const KBD_RESEND = 0xfe;
const KBD_SELF_TEST_PASSED = 0xaa;
const KBD_ID_FIRST = 0xab;
const KBD_ID_SECOND_TRANSLATED = 0x41;
/** Keyboard commands 0xf7..0xfd (typematic/make/break modes of scancode set 3): acknowledged, no effect. */
const KBD_MODE_COMMANDS_FIRST = 0xf7;
const KBD_MODE_COMMANDS_LAST = 0xfd;
const DEFAULT_SCANCODE_SET = 2;

/**
 * Port B read: bit 5 is PIT channel 2's output. crosvm (after kvmtool)
 * returns it set so that Linux's pit_calibrate_tsc(), which waits for that
 * bit, cannot hang when nothing emulates channel 2 on this port.
 */
const PORT_B_TIMER2_OUTPUT_HIGH = 0b0010_0000;
/** Ports 0x62-0x63: nothing behind them; crosvm leaves its zeroed buffer as is. */
const UNUSED_PORT_READ = 0x00;
/** QEMU's output queue holds 16 bytes; more replies than that cannot be pending. */
const OUTPUT_QUEUE_SIZE = 16;
/** An empty output buffer reads as the last byte it held; a fresh controller's reads as 0. */
const NOTHING_READ_YET = 0;

export interface I8042Options {
  /** Called when the guest asks for a CPU reset (tsvmm stops or reboots the VM). */
  onReset: () => void;
  /** The port the device is inserted at: 0x61 (default) or 0x62 after the PIT's speaker port. */
  basePort?: number;
  /** ISA IRQ 1: raised when a keyboard byte reaches the output buffer while the command byte enables it. */
  keyboardInterrupt?: InterruptLine;
}

export class I8042Error extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/** Plain, JSON-able state of the controller and the keyboard behind it. */
export interface I8042State {
  basePort: number;
  status: number;
  mode: number;
  outputPort: number;
  /** A controller command waiting for its data byte at 0x60 (0: none). */
  pendingCommand: number;
  /** A keyboard command waiting for its parameter byte (0: none). */
  pendingKeyboardCommand: number;
  /** Bytes waiting for the guest, oldest first; aux[i] says whether queue[i] came from the auxiliary port. */
  queue: number[];
  aux: boolean[];
  lastRead: number;
  scanning: boolean;
  scancodeSet: number;
}

type I8042Record = I8042State;

/** The one field list of an I8042's state. */
const I8042_FIELDS: StateFields<I8042Record, I8042State> = {
  basePort: integerField(0, 0xffff, 'a 16-bit port'),
  status: byteField,
  mode: byteField,
  outputPort: byteField,
  pendingCommand: byteField,
  pendingKeyboardCommand: byteField,
  queue: arrayField(byteField, { atMost: OUTPUT_QUEUE_SIZE }),
  aux: arrayField(booleanField, { atMost: OUTPUT_QUEUE_SIZE }),
  lastRead: byteField,
  scanning: booleanField,
  scancodeSet: integerField(1, 3, 'a scancode set 1..3'),
};

/**
 * Reads: 0x60 the output buffer, 0x64 the status, 0x61 -> 0x20 (timer 2
 * output high, constant), 0x62/0x63 -> 0. Writes to 0x64 are controller
 * commands (0xfe, and any pulse of output bit 0, calls `onReset`); writes to
 * 0x60 are a pending command's data or go to the keyboard.
 */
export class I8042 implements ByteRegisterDevice, StatefulDevice<I8042State> {
  readonly name = 'i8042';
  private readonly onReset: () => void;
  private readonly keyboardInterrupt?: InterruptLine;
  private readonly state: I8042Record;

  constructor(options: I8042Options) {
    this.onReset = options.onReset;
    this.keyboardInterrupt = options.keyboardInterrupt;
    this.state = {
      basePort: options.basePort ?? DEFAULT_BASE_PORT,
      status: STATUS_AT_RESET,
      mode: MODE_AT_RESET,
      outputPort: OUTPUT_PORT_AT_RESET,
      pendingCommand: 0,
      pendingKeyboardCommand: 0,
      queue: [],
      aux: [],
      lastRead: NOTHING_READ_YET,
      scanning: true,
      scancodeSet: DEFAULT_SCANCODE_SET,
    };
  }

  snapshot(): I8042State {
    return saveFields(this.state, I8042_FIELDS);
  }

  /**
   * Puts back a state from snapshot(). The base port is where the bus entry
   * already is, so a state saved at another port is refused rather than
   * decoded at the wrong ports.
   */
  restore(state: I8042State): void {
    const fail = (problem: string) => new I8042Error(`cannot restore i8042 state: ${problem}; pass a state produced by I8042.snapshot()`);
    const problem = checkFields(state, I8042_FIELDS);
    if (problem) throw fail(problem);
    if (state.basePort !== this.state.basePort) {
      throw fail(`basePort is 0x${state.basePort.toString(16)}, but this i8042 sits at 0x${this.state.basePort.toString(16)}`);
    }
    if (state.queue.length !== state.aux.length) throw fail(`queue has ${state.queue.length} bytes but aux says where ${state.aux.length} came from`);
    loadFields(this.state, state, I8042_FIELDS);
  }

  readRegister(offset: number): number {
    return this.readPort(this.state.basePort + offset);
  }

  writeRegister(offset: number, value: number): void {
    this.writePort(this.state.basePort + offset, value);
  }

  /** A read of PC port `port` (0x60..0x64). */
  readPort(port: number): number {
    switch (port) {
      case DATA_PORT:
        return this.readData();
      case COMMAND_STATUS:
        return this.state.status;
      case PORT_B:
        return PORT_B_TIMER2_OUTPUT_HIGH;
      default:
        return UNUSED_PORT_READ;
    }
  }

  /** A write of `value` to PC port `port` (0x60..0x64). */
  writePort(port: number, value: number): void {
    if (port === COMMAND_STATUS) {
      this.state.status |= STATUS_LAST_WRITE_COMMAND;
      this.command(value);
    } else if (port === DATA_PORT) {
      this.state.status &= ~STATUS_LAST_WRITE_COMMAND;
      this.data(value);
    }
  }

  private readData(): number {
    const s = this.state;
    if (s.queue.length > 0) {
      s.lastRead = s.queue.shift()!;
      s.aux.shift();
    }
    this.updateOutputBuffer(s.queue.length > 0);
    return s.lastRead;
  }

  private command(value: number): void {
    const s = this.state;
    switch (value) {
      case CMD_READ_MODE:
        this.reply(s.mode);
        return;
      case CMD_WRITE_MODE:
      case CMD_WRITE_OUTPUT_PORT:
      case CMD_WRITE_KEYBOARD_OUTPUT:
      case CMD_WRITE_AUX_OUTPUT:
      case CMD_WRITE_AUX:
        s.pendingCommand = value;
        return;
      case CMD_DISABLE_AUX:
        s.mode |= MODE_AUX_DISABLED;
        return;
      case CMD_ENABLE_AUX:
        s.mode &= ~MODE_AUX_DISABLED;
        return;
      case CMD_TEST_AUX:
      case CMD_TEST_KEYBOARD:
        this.reply(INTERFACE_TEST_PASSED);
        return;
      case CMD_SELF_TEST:
        s.status |= STATUS_SYSTEM_FLAG;
        this.reply(SELF_TEST_PASSED);
        return;
      case CMD_DISABLE_KEYBOARD:
        s.mode |= MODE_KEYBOARD_DISABLED;
        return;
      case CMD_ENABLE_KEYBOARD:
        s.mode &= ~MODE_KEYBOARD_DISABLED;
        return;
      case CMD_READ_INPUT_PORT:
        this.reply(INPUT_PORT_VALUE);
        return;
      case CMD_READ_OUTPUT_PORT:
        this.reply(s.outputPort);
        return;
      case CMD_READ_TEST_INPUTS:
        this.reply(0);
        return;
      default:
        if (value >= CMD_PULSE_FIRST && (value & PULSE_RESET_BIT) === 0) this.onReset();
        // Anything else is a command this controller does not have: ignored, as QEMU does.
    }
  }

  private data(value: number): void {
    const s = this.state;
    const pending = s.pendingCommand;
    s.pendingCommand = 0;
    switch (pending) {
      case CMD_WRITE_MODE: {
        const newlyEnabled = value & ~s.mode & MODE_KEYBOARD_INTERRUPT;
        s.mode = value;
        this.updateOutputBuffer(newlyEnabled !== 0);
        return;
      }
      case CMD_WRITE_OUTPUT_PORT:
        s.outputPort = value;
        if ((value & OUTPUT_PORT_RESET_HIGH) === 0) this.onReset();
        return;
      case CMD_WRITE_KEYBOARD_OUTPUT:
        this.queueByte(value, false);
        return;
      case CMD_WRITE_AUX_OUTPUT:
        this.queueByte(value, true);
        return;
      case CMD_WRITE_AUX:
        return; // no mouse: nobody answers
      default:
        // Writing to the keyboard re-enables its interface (QEMU's kbd_write_data).
        s.mode &= ~MODE_KEYBOARD_DISABLED;
        this.keyboard(value);
    }
  }

  /** The AT keyboard's side of a byte written to it. */
  private keyboard(value: number): void {
    const s = this.state;
    const parameterOf = s.pendingKeyboardCommand;
    if (parameterOf !== 0) {
      s.pendingKeyboardCommand = 0;
      if (parameterOf === KBD_SCANCODE_SET && value === 0) {
        this.fromKeyboard(KBD_ACK, s.scancodeSet);
        return;
      }
      if (parameterOf === KBD_SCANCODE_SET && value <= 3) s.scancodeSet = value;
      this.fromKeyboard(KBD_ACK);
      return;
    }
    switch (value) {
      case KBD_SET_LEDS:
      case KBD_SCANCODE_SET:
      case KBD_SET_RATE:
        s.pendingKeyboardCommand = value;
        this.fromKeyboard(KBD_ACK);
        return;
      case KBD_ECHO:
        this.fromKeyboard(KBD_ECHO);
        return;
      case KBD_GET_ID:
        this.fromKeyboard(KBD_ACK, KBD_ID_FIRST, KBD_ID_SECOND_TRANSLATED);
        return;
      case KBD_ENABLE:
        s.scanning = true;
        this.fromKeyboard(KBD_ACK);
        return;
      case KBD_RESET_DISABLE:
        this.resetKeyboard(false);
        this.fromKeyboard(KBD_ACK);
        return;
      case KBD_RESET_ENABLE:
        this.resetKeyboard(true);
        this.fromKeyboard(KBD_ACK);
        return;
      case KBD_RESET:
        this.resetKeyboard(true);
        this.fromKeyboard(KBD_ACK, KBD_SELF_TEST_PASSED);
        return;
      default:
        this.fromKeyboard(value >= KBD_MODE_COMMANDS_FIRST && value <= KBD_MODE_COMMANDS_LAST ? KBD_ACK : KBD_RESEND);
    }
  }

  /** The keyboard's defaults (scancode set 2), scanning or not: what 0xf5, 0xf6 and 0xff share. */
  private resetKeyboard(scanning: boolean): void {
    this.state.scanning = scanning;
    this.state.scancodeSet = DEFAULT_SCANCODE_SET;
  }

  private fromKeyboard(...bytes: number[]): void {
    for (const byte of bytes) this.queueByte(byte, false);
  }

  /** A controller reply: it goes to the output buffer whatever the interfaces' enables say. */
  private reply(byte: number): void {
    this.queueByte(byte, false);
  }

  private queueByte(byte: number, fromAux: boolean): void {
    const s = this.state;
    if (s.queue.length >= OUTPUT_QUEUE_SIZE) return; // a guest that never reads loses the newest bytes, as QEMU's full queue does
    const wasEmpty = s.queue.length === 0;
    s.queue.push(byte);
    s.aux.push(fromAux);
    this.updateOutputBuffer(wasEmpty);
  }

  /**
   * Mirrors the queue's head into the status bits. `rising`: IRQ 1 (OBF
   * while the command byte enables it) may have gone from low to high,
   * because a byte reached an empty buffer, a read brought the next one up,
   * or the interrupt was just enabled; the ISA line is edge-triggered, so
   * only those moments raise it. There is no IRQ 12: nothing on the
   * auxiliary port ever sends.
   */
  private updateOutputBuffer(rising: boolean): void {
    const s = this.state;
    s.status &= ~(STATUS_OUTPUT_FULL | STATUS_AUX_DATA);
    if (s.queue.length === 0) return;
    s.status |= STATUS_OUTPUT_FULL | (s.aux[0] ? STATUS_AUX_DATA : 0);
    if (rising && !s.aux[0] && (s.mode & MODE_KEYBOARD_INTERRUPT) !== 0) this.keyboardInterrupt?.trigger();
  }
}
