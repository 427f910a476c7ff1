import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Cmos, CmosError, CMOS_PORT_COUNT } from '../../../../src/devices/legacy/cmos';
import type { CmosState } from '../../../../src/devices/legacy/cmos';
import { CMOS_PORT as CMOS_BASE_PORT } from '../../../../src/main/layout';

const INDEX = 0, DATA = 1;
const GIB = 1024 * 1024 * 1024;
const KIB = 1024;

function makeCmos(iso = '2026-11-26T08:15:42Z', memoryBelow4G = 3 * GIB, memoryAbove4G = 0) {
  const clock = { ms: Date.parse(iso) };
  const cmos = new Cmos({ now: () => clock.ms, memoryBelow4G, memoryAbove4G });
  const read = (register: number) => {
    cmos.writeRegister(INDEX, register);
    return cmos.readRegister(DATA);
  };
  const write = (register: number, value: number) => {
    cmos.writeRegister(INDEX, register);
    cmos.writeRegister(DATA, value);
  };
  return { cmos, clock, read, write };
}

const SECONDS = 0x00, MINUTES = 0x02, HOURS = 0x04, WEEKDAY = 0x06, DAY = 0x07, MONTH = 0x08, YEAR = 0x09, CENTURY = 0x32;
const REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c, REG_D = 0x0d;

test('placement', () => {
  assert.is(CMOS_BASE_PORT, 0x70);
  assert.is(CMOS_PORT_COUNT, 2);
});

test('time in BCD, 24-hour mode by default (UTC)', () => {
  const { read } = makeCmos();
  assert.is(read(SECONDS), 0x42);
  assert.is(read(MINUTES), 0x15);
  assert.is(read(HOURS), 0x08);
  assert.is(read(WEEKDAY), 0x05); // Thursday, 1 = Sunday
  assert.is(read(DAY), 0x26);
  assert.is(read(MONTH), 0x11);
  assert.is(read(YEAR), 0x26);
  assert.is(read(CENTURY), 0x20);
});

test('the clock is read on every access', () => {
  const { read, clock } = makeCmos('1999-12-31T23:59:59Z');
  assert.is(read(SECONDS), 0x59);
  assert.is(read(YEAR), 0x99);
  assert.is(read(CENTURY), 0x19);
  assert.is(read(WEEKDAY), 0x06); // Friday
  clock.ms += 1000;
  assert.is(read(SECONDS), 0x00);
  assert.is(read(MINUTES), 0x00);
  assert.is(read(HOURS), 0x00);
  assert.is(read(DAY), 0x01);
  assert.is(read(MONTH), 0x01);
  assert.is(read(YEAR), 0x00);
  assert.is(read(CENTURY), 0x20);
  assert.is(read(WEEKDAY), 0x07); // Saturday
});

test('binary mode (register B bit 2)', () => {
  const { read, write } = makeCmos();
  write(REG_B, 0x06);
  assert.is(read(REG_B), 0x06);
  assert.is(read(SECONDS), 42);
  assert.is(read(MINUTES), 15);
  assert.is(read(HOURS), 8);
  assert.is(read(WEEKDAY), 5);
  assert.is(read(DAY), 26);
  assert.is(read(MONTH), 11);
  assert.is(read(YEAR), 26);
  assert.is(read(CENTURY), 20);
});

test('12-hour mode (register B bit 1 clear) sets bit 7 for PM', () => {
  const cases: Array<[string, number, number]> = [
    // time, BCD hours, binary hours
    ['2026-11-26T08:15:42Z', 0x08, 0x08],
    ['2026-11-26T00:30:00Z', 0x12, 0x0c], // 12 AM
    ['2026-11-26T12:00:00Z', 0x92, 0x8c], // 12 PM
    ['2026-11-26T23:59:59Z', 0x91, 0x8b], // 11 PM
    ['2026-11-26T13:00:00Z', 0x81, 0x81], // 1 PM
  ];
  for (const [iso, bcd, binary] of cases) {
    const { read, write } = makeCmos(iso);
    write(REG_B, 0x00);
    assert.is(read(HOURS), bcd, `${iso} BCD`);
    write(REG_B, 0x04);
    assert.is(read(HOURS), binary, `${iso} binary`);
  }
});

test('register A: 0x26 at reset, writable, UIP always clear', () => {
  const { read, write } = makeCmos();
  assert.is(read(REG_A), 0x26);
  write(REG_A, 0xa6);
  assert.is(read(REG_A), 0x26);
  write(REG_A, 0x2f);
  assert.is(read(REG_A), 0x2f);
});

test('registers B, C and D at reset; C and D are read-only', () => {
  const { read, write } = makeCmos();
  assert.is(read(REG_B), 0x02);
  assert.is(read(REG_C), 0x00);
  assert.is(read(REG_D), 0x80);
  write(REG_C, 0xff);
  write(REG_D, 0x00);
  assert.is(read(REG_C), 0x00);
  assert.is(read(REG_D), 0x80);
});

test('index port masks off the NMI-disable bit and reads back the index', () => {
  const { cmos } = makeCmos();
  cmos.writeRegister(INDEX, 0x80 | 0x0d);
  assert.is(cmos.readRegister(INDEX), 0x0d);
  assert.is(cmos.readRegister(DATA), 0x80);
});

test('the rest is NVRAM', () => {
  const { read, write } = makeCmos();
  write(0x40, 0x5a);
  write(0x7f, 0xa5);
  write(0x01, 0x30); // seconds alarm: plain storage
  assert.is(read(0x40), 0x5a);
  assert.is(read(0x7f), 0xa5);
  assert.is(read(0x01), 0x30);
  assert.is(read(0x41), 0x00);
});

test('memory size registers, as crosvm fills them', () => {
  // 3 GiB below 4G: (3072 - 16) MiB / 64 KiB = 48896 = 0xbf00.
  // 5 GiB + 100 KiB above 4G: 81920 + 1 = 81921 = 0x014001 units.
  const { read } = makeCmos(undefined, 3 * GIB, 5 * GIB + 100 * KIB);
  assert.is(read(0x34), 0x00);
  assert.is(read(0x35), 0xbf);
  assert.is(read(0x5b), 0x01);
  assert.is(read(0x5c), 0x40);
  assert.is(read(0x5d), 0x01);
  // crosvm sets no other memory registers.
  for (const register of [0x15, 0x16, 0x17, 0x18, 0x30, 0x31]) assert.is(read(register), 0, `register ${register}`);
});

test('memory size registers: below 16 MiB is 0, caps at 0xffff and 0xffffff', () => {
  const small = makeCmos(undefined, 8 * 1024 * KIB, 0);
  assert.is(small.read(0x34), 0);
  assert.is(small.read(0x35), 0);
  const huge = makeCmos(undefined, 8 * GIB, 1024 * GIB);
  assert.is(huge.read(0x34), 0xff);
  assert.is(huge.read(0x35), 0xff);
  assert.is(huge.read(0x5b), 0xff);
  assert.is(huge.read(0x5c), 0xff);
  assert.is(huge.read(0x5d), 0xff);
});

test('setting the clock with SET held: the time freezes, then runs from what was written', () => {
  const { read, write, clock } = makeCmos();
  write(REG_B, 0x82);
  clock.ms += 3000;
  assert.is(read(SECONDS), 0x42); // frozen
  write(HOURS, 0x10);
  write(DAY, 0x01);
  write(MONTH, 0x02);
  write(YEAR, 0x27);
  write(WEEKDAY, 0x03); // ignored: derived from the date
  write(REG_B, 0x02);
  clock.ms += 5000;
  assert.is(read(SECONDS), 0x47);
  assert.is(read(MINUTES), 0x15);
  assert.is(read(HOURS), 0x10);
  assert.is(read(DAY), 0x01);
  assert.is(read(MONTH), 0x02);
  assert.is(read(YEAR), 0x27);
  assert.is(read(WEEKDAY), 0x02); // 2027-02-01 is a Monday
});

test('setting a field without SET shifts the clock at once', () => {
  const { read, write, clock } = makeCmos();
  write(SECONDS, 0x00);
  assert.is(read(SECONDS), 0x00);
  clock.ms += 1000;
  assert.is(read(SECONDS), 0x01);
  assert.is(read(MINUTES), 0x15);
});

test('setting the hour in 12-hour binary mode', () => {
  const { read, write } = makeCmos();
  write(REG_B, 0x04); // binary, 12-hour
  write(HOURS, 0x80 | 3); // 3 PM
  write(REG_B, 0x06); // binary, 24-hour
  assert.is(read(HOURS), 15);
});

test('setting the century', () => {
  const { read, write } = makeCmos();
  write(CENTURY, 0x21);
  assert.is(read(CENTURY), 0x21);
  assert.is(read(YEAR), 0x26);
});

test('snapshot() round-trips through JSON into a fresh Cmos', () => {
  const { cmos, write, clock } = makeCmos();
  write(0x50, 0x12);
  write(SECONDS, 0x10);
  cmos.writeRegister(INDEX, 0x50);
  const copy = new Cmos({ now: () => clock.ms, memoryBelow4G: 0, memoryAbove4G: 0 });
  copy.restore(JSON.parse(JSON.stringify(cmos.snapshot())));
  assert.equal(copy.snapshot(), cmos.snapshot());
  assert.is(copy.readRegister(DATA), 0x12);
  copy.writeRegister(INDEX, SECONDS);
  assert.is(copy.readRegister(DATA), 0x10);
  copy.writeRegister(INDEX, 0x35);
  assert.is(copy.readRegister(DATA), 0xbf); // memory registers come from the saved bytes
});

test('restore() is in place: the same Cmos, its clock, and the state shares nothing with it', () => {
  const { cmos, read, write, clock } = makeCmos();
  write(REG_B, 0x82); // SET, BCD, 24-hour: the clock stops at 08:15:42
  const saved = cmos.snapshot();
  write(REG_B, 0x06); // running again, binary
  write(0x50, 0x99);
  cmos.restore(saved);
  saved.data[0x50] = 0x77; // the state is a copy
  assert.is(read(0x50), 0x00);
  clock.ms += 60_000;
  assert.is(read(MINUTES), 0x15); // still frozen, in BCD, as saved
  write(REG_B, 0x02); // clear SET: runs on from the frozen time with this Cmos's clock
  clock.ms += 60_000;
  assert.is(read(MINUTES), 0x16);
});

test('errors', () => {
  const now = () => 0;
  assert.throws(() => new Cmos({ now, memoryBelow4G: -1, memoryAbove4G: 0 }), (e: unknown) => e instanceof CmosError && /memoryBelow4G is -1/.test(e.message));
  assert.throws(() => new Cmos({ now, memoryBelow4G: 0, memoryAbove4G: 1.5 }), /memoryAbove4G is 1.5/);
});

test('restore() refuses a bad state in one line and changes nothing', () => {
  const { cmos, read, write } = makeCmos();
  write(0x50, 0x12);
  const before = cmos.snapshot();
  const good = cmos.snapshot();
  const cmosError = (pattern: RegExp) => (e: unknown) => e instanceof CmosError && pattern.test(e.message) && !e.message.includes('\n');
  assert.throws(() => cmos.restore({ ...good, data: [1, 2] }), cmosError(/data has 2 entries, not 128/));
  assert.throws(() => cmos.restore({ ...good, index: 128 }), cmosError(/index is 128, not an integer 0\.\.127/));
  // A bad field after good ones: nothing of the good ones is applied either.
  assert.throws(() => cmos.restore({ ...good, index: 3, data: good.data.map((b, i) => (i === 127 ? 256 : b)) }), cmosError(/data\[127\] is 256, not a byte/));
  assert.throws(() => cmos.restore({ ...good, index: 3, frozenMs: Number.NaN }), cmosError(/frozenMs is NaN, not a finite number/));
  assert.throws(() => cmos.restore({ ...good, offsetMs: '5' } as unknown as CmosState), cmosError(/offsetMs is "5"/));
  assert.throws(() => cmos.restore({ index: 0, data: good.data, offsetMs: 0 } as CmosState), cmosError(/frozenMs is missing/));
  assert.equal(cmos.snapshot(), before);
  assert.is(read(0x50), 0x12);
});

test.run();
