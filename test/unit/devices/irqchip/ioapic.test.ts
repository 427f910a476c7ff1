import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Ioapic, IoapicError, IoapicState, IOAPIC_MMIO_SIZE, IOAPIC_PIN_COUNT, IOAPIC_VERSION, ioapicInterruptLine, redirectionEntryMsi,
} from '../../../../src/devices/irqchip/ioapic';
import type { MsiMessage } from '../../../../src/devices/interrupt';

// Offsets, registers and bit positions written from the 82093AA datasheet
// (290566-001, section 3) and the Intel SDM vol. 3 11.11 (MSI address and
// data), not from the model. Every expected MSI below is computed by hand:
//   address = 0xfee00000 | destination << 12 | destination mode (logical) << 2
//   data    = vector | delivery mode << 8 | level assert (bit 14) | trigger level << 15
const IOREGSEL = 0x00, IOWIN = 0x10;
const ID = 0x00, VER = 0x01, ARB = 0x02;
const redLow = (pin: number) => 0x10 + 2 * pin;
const redHigh = (pin: number) => 0x11 + 2 * pin;
/** An assert.throws predicate: an IoapicError whose message matches `pattern`. */
const ioapicError = (pattern: RegExp) => (e: unknown) => e instanceof IoapicError && pattern.test(e.message);
const MASKED = 1 << 16, LEVEL = 1 << 15, REMOTE_IRR = 1 << 14, ACTIVE_LOW = 1 << 13, LOGICAL = 1 << 11;
const LOWEST_PRIORITY = 0b001 << 8, NMI = 0b100 << 8;

function u32(value: number): Uint8Array {
  return new Uint8Array([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24]);
}

function makeIoapic(id?: number) {
  const sent: MsiMessage[] = [];
  const routes: Array<[number, MsiMessage | null]> = [];
  const ioapic = new Ioapic({
    sendMsi: (address, data) => sent.push({ address, data }),
    routeChanged: (pin, route) => routes.push([pin, route]),
    id,
  });
  const select = (register: number) => ioapic.write(IOREGSEL, u32(register));
  const readReg = (register: number) => {
    select(register);
    const data = new Uint8Array(4);
    ioapic.read(IOWIN, data);
    return new DataView(data.buffer).getUint32(0, true);
  };
  const writeReg = (register: number, value: number) => {
    select(register);
    ioapic.write(IOWIN, u32(value));
  };
  /** Programs a pin's entry, high dword first as Linux does (ioapic_write_entry). */
  const program = (pin: number, low: number, high = 0) => {
    writeReg(redHigh(pin), high);
    writeReg(redLow(pin), low);
  };
  return { ioapic, sent, routes, readReg, writeReg, program };
}

test('constants', () => {
  assert.is(IOAPIC_PIN_COUNT, 24);
  assert.is(IOAPIC_MMIO_SIZE, 0x100);
  assert.is(IOAPIC_VERSION, 0x11);
});

test('ID: bits 27:24 read/write, the rest read 0; ARB mirrors it; the id option sets it at reset', () => {
  const { readReg, writeReg } = makeIoapic();
  assert.is(readReg(ID), 0);
  writeReg(ID, 0xffff_ffff);
  assert.is(readReg(ID), 0x0f00_0000);
  writeReg(ID, 0x0300_0000);
  assert.is(readReg(ID), 0x0300_0000);
  assert.is(readReg(ARB), 0x0300_0000);
  writeReg(ARB, 0x0500_0000); // read only
  assert.is(readReg(ARB), 0x0300_0000);
  assert.is(makeIoapic(4).readReg(ID), 0x0400_0000);
  assert.throws(() => makeIoapic(16), ioapicError(/IOAPIC id 16 is not 0\.\.15/));
});

test('VER: version 0x11, maximum redirection entry 23 (0x17), read only', () => {
  const { readReg, writeReg } = makeIoapic();
  assert.is(readReg(VER), 0x0017_0011);
  writeReg(VER, 0);
  assert.is(readReg(VER), 0x0017_0011);
});

test('IOREGSEL reads back its low byte at any width', () => {
  const { ioapic } = makeIoapic();
  ioapic.write(IOREGSEL, u32(0x1234_5621));
  const four = new Uint8Array(4);
  ioapic.read(IOREGSEL, four);
  assert.equal([...four], [0x21, 0, 0, 0]);
  ioapic.write(IOREGSEL, new Uint8Array([0x13]));
  const one = new Uint8Array(1);
  ioapic.read(IOREGSEL, one);
  assert.is(one[0], 0x13);
  const eight = new Uint8Array(8).fill(0xaa);
  ioapic.read(IOREGSEL, eight);
  assert.equal([...eight], [0x13, 0, 0, 0, 0, 0, 0, 0]);
  assert.is(ioapic.rejectedReads + ioapic.rejectedWrites, 0);
});

test('IOWIN accesses other than 4 bytes, and other offsets, read 0, write nothing and are counted', () => {
  const { ioapic, readReg } = makeIoapic();
  ioapic.write(IOREGSEL, u32(ID));
  const two = new Uint8Array(2).fill(0xff);
  ioapic.read(IOWIN, two);
  assert.equal([...two], [0, 0]);
  ioapic.write(IOWIN, new Uint8Array([0, 0, 0, 0x05, 0, 0, 0, 0])); // 8 bytes: dropped
  ioapic.write(IOWIN, new Uint8Array([0x05])); // 1 byte: dropped
  const other = new Uint8Array(4).fill(0xff);
  ioapic.read(0x40, other); // the EOI register of version 0x20 IOAPICs: absent here
  assert.equal([...other], [0, 0, 0, 0]);
  ioapic.write(0x40, u32(0x30));
  ioapic.write(0x04, u32(0x30));
  assert.is(ioapic.rejectedReads, 2);
  assert.is(ioapic.rejectedWrites, 4);
  assert.is(readReg(ID), 0);
});

test('unimplemented registers read 0 and ignore writes', () => {
  const { readReg, writeReg } = makeIoapic();
  for (const register of [0x03, 0x0f, 0x10 + 2 * 24, 0x10 + 2 * 24 + 1, 0xff]) {
    writeReg(register, 0xffff_ffff);
    assert.is(readReg(register), 0, `register 0x${register.toString(16)}`);
  }
});

test('redirection entries reset masked, everything else 0', () => {
  const { readReg } = makeIoapic();
  for (let pin = 0; pin < 24; pin++) {
    assert.is(readReg(redLow(pin)), MASKED, `pin ${pin} low`);
    assert.is(readReg(redHigh(pin)), 0, `pin ${pin} high`);
  }
});

test('redirection entries: every writable field reads back; delivery status, remote IRR and reserved bits do not', () => {
  const { readReg, writeReg, ioapic } = makeIoapic();
  writeReg(redLow(5), 0xffff_ffff);
  // vector 7:0, delivery mode 10:8, destination mode 11, polarity 13, trigger 15, mask 16; not 12, 14, 31:17
  assert.is(readReg(redLow(5)), 0x0001_afff);
  writeReg(redHigh(5), 0xffff_ffff);
  assert.is(readReg(redHigh(5)), 0xff00_0000); // destination 63:56; 55:32 reserved
  writeReg(redLow(23), 0x0000_2a5b);
  writeReg(redHigh(23), 0x0300_0000);
  assert.equal(ioapic.redirectionEntry(23), { low: 0x2a5b, high: 0x0300_0000 });
  assert.equal(ioapic.redirectionEntry(5), { low: 0x0001_afff, high: 0xff00_0000 });
  assert.throws(() => ioapic.redirectionEntry(24), ioapicError(/pin 24: the IOAPIC has pins 0\.\.23/));
});

test('MSI encoding of a redirection entry, computed by hand', () => {
  // vector 0x34, fixed, physical, destination 0, edge, active high
  assert.equal(redirectionEntryMsi({ low: 0x34, high: 0 }), { address: 0xfee0_0000, data: 0x4034 });
  // vector 0x41, lowest priority, logical, level, destination 0x0f
  assert.equal(redirectionEntryMsi({ low: 0x41 | LOWEST_PRIORITY | LOGICAL | LEVEL, high: 0x0f00_0000 }), { address: 0xfee0_f004, data: 0xc141 });
  // NMI, physical, destination 3: vector ignored by the APIC but carried
  assert.equal(redirectionEntryMsi({ low: 0x02 | NMI, high: 0x0300_0000 }), { address: 0xfee0_3000, data: 0x4402 });
  // destination 0xff, polarity and mask do not appear in the message
  assert.equal(redirectionEntryMsi({ low: 0xfe | ACTIVE_LOW | MASKED, high: 0xff00_0000 }), { address: 0xfeef_f000, data: 0x40fe });
});

test('edge pin: one message per rising edge, none while held high or lowered', () => {
  const { ioapic, sent, program } = makeIoapic();
  program(4, 0x34, 0x0100_0000); // vector 0x34, fixed, physical APIC 1, edge, unmasked
  ioapic.setIrqLine(4, true);
  assert.equal(sent, [{ address: 0xfee0_1000, data: 0x4034 }]);
  ioapic.setIrqLine(4, true); // still high: no edge
  ioapic.setIrqLine(4, false);
  assert.is(sent.length, 1);
  ioapic.setIrqLine(4, true);
  assert.is(sent.length, 2);
  ioapic.setIrqLine(4, false);
  ioapic.pulse(4);
  ioapic.pulse(4);
  assert.is(sent.length, 4);
  assert.equal(ioapic.redirectionEntry(4).low & REMOTE_IRR, 0); // edge entries never set remote IRR
});

test('edge pin: an edge while masked is lost, unmasking sends nothing', () => {
  const { ioapic, sent, program } = makeIoapic();
  program(0, 0x30 | MASKED);
  ioapic.pulse(0);
  ioapic.setIrqLine(0, true);
  program(0, 0x30);
  assert.equal(sent, []);
  ioapic.setIrqLine(0, false);
  ioapic.pulse(0);
  assert.equal(sent, [{ address: 0xfee0_0000, data: 0x4030 }]);
});

test('level pin: sends while asserted, remote IRR holds further messages until the EOI', () => {
  const { ioapic, sent, program, readReg } = makeIoapic();
  program(10, 0x51 | LEVEL | ACTIVE_LOW);
  ioapic.setIrqLine(10, true);
  assert.equal(sent, [{ address: 0xfee0_0000, data: 0xc051 }]);
  assert.is(readReg(redLow(10)), 0x51 | LEVEL | ACTIVE_LOW | REMOTE_IRR);
  ioapic.setIrqLine(10, true); // asserted again: remote IRR set, nothing new
  assert.is(sent.length, 1);
  ioapic.endOfInterrupt(0x51); // still asserted: sent again
  assert.is(sent.length, 2);
  assert.ok(readReg(redLow(10)) & REMOTE_IRR);
  ioapic.setIrqLine(10, false);
  ioapic.endOfInterrupt(0x51); // deasserted: clears remote IRR, sends nothing
  assert.is(sent.length, 2);
  assert.is(readReg(redLow(10)), 0x51 | LEVEL | ACTIVE_LOW);
  ioapic.setIrqLine(10, true);
  assert.is(sent.length, 3);
});

test('EOI: only level entries with that vector; other vectors and edge entries are untouched', () => {
  const { ioapic, sent, program, readReg } = makeIoapic();
  program(9, 0x60 | LEVEL);
  program(11, 0x61 | LEVEL);
  program(3, 0x60); // edge, same vector
  ioapic.setIrqLine(9, true);
  ioapic.setIrqLine(11, true);
  ioapic.setIrqLine(3, true);
  assert.is(sent.length, 3);
  ioapic.endOfInterrupt(0x61);
  assert.equal(sent[3], { address: 0xfee0_0000, data: 0xc061 });
  assert.ok(readReg(redLow(9)) & REMOTE_IRR);
  ioapic.endOfInterrupt(0x70);
  assert.is(sent.length, 4);
  ioapic.endOfInterrupt(0x60); // pin 9 again; pin 3 is edge and held high: nothing
  assert.is(sent.length, 5);
  assert.equal(sent[4].data, 0xc060);
  assert.throws(() => ioapic.endOfInterrupt(256), ioapicError(/vector 256: a vector is 0\.\.255/));
});

test('level pin: masked sends nothing; unmasking while asserted sends', () => {
  const { ioapic, sent, program, readReg } = makeIoapic();
  program(16, 0x70 | LEVEL | MASKED, 0x0200_0000);
  ioapic.setIrqLine(16, true);
  ioapic.endOfInterrupt(0x70);
  assert.equal(sent, []);
  assert.is(readReg(redLow(16)) & REMOTE_IRR, 0);
  program(16, 0x70 | LEVEL, 0x0200_0000);
  assert.equal(sent, [{ address: 0xfee0_2000, data: 0xc070 }]);
  program(16, 0x70 | LEVEL, 0x0200_0000); // remote IRR is set: rewriting does not resend
  assert.is(sent.length, 1);
});

test('switching an entry to edge clears remote IRR (Linux EOIs pins this way); software cannot set it', () => {
  const { ioapic, program, readReg } = makeIoapic();
  program(7, 0x48 | LEVEL);
  ioapic.setIrqLine(7, true);
  assert.ok(readReg(redLow(7)) & REMOTE_IRR);
  program(7, 0x48 | LEVEL | MASKED); // keeps remote IRR
  assert.ok(readReg(redLow(7)) & REMOTE_IRR);
  program(7, 0x48 | MASKED); // edge: cleared
  assert.is(readReg(redLow(7)), 0x48 | MASKED);
  program(7, 0x48 | LEVEL | MASKED | REMOTE_IRR);
  assert.is(readReg(redLow(7)), 0x48 | LEVEL | MASKED);
});

test('routeChanged reports each pin write with its message, or null while masked', () => {
  const { routes, program } = makeIoapic();
  program(2, 0x30 | MASKED, 0x0100_0000);
  program(2, 0x30 | LEVEL, 0x0100_0000);
  assert.equal(routes, [
    [2, null],
    [2, null],
    [2, null], // the high dword is written while the low dword still says masked
    [2, { address: 0xfee0_1000, data: 0xc030 }],
  ]);
});

test('ioapicInterruptLine pulses its pin', () => {
  const { ioapic, sent, program } = makeIoapic();
  program(4, 0x34);
  const line = ioapicInterruptLine(ioapic, 4);
  line.trigger();
  line.trigger();
  assert.equal(sent, [{ address: 0xfee0_0000, data: 0x4034 }, { address: 0xfee0_0000, data: 0x4034 }]);
  assert.throws(() => ioapicInterruptLine(ioapic, 24), ioapicError(/pin 24/));
});

test('pins outside 0..23 are a VMM bug and throw', () => {
  const { ioapic } = makeIoapic();
  assert.throws(() => ioapic.setIrqLine(24, true), ioapicError(/cannot set the line of IOAPIC pin 24: the IOAPIC has pins 0\.\.23/));
  assert.throws(() => ioapic.pulse(-1), ioapicError(/pulse IOAPIC pin -1/));
  assert.throws(() => ioapic.setIrqLine(1.5, true), ioapicError(/pin 1\.5/));
});

test('snapshot() round-trips through JSON and restore() on a fresh Ioapic keeps behaving the same', () => {
  const first = makeIoapic();
  first.writeReg(ID, 0x0200_0000);
  first.program(10, 0x51 | LEVEL, 0x0100_0000);
  first.program(4, 0x34);
  first.ioapic.setIrqLine(10, true); // remote IRR set, line held
  first.ioapic.write(IOREGSEL, u32(redLow(4)));
  const state = JSON.parse(JSON.stringify(first.ioapic.snapshot())) as IoapicState;
  assert.is(state.ioregsel, redLow(4));
  assert.is(state.id, 2);
  assert.is(state.lineLevels[10], true);

  const sent: MsiMessage[] = [];
  const routes: Array<[number, MsiMessage | null]> = [];
  const restored = new Ioapic({ sendMsi: (address, data) => sent.push({ address, data }), routeChanged: (pin, route) => routes.push([pin, route]) });
  restored.restore(state);
  assert.equal(restored.snapshot(), first.ioapic.snapshot());
  // Restore sends no interrupt, but announces every pin's route (the host's table must follow): pins 4 and 10 unmasked.
  assert.is(routes.length, 24);
  assert.equal(routes.filter(([, route]) => route !== null).map(([pin]) => pin), [4, 10]);
  assert.equal(sent, []);
  const data = new Uint8Array(4);
  restored.read(IOWIN, data); // IOREGSEL survived: pin 4's low dword
  assert.equal([...data], [0x34, 0, 0, 0]);
  restored.setIrqLine(10, true); // remote IRR survived: nothing
  assert.equal(sent, []);
  restored.endOfInterrupt(0x51);
  assert.equal(sent, [{ address: 0xfee0_1000, data: 0xc051 }]);
});

test('restore() is in place: the same Ioapic sends nothing then, and its MSIs and routes after', () => {
  const { ioapic, sent, routes, program, readReg } = makeIoapic();
  program(4, 0x34);
  const saved = ioapic.snapshot();
  program(4, 0x35 | MASKED);
  ioapic.setIrqLine(9, true);
  sent.length = 0;
  routes.length = 0;
  ioapic.restore(saved);
  assert.equal(sent, []);
  assert.equal(routes[4], [4, { address: 0xfee0_0000, data: 0x4034 }], 'the restored route of pin 4 is announced');
  assert.is(routes.filter(([, route]) => route !== null).length, 1);
  assert.is(readReg(redLow(4)), 0x34);
  ioapic.pulse(4); // the saved, unmasked entry: the same sendMsi gets it
  assert.equal(sent, [{ address: 0xfee0_0000, data: 0x4034 }]);
  program(4, 0x36);
  assert.equal(routes.at(-1), [4, { address: 0xfee0_0000, data: 0x4036 }]);
  saved.redirectionTable[4].low = 0x99; // the snapshot shares nothing with the model
  assert.is(readReg(redLow(4)), 0x36);
});

test('restore() refuses states it did not produce, in one line, and changes nothing', () => {
  const { ioapic, sent, routes, program } = makeIoapic(3);
  program(4, 0x34);
  const good = ioapic.snapshot();
  sent.length = 0;
  routes.length = 0;
  const bad = (state: unknown, pattern: RegExp) =>
    assert.throws(() => ioapic.restore(state as IoapicState), (e: unknown) => ioapicError(pattern)(e) && !(e as Error).message.includes('\n'));
  bad({ ...good, redirectionTable: good.redirectionTable.slice(1) }, /cannot restore IOAPIC state: redirectionTable has 23 entries, not 24/);
  bad({ ...good, lineLevels: [] }, /lineLevels has 0 entries, not 24/);
  bad({ ...good, ioregsel: 256 }, /ioregsel is 256, not a byte/);
  bad({ ...good, id: 99 }, /id is 99, not a 4-bit APIC id 0\.\.15/);
  // Stricter than fromState was: levels must be booleans, reserved and read-only bits clear.
  bad({ ...good, lineLevels: good.lineLevels.map((l, i) => (i === 23 ? 1 : l)) }, /lineLevels\[23\] is 1, not true or false/);
  bad({ ...good, redirectionTable: good.redirectionTable.map((e, i) => (i === 5 ? { ...e, low: e.low | (1 << 12) } : e)) }, /redirectionTable\[5\]\.low is 69632, not a redirection entry low dword/);
  bad({ ...good, redirectionTable: good.redirectionTable.map((e, i) => (i === 5 ? { ...e, high: 1 } : e)) }, /redirectionTable\[5\]\.high is 1, not a redirection entry high dword/);
  bad({ ...good, redirectionTable: good.redirectionTable.map((e, i) => (i === 5 ? { low: e.low } : e)) }, /redirectionTable\[5\]\.high is missing/);
  // Everything else good and changed: not applied either.
  bad({ ...good, id: 7, ioregsel: 0x12, redirectionTable: good.redirectionTable.map(() => ({ low: 0x40, high: 0 })), lineLevels: 'high' }, /lineLevels is "high", not an array/);
  assert.equal(ioapic.snapshot(), good);
  assert.equal(sent, []);
  assert.equal(routes, []);
});

test.run();
