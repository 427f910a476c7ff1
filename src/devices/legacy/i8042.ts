// Just enough of the i8042 keyboard controller to reset the machine, as
// crosvm's devices/src/i8042.rs: Linux reboots (reboot=k, and as a fallback)
// by writing the "pulse reset line" command to port 0x64. There is no
// keyboard: the status register always says "no data, input buffer empty",
// so Linux's i8042 driver finds no controller and gives up quietly.

import { ByteRegisterDevice } from '../bus/bus-device';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, checkFields, integerField, saveFields } from '../snapshot';

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

const COMMAND_PULSE_RESET = 0xfe; // pulse output line 0 low: the CPU reset line
const STATUS_EMPTY = 0x00; // no output data, input buffer empty, controller ready for a command
/**
 * Port B read: bit 5 is PIT channel 2's output. crosvm (after kvmtool)
 * returns it set so that Linux's pit_calibrate_tsc(), which waits for that
 * bit, cannot hang when nothing emulates channel 2 on this port.
 */
const PORT_B_TIMER2_OUTPUT_HIGH = 0b0010_0000;
/** Ports 0x62-0x63: nothing behind them; crosvm leaves its zeroed buffer as is. */
const UNUSED_PORT_READ = 0x00;

export interface I8042Options {
  /** Called when the guest asks for a CPU reset (tsvmm stops or reboots the VM). */
  onReset: () => void;
  /** The port the device is inserted at: 0x61 (default) or 0x62 after the PIT's speaker port. */
  basePort?: number;
}

export class I8042Error extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/** Plain, JSON-able state (the device has none beyond its placement). */
export interface I8042State {
  basePort: number;
}

/** The one field list of an I8042's state. */
const I8042_FIELDS: StateFields<{ basePort: number }, I8042State> = {
  basePort: integerField(0, 0xffff, 'a 16-bit port'),
};

/**
 * The i8042 reset path. Reads: 0x64 -> 0 (status: nothing to read, ready),
 * 0x61 -> 0x20 (timer 2 output high, constant), 0x62/0x63 -> 0. Writes: 0xfe
 * to 0x64 calls `onReset`; everything else is ignored.
 */
export class I8042 implements ByteRegisterDevice, StatefulDevice<I8042State> {
  readonly name = 'i8042';
  private readonly onReset: () => void;
  private readonly basePort: number;

  constructor(options: I8042Options) {
    this.onReset = options.onReset;
    this.basePort = options.basePort ?? DEFAULT_BASE_PORT;
  }

  snapshot(): I8042State {
    return saveFields({ basePort: this.basePort }, I8042_FIELDS);
  }

  /**
   * Checks `state` (from snapshot()). There is nothing to put back: the
   * base port is where the bus entry already is, so a state saved at
   * another port is refused rather than decoded at the wrong ports.
   */
  restore(state: I8042State): void {
    const fail = (problem: string) => new I8042Error(`cannot restore i8042 state: ${problem}; pass a state produced by I8042.snapshot()`);
    const problem = checkFields(state, I8042_FIELDS);
    if (problem) throw fail(problem);
    if (state.basePort !== this.basePort) {
      throw fail(`basePort is 0x${state.basePort.toString(16)}, but this i8042 sits at 0x${this.basePort.toString(16)}`);
    }
  }

  readRegister(offset: number): number {
    switch (this.basePort + offset) {
      case COMMAND_STATUS:
        return STATUS_EMPTY;
      case PORT_B:
        return PORT_B_TIMER2_OUTPUT_HIGH;
      default:
        return UNUSED_PORT_READ;
    }
  }

  writeRegister(offset: number, value: number): void {
    if (this.basePort + offset === COMMAND_STATUS && value === COMMAND_PULSE_RESET) this.onReset();
  }
}
