// A userspace Intel 8254 programmable interval timer, for tsvmm's
// --split-irqchip mode where KVM does not emulate it. Semantics follow the
// Intel 8254 datasheet (231164); the time-based model (counts and outputs
// computed from the time a count was loaded, no per-tick work) is QEMU's
// hw/timer/i8254.c approach.
//
// Time comes from an injected clock and timers from an injected scheduler,
// so the model has no wall clock and tests drive time by hand.

import { ByteRegisterDevice } from '../bus/bus-device';
import type { InterruptLine } from '../interrupt';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import {
  StatefulDevice, StateFields, arrayField, bitsField, booleanField, byteField, decimalBigIntField, integerField, nullableField,
  recordField, restoreFields, saveFields,
} from '../snapshot';

/** Channels 0-2 and the control word. */
export const PIT_PORT_COUNT = 4;

/** The PIT's input clock: 1.193182 MHz (the 14.31818 MHz NTSC crystal divided by 12). */
export const PIT_FREQUENCY_HZ = 1_193_182n;
const NS_PER_SECOND = 1_000_000_000n;

// Port offsets.
const CONTROL_PORT = 3; // control word (write only); offsets 0..2 are the channels' data ports
const CHANNEL_COUNT = 3;

// Control word fields.
const CONTROL_SELECT_SHIFT = 6; // SC1:SC0, bits 7:6: channel 0..2, or 3 = read-back command
const CONTROL_READ_BACK = 0b11; // SC value of the read-back command
const CONTROL_ACCESS_SHIFT = 4; // RW1:RW0, bits 5:4
const CONTROL_ACCESS_MASK = 0b11;
const CONTROL_MODE_SHIFT = 1; // M2:M0, bits 3:1
const CONTROL_MODE_MASK = 0b111;
const CONTROL_BCD = 0b0000_0001; // count in BCD (4 decades) instead of binary

// Access modes (RW1:RW0).
const ACCESS_LATCH = 0b00; // counter latch command, not an access mode
const ACCESS_LOW = 0b01; // least significant byte only
const ACCESS_HIGH = 0b10; // most significant byte only
const ACCESS_LOW_HIGH = 0b11; // LSB then MSB

// Read-back command bits.
const READ_BACK_NO_COUNT = 0b0010_0000; // active low: 0 latches the selected counts
const READ_BACK_NO_STATUS = 0b0001_0000; // active low: 0 latches the selected statuses
const READ_BACK_CHANNEL_SHIFT = 1; // bits 3:1 select channels 2, 1, 0

// Status byte bits (read-back).
const STATUS_OUTPUT = 0b1000_0000; // the OUT pin
const STATUS_NULL_COUNT = 0b0100_0000; // a count was programmed but is not loaded yet
const STATUS_ACCESS_SHIFT = 4;
const STATUS_MODE_SHIFT = 1;
const STATUS_BCD = 0b0000_0001;

// Modes.
const MODE_INTERRUPT_ON_TERMINAL_COUNT = 0;
const MODE_ONE_SHOT = 1; // hardware retriggerable: starts on a gate rising edge
const MODE_RATE_GENERATOR = 2;
const MODE_SQUARE_WAVE = 3;
const MODE_SOFTWARE_STROBE = 4;
const MODE_HARDWARE_STROBE = 5; // starts on a gate rising edge
const MODE_PERIODIC_BIT = 0b010; // modes 6 and 7 are modes 2 and 3 (M2 is "don't care")
const MODE_PERIODIC_MASK = 0b011;

const BINARY_MODULUS = 0x1_0000; // a count of 0 means 2^16
const BCD_MODULUS = 10_000; // in BCD a count of 0 means 10^4
const BYTE_MASK = 0xff;
const BYTE_SHIFT = 8;
const INTERRUPT_CHANNEL = 0; // channel 0's OUT is wired to IRQ 0
const SPEAKER_CHANNEL = 2; // channel 2's gate and OUT are wired to port 0x61

// Port 0x61 bits.
const PORT_B_TIMER2_GATE = 0b0000_0001; // read/write: channel 2's gate
const PORT_B_WRITABLE = 0b0000_1111; // gate, speaker data enable, parity and channel check enables
const PORT_B_REFRESH = 0b0001_0000; // read-only: toggles with each DRAM refresh request
const PORT_B_TIMER2_OUTPUT = 0b0010_0000; // read-only: channel 2's OUT
/** A PC/AT requests DRAM refresh every 15.085 us (PIT channel 1 programmed with 18). */
const REFRESH_PERIOD_NS = 15_085n;

export class PitError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/** A timer the PIT asked for; cancel() must stop the callback from running. */
export interface ScheduledTimer {
  cancel(): void;
}

export interface PitOptions {
  /** Monotonic time in nanoseconds (process.hrtime.bigint in tsvmm, a variable in tests). */
  now: () => bigint;
  /** Runs `callback` once, `delayNs` from now. */
  schedule: (delayNs: bigint, callback: () => void) => ScheduledTimer;
  /** IRQ 0: triggered on each rising edge of channel 0's output. */
  interrupt: InterruptLine;
}

/** One channel, as plain JSON-able data (startNs and pausedTicks, bigints in the model, as decimal strings). */
export interface PitChannelState {
  modeBits: number;
  access: number;
  bcd: boolean;
  reload: number;
  loaded: boolean;
  gate: boolean;
  triggered: boolean;
  running: boolean;
  /** A bigint, as a decimal string. */
  startNs: string;
  /** A bigint, as a decimal string. */
  pausedTicks: string;
  pendingLowByte: number | null;
  readHighNext: boolean;
  latchedCount: number[];
  latchedStatus: number | null;
  nullCount: boolean;
}

export interface PitState {
  channels: PitChannelState[];
}

function ticksBetween(fromNs: bigint, toNs: bigint): bigint {
  return toNs > fromNs ? ((toNs - fromNs) * PIT_FREQUENCY_HZ) / NS_PER_SECOND : 0n;
}

/** Nanoseconds until `ticks` PIT clocks have passed (rounded up, so the tick has really happened). */
function nsForTicks(ticks: bigint): bigint {
  return (ticks * NS_PER_SECOND + PIT_FREQUENCY_HZ - 1n) / PIT_FREQUENCY_HZ;
}

function toBcd(value: number): number {
  let result = 0;
  for (let shift = 0, rest = value; shift < 16; shift += 4, rest = Math.floor(rest / 10)) result |= (rest % 10) << shift;
  return result;
}

function fromBcd(value: number): number {
  let result = 0;
  for (let shift = 12; shift >= 0; shift -= 4) result = result * 10 + Math.min(9, (value >> shift) & 0xf);
  return result;
}

class Channel {
  modeBits = MODE_SQUARE_WAVE; // as QEMU's reset; no count is loaded, so nothing runs until the guest programs one
  access = ACCESS_LOW_HIGH;
  bcd = false;
  /** N, the programmed initial count, 1..2^16 (1..10^4 in BCD). */
  reload = BINARY_MODULUS;
  /** A full count was written since the last control word. */
  loaded = false;
  gate: boolean;
  /** Modes 1 and 5: a gate rising edge started the count. */
  triggered = false;
  /** Ticks accumulate from startNs (false while the gate holds counting, or before a load). */
  running = false;
  startNs = 0n;
  /** Ticks counted before startNs (across gate pauses). */
  pausedTicks = 0n;
  pendingLowByte: number | null = null;
  readHighNext = false;
  latchedCount: number[] = [];
  latchedStatus: number | null = null;
  nullCount = false;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  get mode(): number {
    return this.modeBits & MODE_PERIODIC_BIT ? this.modeBits & MODE_PERIODIC_MASK : this.modeBits;
  }

  get modulus(): number {
    return this.bcd ? BCD_MODULUS : BINARY_MODULUS;
  }

  elapsed(now: bigint): bigint {
    return this.pausedTicks + (this.running ? ticksBetween(this.startNs, now) : 0n);
  }

  /** The counting element's value (binary), 0..modulus-1. */
  count(now: bigint): number {
    const n = BigInt(this.reload);
    const modulus = BigInt(this.modulus);
    if (!this.loaded || ((this.mode === MODE_ONE_SHOT || this.mode === MODE_HARDWARE_STROBE) && !this.triggered)) {
      return Number(n % modulus);
    }
    const d = this.elapsed(now);
    let value: bigint;
    switch (this.mode) {
      case MODE_RATE_GENERATOR:
        value = n - (d % n); // N, N-1, ..., 1, reload
        break;
      case MODE_SQUARE_WAVE:
        value = n - ((2n * d) % n); // decrements by two, twice per period (exact for even N)
        break;
      default:
        value = n - d; // one-shot modes keep counting down and wrap
    }
    return Number(((value % modulus) + modulus) % modulus);
  }

  output(now: bigint): boolean {
    if (!this.loaded) return this.mode !== MODE_INTERRUPT_ON_TERMINAL_COUNT;
    const n = BigInt(this.reload);
    const d = this.elapsed(now);
    switch (this.mode) {
      case MODE_INTERRUPT_ON_TERMINAL_COUNT:
        return d >= n; // low until terminal count, then high
      case MODE_ONE_SHOT:
        return !this.triggered || d >= n; // low from the trigger to terminal count
      case MODE_RATE_GENERATOR:
        return !this.gate || d % n !== n - 1n; // low for the one clock at count 1
      case MODE_SQUARE_WAVE:
        return !this.gate || d % n < (n + 1n) / 2n; // high for ceil(N/2) clocks, low for floor(N/2)
      case MODE_SOFTWARE_STROBE:
        return d !== n; // low for the one clock at terminal count
      default: // MODE_HARDWARE_STROBE
        return !this.triggered || d !== n;
    }
  }

  /** The first tick after `after` at which OUT rises, or null if it never will without guest action. */
  nextRisingEdge(after: bigint): bigint | null {
    if (!this.loaded || !this.running) return null;
    const n = BigInt(this.reload);
    switch (this.mode) {
      case MODE_INTERRUPT_ON_TERMINAL_COUNT:
      case MODE_ONE_SHOT:
        return after < n ? n : null;
      case MODE_RATE_GENERATOR:
      case MODE_SQUARE_WAVE:
        return (after / n + 1n) * n;
      default: // strobes: OUT rises again one clock after terminal count
        return after < n + 1n ? n + 1n : null;
    }
  }

  statusByte(now: bigint): number {
    return (
      (this.output(now) ? STATUS_OUTPUT : 0) |
      (this.nullCount ? STATUS_NULL_COUNT : 0) |
      (this.access << STATUS_ACCESS_SHIFT) |
      (this.modeBits << STATUS_MODE_SHIFT) |
      (this.bcd ? STATUS_BCD : 0)
    );
  }
}

/** The one field list of a channel's state, read from and written to the Channel's same-named fields. */
const PIT_CHANNEL_FIELDS: StateFields<Channel, PitChannelState> = {
  modeBits: integerField(0, CONTROL_MODE_MASK),
  access: integerField(ACCESS_LOW, ACCESS_LOW_HIGH, 'an access mode 1..3'),
  bcd: booleanField,
  reload: integerField(1, BINARY_MODULUS),
  loaded: booleanField,
  gate: booleanField,
  triggered: booleanField,
  running: booleanField,
  startNs: decimalBigIntField,
  pausedTicks: decimalBigIntField,
  pendingLowByte: nullableField(byteField),
  readHighNext: booleanField,
  latchedCount: arrayField(byteField, { atMost: 2 }),
  latchedStatus: nullableField(byteField),
  nullCount: booleanField,
};

/** What a Pit's state holds. */
interface PitRegisters {
  channels: Channel[];
}

const PIT_FIELDS: StateFields<PitRegisters, PitState> = {
  // The gate given here is overwritten by the saved one.
  channels: arrayField(recordField(PIT_CHANNEL_FIELDS, () => new Channel(false)), { exactly: CHANNEL_COUNT }),
};

/**
 * The 8254 PIT at ports 0x40-0x43: three 16-bit down-counters clocked at
 * 1.193182 MHz, the control word (channel select, access mode LSB/MSB/both,
 * modes 0-5, BCD), the counter latch and read-back commands and the status
 * byte. Channel 0's output rising edges trigger IRQ 0.
 *
 * Simplifications, all invisible to Linux's use of the PIT:
 * - A count takes effect as soon as it is fully written (hardware waits for
 *   the next clock, and in modes 2/3 for the end of the current period).
 * - Null count is set by a control word and cleared once the count is written.
 * - Mode 3 with an odd count reads back like an even one; OUT's timing is exact.
 * - If the host runs the timer callback late by more than a period, the
 *   missed IRQ 0 edges are coalesced into one (no reinjection).
 * - Channels 0 and 1 have their gate tied high; channel 2's gate is set
 *   through `setGate` (PitSpeakerPort maps it to port 0x61 bit 0). Nothing
 *   is wired to channel 1's or 2's output except that port.
 */
export class Pit implements ByteRegisterDevice, StatefulDevice<PitState> {
  readonly name = 'pit';
  private readonly now: () => bigint;
  private readonly schedule: PitOptions['schedule'];
  private readonly interrupt: InterruptLine;
  /** Everything snapshot() saves, under PIT_FIELDS' names. */
  private readonly regs: PitRegisters;
  private timer: ScheduledTimer | null = null;
  /** Bumped whenever the timer is replaced, so a callback that raced its cancel() does nothing. */
  private timerGeneration = 0;

  constructor(options: PitOptions) {
    this.now = options.now;
    this.schedule = options.schedule;
    this.interrupt = options.interrupt;
    this.regs = { channels: [new Channel(true), new Channel(true), new Channel(false)] };
  }

  private get channels(): Channel[] {
    return this.regs.channels;
  }

  snapshot(): PitState {
    return saveFields(this.regs, PIT_FIELDS);
  }

  /** Puts `state` (from snapshot()) back and re-arms channel 0's timer on this Pit's clock (a pending timer is replaced). */
  restore(state: PitState): void {
    restoreFields(this.regs, state, PIT_FIELDS, (problem) => new PitError(`cannot restore PIT state: ${problem}; pass a state produced by Pit.snapshot()`));
    this.rescheduleInterrupt();
  }

  /** Stops channel 0's timer (VM teardown). */
  dispose(): void {
    this.cancelTimer();
  }

  readRegister(offset: number): number {
    if (offset >= CHANNEL_COUNT) return 0; // the control word register is write-only
    return this.readChannel(this.channels[offset]);
  }

  writeRegister(offset: number, value: number): void {
    if (offset === CONTROL_PORT) this.writeControlWord(value);
    else if (offset < CHANNEL_COUNT) this.writeChannel(offset, value);
  }

  /** Sets a channel's gate input; a rising edge restarts modes 1, 2, 3 and 5, a low gate holds modes 0, 2, 3 and 4. */
  setGate(channelIndex: number, high: boolean): void {
    const channel = this.channel(channelIndex);
    if (channel.gate === high) return;
    const now = this.now();
    if (channel.loaded) {
      const mode = channel.mode;
      if (high) {
        if (mode === MODE_INTERRUPT_ON_TERMINAL_COUNT || mode === MODE_SOFTWARE_STROBE) {
          channel.startNs = now; // resume where it was held
        } else {
          channel.pausedTicks = 0n; // reload and start over
          channel.startNs = now;
          channel.triggered = true;
        }
        channel.running = true;
      } else if (mode !== MODE_ONE_SHOT && mode !== MODE_HARDWARE_STROBE) {
        channel.pausedTicks = channel.elapsed(now);
        channel.running = false;
      }
    }
    channel.gate = high;
    if (channelIndex === INTERRUPT_CHANNEL) this.rescheduleInterrupt();
  }

  /** A channel's gate input. */
  gate(channelIndex: number): boolean {
    return this.channel(channelIndex).gate;
  }

  /** A channel's OUT pin now. */
  output(channelIndex: number): boolean {
    return this.channel(channelIndex).output(this.now());
  }

  private channel(index: number): Channel {
    const channel = this.channels[index];
    if (!Number.isInteger(index) || !channel) {
      throw new PitError(`PIT channel ${index} does not exist; channels are 0, 1 and 2`);
    }
    return channel;
  }

  private writeControlWord(value: number): void {
    const select = value >> CONTROL_SELECT_SHIFT;
    if (select === CONTROL_READ_BACK) {
      this.readBack(value);
      return;
    }
    const channel = this.channels[select];
    const access = (value >> CONTROL_ACCESS_SHIFT) & CONTROL_ACCESS_MASK;
    if (access === ACCESS_LATCH) {
      this.latchCount(channel);
      return;
    }
    channel.access = access;
    channel.modeBits = (value >> CONTROL_MODE_SHIFT) & CONTROL_MODE_MASK;
    channel.bcd = (value & CONTROL_BCD) !== 0;
    // A control word resets the channel's logic: it stops until a new count is written.
    channel.loaded = false;
    channel.running = false;
    channel.triggered = false;
    channel.pausedTicks = 0n;
    channel.pendingLowByte = null;
    channel.readHighNext = false;
    channel.latchedCount = [];
    channel.latchedStatus = null;
    channel.nullCount = true;
    if (select === INTERRUPT_CHANNEL) this.rescheduleInterrupt();
  }

  private readBack(value: number): void {
    const now = this.now();
    for (let index = 0; index < CHANNEL_COUNT; index++) {
      if (!(value & (1 << (READ_BACK_CHANNEL_SHIFT + index)))) continue;
      const channel = this.channels[index];
      if (!(value & READ_BACK_NO_COUNT)) this.latchCount(channel);
      // A second status latch before the first is read is ignored, like a second count latch.
      if (!(value & READ_BACK_NO_STATUS) && channel.latchedStatus === null) channel.latchedStatus = channel.statusByte(now);
    }
  }

  /** Freezes the current count for reading; ignored while an earlier latch is unread. */
  private latchCount(channel: Channel): void {
    if (channel.latchedCount.length > 0) return;
    const value = this.encodedCount(channel);
    const low = value & BYTE_MASK;
    const high = value >> BYTE_SHIFT;
    if (channel.access === ACCESS_LOW) channel.latchedCount = [low];
    else if (channel.access === ACCESS_HIGH) channel.latchedCount = [high];
    else channel.latchedCount = [low, high];
  }

  private encodedCount(channel: Channel): number {
    const count = channel.count(this.now());
    return channel.bcd ? toBcd(count) : count;
  }

  private readChannel(channel: Channel): number {
    if (channel.latchedStatus !== null) {
      const status = channel.latchedStatus;
      channel.latchedStatus = null;
      return status;
    }
    const latched = channel.latchedCount.shift();
    if (latched !== undefined) return latched;
    const value = this.encodedCount(channel);
    switch (channel.access) {
      case ACCESS_LOW:
        return value & BYTE_MASK;
      case ACCESS_HIGH:
        return value >> BYTE_SHIFT;
      default: {
        const high = channel.readHighNext;
        channel.readHighNext = !high;
        return high ? value >> BYTE_SHIFT : value & BYTE_MASK;
      }
    }
  }

  private writeChannel(index: number, value: number): void {
    const channel = this.channels[index];
    switch (channel.access) {
      case ACCESS_LOW:
        this.loadCount(index, value);
        return;
      case ACCESS_HIGH:
        this.loadCount(index, value << BYTE_SHIFT);
        return;
      default:
        if (channel.pendingLowByte === null) {
          channel.pendingLowByte = value;
        } else {
          this.loadCount(index, channel.pendingLowByte | (value << BYTE_SHIFT));
          channel.pendingLowByte = null;
        }
    }
  }

  private loadCount(index: number, raw: number): void {
    const channel = this.channels[index];
    const value = channel.bcd ? fromBcd(raw) : raw;
    channel.reload = value === 0 ? channel.modulus : value;
    channel.loaded = true;
    channel.nullCount = false;
    channel.pausedTicks = 0n;
    channel.startNs = this.now();
    // Modes 1 and 5 wait for a gate rising edge; the others count while the gate is high.
    channel.triggered = false;
    channel.running = channel.mode === MODE_ONE_SHOT || channel.mode === MODE_HARDWARE_STROBE ? false : channel.gate;
    if (index === INTERRUPT_CHANNEL) this.rescheduleInterrupt();
  }

  private cancelTimer(): void {
    this.timerGeneration++;
    if (this.timer) this.timer.cancel();
    this.timer = null;
  }

  /** Arms the timer for channel 0's next OUT rising edge after tick `after` (or now). */
  private rescheduleInterrupt(after?: bigint): void {
    this.cancelTimer();
    const channel = this.channels[INTERRUPT_CHANNEL];
    const now = this.now();
    const elapsed = channel.elapsed(now);
    const from = after !== undefined && after > elapsed ? after : elapsed;
    const edge = channel.nextRisingEdge(from);
    if (edge === null) return;
    const edgeNs = channel.startNs + nsForTicks(edge - channel.pausedTicks);
    const delayNs = edgeNs > now ? edgeNs - now : 0n;
    const generation = this.timerGeneration;
    this.timer = this.schedule(delayNs, () => {
      if (generation !== this.timerGeneration) return;
      this.timer = null;
      this.interrupt.trigger();
      this.rescheduleInterrupt(edge);
    });
  }
}

/** Plain, JSON-able state of a PitSpeakerPort (the gate lives in the Pit's state). */
export interface PitSpeakerPortState {
  /** Port B bits 1-3 as last written. */
  latched: number;
}

const PIT_SPEAKER_PORT_FIELDS: StateFields<PitSpeakerPortState, PitSpeakerPortState> = {
  latched: bitsField(PORT_B_WRITABLE & ~PORT_B_TIMER2_GATE, 'port B bits 1-3 (within 0x0e)'),
};

export interface PitSpeakerPortOptions {
  pit: Pit;
  /** The same clock as the Pit's, for the refresh-toggle bit. */
  now: () => bigint;
}

/**
 * System control port B (0x61) as wired to the PIT: bit 0 is channel 2's
 * gate, bits 1-3 are stored (speaker data, parity/channel check enables),
 * bit 4 toggles like the PC/AT refresh request and bit 5 is channel 2's OUT,
 * which Linux's pit_calibrate_tsc() polls. Insert it at 0x61 and the i8042
 * at 0x62 when the PIT is in userspace.
 */
export class PitSpeakerPort implements ByteRegisterDevice, StatefulDevice<PitSpeakerPortState> {
  readonly name = 'pit-speaker-port';
  private readonly pit: Pit;
  private readonly now: () => bigint;
  /** Everything snapshot() saves, under PIT_SPEAKER_PORT_FIELDS' names. */
  private readonly regs: PitSpeakerPortState = { latched: 0 };

  constructor(options: PitSpeakerPortOptions) {
    this.pit = options.pit;
    this.now = options.now;
  }

  snapshot(): PitSpeakerPortState {
    return saveFields(this.regs, PIT_SPEAKER_PORT_FIELDS);
  }

  restore(state: PitSpeakerPortState): void {
    restoreFields(this.regs, state, PIT_SPEAKER_PORT_FIELDS,
      (problem) => new PitError(`cannot restore PIT port 0x61 state: ${problem}; pass a state produced by PitSpeakerPort.snapshot()`));
  }

  readRegister(_offset: number): number {
    const refresh = (this.now() / REFRESH_PERIOD_NS) & 1n ? PORT_B_REFRESH : 0;
    return (
      this.regs.latched |
      (this.pit.gate(SPEAKER_CHANNEL) ? PORT_B_TIMER2_GATE : 0) |
      refresh |
      (this.pit.output(SPEAKER_CHANNEL) ? PORT_B_TIMER2_OUTPUT : 0)
    );
  }

  writeRegister(_offset: number, value: number): void {
    this.regs.latched = value & PORT_B_WRITABLE & ~PORT_B_TIMER2_GATE;
    this.pit.setGate(SPEAKER_CHANNEL, (value & PORT_B_TIMER2_GATE) !== 0);
  }
}
