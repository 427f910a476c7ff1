// The CMOS RAM and real-time clock of a PC (a Motorola MC146818), at ports
// 0x70 (index) and 0x71 (data), after crosvm's devices/src/cmos.rs. The clock
// is read from an injected `now()` (UTC) every time the guest reads a time
// register, so there is no update cycle and UIP is never set.

import { ByteRegisterDevice } from '../bus/bus-device';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, arrayField, byteField, finiteNumberField, integerField, nullableField, restoreFields, saveFields } from '../snapshot';

/** The CMOS's first port; it claims CMOS_PORT_COUNT ports from here. */
export const CMOS_PORT_COUNT = 2;

// Port offsets.
const INDEX_PORT = 0; // 0x70: selects a register; bit 7 disables NMI on real hardware
const DATA_PORT = 1; // 0x71: reads/writes the selected register

const INDEX_MASK = 0x7f; // drops the NMI-disable bit: the index of one of the 128 bytes
const CMOS_SIZE = 128;

// Register indices.
const REG_SECONDS = 0x00;
const REG_MINUTES = 0x02;
const REG_HOURS = 0x04;
const REG_WEEKDAY = 0x06;
const REG_DAY_OF_MONTH = 0x07;
const REG_MONTH = 0x08;
const REG_YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const REG_CENTURY = 0x32;
// Memory size registers, as crosvm's Cmos::new fills them (it sets no others).
const REG_EXTENDED_MEMORY_LOW = 0x34; // 64 KiB units between 16 MiB and the 32-bit gap, low byte
const REG_EXTENDED_MEMORY_HIGH = 0x35;
const REG_HIGH_MEMORY_LOW = 0x5b; // 64 KiB units above 4 GiB, bits 7:0
const REG_HIGH_MEMORY_MIDDLE = 0x5c; // bits 15:8
const REG_HIGH_MEMORY_TOP = 0x5d; // bits 23:16

// Register A bits.
const A_UPDATE_IN_PROGRESS = 0b1000_0000; // UIP: read-only, never set here (time is read atomically)
const A_DEFAULT = 0b0010_0110; // divider 010 (32.768 kHz time base), rate 0110 (1024 Hz), as BIOSes program it

// Register B bits.
const B_SET = 0b1000_0000; // halts updates so the guest can set the time
const B_BINARY = 0b0000_0100; // DM: time registers in binary instead of BCD
const B_24_HOUR = 0b0000_0010; // 24-hour mode; in 12-hour mode the hour's bit 7 is PM
const B_DEFAULT = B_24_HOUR; // 24-hour, BCD (crosvm's default)

// Register D bits.
const D_VALID_RAM_AND_TIME = 0b1000_0000; // VRT: the battery is good

const HOUR_PM = 0b1000_0000; // in 12-hour mode, bit 7 of the hours register
const HOURS_PER_HALF_DAY = 12;

const MIB = 1024 * 1024;
const MEMORY_UNIT = 64 * 1024; // the memory registers count 64 KiB blocks
const EXTENDED_MEMORY_START = 16 * MIB; // registers 0x34/0x35 count memory from 16 MiB up
const EXTENDED_MEMORY_MAX_UNITS = 0xffff;
const HIGH_MEMORY_MAX_UNITS = 0xff_ffff;

const MS_PER_SECOND = 1000;
const MS_PER_MINUTE = 60 * MS_PER_SECOND;
const MS_PER_HOUR = 60 * MS_PER_MINUTE;
const YEARS_PER_CENTURY = 100;

export class CmosError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

export interface CmosOptions {
  /** The host clock in milliseconds since the epoch (Date.now in tsvmm, a constant in tests). */
  now: () => number;
  /** Guest RAM below 4 GiB in bytes. */
  memoryBelow4G: number;
  /** Guest RAM above 4 GiB in bytes. */
  memoryAbove4G: number;
}

/** Plain, JSON-able state of a Cmos, for snapshots. */
export interface CmosState {
  index: number;
  /** The 128 bytes; time registers hold what the guest last wrote (reads compute them). */
  data: number[];
  /** Guest time minus host time, in ms: what setting the clock changed. */
  offsetMs: number;
  /** The guest time held while register B's SET bit stops the clock, else null. */
  frozenMs: number | null;
}

/** The one field list of a Cmos's state (the model keeps these fields in a record of the same shape). */
const CMOS_FIELDS: StateFields<CmosState, CmosState> = {
  index: integerField(0, CMOS_SIZE - 1),
  data: arrayField(byteField, { exactly: CMOS_SIZE }),
  offsetMs: finiteNumberField,
  frozenMs: nullableField(finiteNumberField),
};

/** The calendar fields the time registers show. */
interface ClockFields {
  seconds: number;
  minutes: number;
  hours: number;
  day: number;
  month: number; // 1..12
  year: number; // full year
}

function toBcd(value: number): number {
  return ((Math.floor(value / 10) % 10) << 4) | (value % 10);
}

function fromBcd(value: number): number {
  return (value >> 4) * 10 + (value & 0x0f);
}

function checkMemorySize(what: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new CmosError(`cannot build the CMOS: ${what} is ${bytes}, it must be a non-negative whole number of bytes`);
  }
}

/**
 * The CMOS/RTC. Time registers (seconds, minutes, hours, weekday, day, month,
 * year, century) show `now()` in UTC, in BCD or binary and 24- or 12-hour
 * mode as register B says. The guest may set the clock: tsvmm keeps the
 * difference from the host clock (never changes the host's). Registers C
 * (no interrupt flags: no RTC interrupt is wired) and D (valid) are
 * read-only; the rest of the 128 bytes (alarm registers included: no RTC
 * interrupt is wired) is NVRAM.
 */
export class Cmos implements ByteRegisterDevice, StatefulDevice<CmosState> {
  readonly name = 'cmos';
  private readonly now: () => number;
  /** Everything snapshot() saves, under CMOS_FIELDS' names. */
  private readonly regs: CmosState = { index: 0, data: new Array<number>(CMOS_SIZE).fill(0), offsetMs: 0, frozenMs: null };

  constructor(options: CmosOptions) {
    checkMemorySize('memoryBelow4G', options.memoryBelow4G);
    checkMemorySize('memoryAbove4G', options.memoryAbove4G);
    this.now = options.now;
    this.regs.data[REG_A] = A_DEFAULT;
    this.regs.data[REG_B] = B_DEFAULT;
    this.regs.data[REG_D] = D_VALID_RAM_AND_TIME;

    const extendedUnits = Math.min(EXTENDED_MEMORY_MAX_UNITS, Math.floor(Math.max(0, options.memoryBelow4G - EXTENDED_MEMORY_START) / MEMORY_UNIT));
    this.regs.data[REG_EXTENDED_MEMORY_LOW] = extendedUnits & 0xff;
    this.regs.data[REG_EXTENDED_MEMORY_HIGH] = extendedUnits >> 8;

    const highUnits = Math.min(HIGH_MEMORY_MAX_UNITS, Math.floor(options.memoryAbove4G / MEMORY_UNIT));
    this.regs.data[REG_HIGH_MEMORY_LOW] = highUnits & 0xff;
    this.regs.data[REG_HIGH_MEMORY_MIDDLE] = (highUnits >> 8) & 0xff;
    this.regs.data[REG_HIGH_MEMORY_TOP] = highUnits >> 16;
  }

  snapshot(): CmosState {
    return saveFields(this.regs, CMOS_FIELDS);
  }

  /** Puts `state` (from snapshot()) back; `now` stays this Cmos's, the memory sizes come from the saved bytes. */
  restore(state: CmosState): void {
    restoreFields(this.regs, state, CMOS_FIELDS, (problem) => new CmosError(`cannot restore CMOS state: ${problem}; pass a state produced by Cmos.snapshot()`));
  }

  readRegister(offset: number): number {
    if (offset === INDEX_PORT) return this.regs.index; // crosvm reads back the index
    if (offset !== DATA_PORT) return 0xff;
    switch (this.regs.index) {
      case REG_SECONDS:
      case REG_MINUTES:
      case REG_HOURS:
      case REG_WEEKDAY:
      case REG_DAY_OF_MONTH:
      case REG_MONTH:
      case REG_YEAR:
      case REG_CENTURY:
        return this.readTime(this.regs.index);
      case REG_A:
        return this.regs.data[REG_A] & ~A_UPDATE_IN_PROGRESS;
      case REG_C:
        return 0;
      default:
        return this.regs.data[this.regs.index];
    }
  }

  writeRegister(offset: number, value: number): void {
    if (offset === INDEX_PORT) {
      this.regs.index = value & INDEX_MASK;
      return;
    }
    if (offset !== DATA_PORT) return;
    switch (this.regs.index) {
      case REG_SECONDS:
      case REG_MINUTES:
      case REG_HOURS:
      case REG_DAY_OF_MONTH:
      case REG_MONTH:
      case REG_YEAR:
      case REG_CENTURY:
        this.writeTime(this.regs.index, value);
        return;
      case REG_WEEKDAY:
        return; // derived from the date, so a written weekday cannot disagree with it
      case REG_A:
        this.regs.data[REG_A] = value & ~A_UPDATE_IN_PROGRESS;
        return;
      case REG_B:
        this.writeRegisterB(value);
        return;
      case REG_C:
      case REG_D:
        return; // read-only
      default:
        this.regs.data[this.regs.index] = value;
    }
  }

  private get binary(): boolean {
    return (this.regs.data[REG_B] & B_BINARY) !== 0;
  }

  private get twentyFourHour(): boolean {
    return (this.regs.data[REG_B] & B_24_HOUR) !== 0;
  }

  /** The guest's current time in ms since the epoch. */
  private guestTimeMs(): number {
    return this.regs.frozenMs ?? this.now() + this.regs.offsetMs;
  }

  private encode(value: number): number {
    return this.binary ? value : toBcd(value);
  }

  private decode(value: number): number {
    return this.binary ? value : fromBcd(value);
  }

  private readTime(register: number): number {
    const time = new Date(this.guestTimeMs());
    switch (register) {
      case REG_SECONDS:
        return this.encode(time.getUTCSeconds());
      case REG_MINUTES:
        return this.encode(time.getUTCMinutes());
      case REG_HOURS:
        return this.encodeHours(time.getUTCHours());
      case REG_WEEKDAY:
        return this.encode(time.getUTCDay() + 1); // 1 = Sunday
      case REG_DAY_OF_MONTH:
        return this.encode(time.getUTCDate());
      case REG_MONTH:
        return this.encode(time.getUTCMonth() + 1);
      case REG_YEAR:
        return this.encode(time.getUTCFullYear() % YEARS_PER_CENTURY);
      default: // REG_CENTURY
        return this.encode(Math.floor(time.getUTCFullYear() / YEARS_PER_CENTURY));
    }
  }

  private encodeHours(hours: number): number {
    if (this.twentyFourHour) return this.encode(hours);
    // 12-hour clock: 00:xx is 12 AM, 12:xx is 12 PM.
    const pm = hours >= HOURS_PER_HALF_DAY;
    const clockHour = hours % HOURS_PER_HALF_DAY || HOURS_PER_HALF_DAY;
    return this.encode(clockHour) | (pm ? HOUR_PM : 0);
  }

  private decodeHours(value: number): number {
    if (this.twentyFourHour) return this.decode(value);
    const clockHour = this.decode(value & ~HOUR_PM) % HOURS_PER_HALF_DAY;
    return value & HOUR_PM ? clockHour + HOURS_PER_HALF_DAY : clockHour;
  }

  private writeTime(register: number, value: number): void {
    const guestMs = this.guestTimeMs();
    const time = new Date(guestMs);
    const fields: ClockFields = {
      seconds: time.getUTCSeconds(),
      minutes: time.getUTCMinutes(),
      hours: time.getUTCHours(),
      day: time.getUTCDate(),
      month: time.getUTCMonth() + 1,
      year: time.getUTCFullYear(),
    };
    const century = Math.floor(fields.year / YEARS_PER_CENTURY);
    switch (register) {
      case REG_SECONDS:
        fields.seconds = this.decode(value);
        break;
      case REG_MINUTES:
        fields.minutes = this.decode(value);
        break;
      case REG_HOURS:
        fields.hours = this.decodeHours(value);
        break;
      case REG_DAY_OF_MONTH:
        fields.day = this.decode(value);
        break;
      case REG_MONTH:
        fields.month = this.decode(value);
        break;
      case REG_YEAR:
        fields.year = century * YEARS_PER_CENTURY + this.decode(value);
        break;
      default: // REG_CENTURY
        fields.year = this.decode(value) * YEARS_PER_CENTURY + (fields.year % YEARS_PER_CENTURY);
    }
    const subSecondMs = guestMs - Math.floor(guestMs / MS_PER_SECOND) * MS_PER_SECOND;
    // setUTCFullYear, unlike Date.UTC, does not read years 0..99 as 1900..1999.
    const date = new Date(0);
    date.setUTCFullYear(fields.year, fields.month - 1, fields.day);
    const newMs = date.getTime() + fields.hours * MS_PER_HOUR + fields.minutes * MS_PER_MINUTE + fields.seconds * MS_PER_SECOND + subSecondMs;
    if (Number.isNaN(newMs)) return; // nonsense (non-BCD digits, ...): keep the clock running as it was
    if (this.regs.frozenMs !== null) this.regs.frozenMs = newMs;
    else this.regs.offsetMs = newMs - this.now();
  }

  private writeRegisterB(value: number): void {
    const wasSet = (this.regs.data[REG_B] & B_SET) !== 0;
    const isSet = (value & B_SET) !== 0;
    if (!wasSet && isSet) this.regs.frozenMs = this.guestTimeMs();
    if (wasSet && !isSet && this.regs.frozenMs !== null) {
      this.regs.offsetMs = this.regs.frozenMs - this.now();
      this.regs.frozenMs = null;
    }
    this.regs.data[REG_B] = value;
  }
}
