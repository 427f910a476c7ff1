import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { HIGH_MEMORY_START, MPTABLE_START } from '../../../../src/main/layout';
import { MAX_MPTABLE_CPUS, MpTableError, PciInterruptRoute, writeMpTable } from '../../../../src/main/arch/mptable';

// Expected values below are worked out by hand from MP Spec 1.4 chapter 4
// (byte layouts as in Linux's asm/mpspec_def.h), not taken from the code.

const HEADER_SIZE = 44;
const TABLE_ADDRESS = 0x9fc10; // MPTABLE_START + 16: the table follows the floating pointer

function lowMemory(size = HIGH_MEMORY_START): GuestMemory {
  return GuestMemory.allocate([{ guestAddress: 0, size }]);
}

function bytesAt(mem: GuestMemory, address: number, length: number): number[] {
  return Array.from(mem.read(address, length));
}

function ascii(text: string): number[] {
  return Array.from(text, (c) => c.charCodeAt(0));
}

function sumMod256(bytes: Uint8Array): number {
  return bytes.reduce((sum, byte) => (sum + byte) & 0xff, 0);
}

test('floating pointer for 1 CPU: signature, physptr, length, revision, checksum', () => {
  const mem = lowMemory();
  writeMpTable(mem, { cpuCount: 1 });
  // Bytes sum without checksum: '_MP_' 347 + physptr 0x10+0xfc+0x09 277 + 1 + 4 = 629 = 0x275 -> checksum 0x100-0x75 = 0x8b.
  assert.equal(bytesAt(mem, 0x9fc00, 16), [
    0x5f, 0x4d, 0x50, 0x5f, // "_MP_"
    0x10, 0xfc, 0x09, 0x00, // physptr 0x9fc10
    0x01, // length in 16-byte paragraphs
    0x04, // spec 1.4
    0x8b, // checksum
    0x00, // feature1 0: configuration table present
    0x00, 0x00, 0x00, 0x00,
  ]);
});

test('configuration table header for 1 CPU', () => {
  const mem = lowMemory();
  writeMpTable(mem, { cpuCount: 1 });
  // length = 44 header + 20 cpu + 2*8 bus + 8 ioapic + 16*8 ISA + 2*8 local = 232 = 0xe8; 22 entries = 0x16.
  // Checksum: header 2316 + cpu 32 + PCI bus 317 + ISA bus 319 + ioapic 467 + ISA intsrc 320 + LINT0 8 + LINT1 262
  // = 4041 = 0xfc9 -> 0x100 - 0xc9 = 0x37.
  assert.equal(bytesAt(mem, TABLE_ADDRESS, HEADER_SIZE), [
    ...ascii('PCMP'),
    0xe8, 0x00, // length
    0x04, // spec
    0x37, // checksum
    ...ascii('TSVMM   '), // OEM id
    ...ascii('TSVMM KVM   '), // product id
    0, 0, 0, 0, // oemptr
    0, 0, // oemsize
    0x16, 0x00, // entry count
    0x00, 0x00, 0xe0, 0xfe, // LAPIC at 0xfee00000
    0, 0, 0, 0, // extended table length, checksum, reserved
  ]);
});

test('entries for 1 CPU: processor, buses, IOAPIC, ISA interrupts, local interrupts', () => {
  const mem = lowMemory();
  const placement = writeMpTable(mem, { cpuCount: 1 });
  let address = TABLE_ADDRESS + HEADER_SIZE;
  const next = (length: number): number[] => {
    const bytes = bytesAt(mem, address, length);
    address += length;
    return bytes;
  };
  // type 0, APIC id 0, version 0x14, enabled|BSP, signature 0x600, features APIC|FPU 0x201
  assert.equal(next(20), [0, 0, 0x14, 0x03, 0x00, 0x06, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(next(8), [1, 0, ...ascii('PCI   ')]);
  assert.equal(next(8), [1, 1, ...ascii('ISA   ')]);
  // type 2, IOAPIC id 1 (= cpu count), version 0x11, usable, at 0xfec00000
  assert.equal(next(8), [2, 1, 0x11, 0x01, 0x00, 0x00, 0xc0, 0xfe]);
  for (let irq = 0; irq < 16; irq++) {
    // type 3, INT, flags conform to bus, ISA bus 1, IRQ n -> IOAPIC 1 pin n
    assert.equal(next(8), [3, 0, 0, 0, 1, irq, 1, irq], `ISA IRQ ${irq}`);
  }
  // type 4, ExtINT, ISA bus, BSP (APIC 0) LINT0
  assert.equal(next(8), [4, 3, 0, 0, 1, 0, 0x00, 0]);
  // type 4, NMI, ISA bus, all local APICs LINT1
  assert.equal(next(8), [4, 1, 0, 0, 1, 0, 0xff, 1]);
  assert.equal(placement, { start: MPTABLE_START, end: address });
  assert.is(address, 0x9fc00 + 16 + 232);
});

test('second and later vCPUs are enabled application processors with their index as APIC id', () => {
  const mem = lowMemory();
  writeMpTable(mem, { cpuCount: 3 });
  const cpu = (index: number) => bytesAt(mem, TABLE_ADDRESS + HEADER_SIZE + 20 * index, 4);
  assert.equal(cpu(0), [0, 0, 0x14, 0x03]);
  assert.equal(cpu(1), [0, 1, 0x14, 0x01]);
  assert.equal(cpu(2), [0, 2, 0x14, 0x01]);
  // IOAPIC id is 3 for 3 CPUs: after 3 CPU entries and 2 buses
  assert.equal(bytesAt(mem, TABLE_ADDRESS + HEADER_SIZE + 60 + 16, 2), [2, 3]);
});

/** Reads the tables back the way Linux's mpparse.c does and returns what it found. */
function walkLikeLinux(mem: GuestMemory) {
  // smp_scan_config: 16-byte steps through the last KiB of base memory.
  let floating = -1;
  for (let address = 639 * 0x400; address < 640 * 0x400; address += 16) {
    const candidate = mem.read(address, 16);
    if (String.fromCharCode(...candidate.subarray(0, 4)) !== '_MP_') continue;
    if (candidate[8] !== 1 || sumMod256(candidate) !== 0) continue;
    if (candidate[9] !== 1 && candidate[9] !== 4) continue;
    floating = address;
    break;
  }
  assert.ok(floating >= 0, 'no valid floating pointer found');
  assert.is(mem.readU8(floating + 11), 0, 'feature1 must be 0 for a table to be read');
  const tableAddress = mem.readU32(floating + 4);
  // smp_check_mpc
  const length = mem.readU16(tableAddress + 4);
  const table = mem.read(tableAddress, length);
  assert.is(String.fromCharCode(...table.subarray(0, 4)), 'PCMP');
  assert.is(sumMod256(table), 0, 'configuration table checksum');
  assert.ok(table[6] === 1 || table[6] === 4, 'spec revision');
  assert.is(mem.readU32(tableAddress + 36), 0xfee00000);
  // smp_read_mpc: entries sized by type until length is used up
  const sizes: Record<number, number> = { 0: 20, 1: 8, 2: 8, 3: 8, 4: 8 };
  const counts = [0, 0, 0, 0, 0];
  const apicIds: number[] = [];
  let bsp = -1;
  let offset = 44;
  while (offset < length) {
    const type = table[offset];
    assert.ok(type in sizes, `unknown entry type ${type} at offset ${offset}`);
    if (type === 0) {
      apicIds.push(table[offset + 1]);
      if (table[offset + 3] & 2) bsp = table[offset + 1];
    }
    counts[type]++;
    offset += sizes[type];
  }
  assert.is(offset, length, 'entries end exactly at the table length');
  const entryCount = counts.reduce((a, b) => a + b, 0);
  assert.is(mem.readU16(tableAddress + 34), entryCount, 'header entry count');
  return { floating, tableAddress, length, counts, apicIds, bsp, floatingBytes: mem.read(floating, 16), table };
}

for (const cpuCount of [1, 2, 8, 64, MAX_MPTABLE_CPUS]) {
  test(`${cpuCount} CPUs: checksums are 0 mod 256 and Linux's walk finds every entry`, () => {
    const mem = lowMemory();
    const placement = writeMpTable(mem, { cpuCount });
    const found = walkLikeLinux(mem);
    assert.is(sumMod256(found.floatingBytes), 0);
    assert.is(sumMod256(found.table), 0);
    assert.is(found.floating, 0x9fc00);
    assert.is(found.tableAddress, 0x9fc10);
    assert.equal(found.counts, [cpuCount, 2, 1, 16, 2]);
    assert.equal(found.apicIds, Array.from({ length: cpuCount }, (_, i) => i));
    assert.is(found.bsp, 0);
    assert.is(found.length, 44 + 20 * cpuCount + 16 + 8 + 128 + 16);
    assert.is(placement.end, 0x9fc10 + found.length);
  });
}

test('MAX_MPTABLE_CPUS keeps every APIC id, the IOAPIC included, below 0xff', () => {
  assert.is(MAX_MPTABLE_CPUS, 254);
  const mem = lowMemory();
  const placement = writeMpTable(mem, { cpuCount: MAX_MPTABLE_CPUS });
  // IOAPIC entry follows 254 CPUs and 2 buses: id 254 = 0xfe
  assert.equal(bytesAt(mem, 0x9fc10 + 44 + 254 * 20 + 16, 2), [2, 0xfe]);
  // 16 + 44 + 5080 + 168 = 5308 = 0x14bc bytes from 0x9fc00
  assert.is(placement.end, 0xa10bc);
});

test('0, too many and fractional CPU counts are refused with the limit in the message', () => {
  for (const cpuCount of [0, MAX_MPTABLE_CPUS + 1, 1.5, -1]) {
    try {
      writeMpTable(lowMemory(), { cpuCount });
      assert.unreachable(`cpuCount ${cpuCount} accepted`);
    } catch (error) {
      assert.instance(error, MpTableError);
      assert.match((error as Error).message, '1 to 254');
      assert.match((error as Error).message, '--cpus');
    }
  }
});

test('a table that does not fit in guest RAM is refused and memory is left untouched', () => {
  // RAM up to 0xa0000 holds the floating pointer and 228 + 20n bytes: n = 39 fits (1008 bytes), 40 does not (1028).
  const fits = lowMemory(0xa0000);
  assert.is(writeMpTable(fits, { cpuCount: 39 }).end, 0x9fc00 + 1008);
  const tooSmall = lowMemory(0xa0000);
  assert.throws(() => writeMpTable(tooSmall, { cpuCount: 40 }), (error: unknown) => error instanceof MpTableError && /guest RAM/.test((error as Error).message));
  assert.is(sumMod256(tooSmall.read(0x9fc00, 0x400)), 0);
  assert.ok(tooSmall.read(0x9fc00, 0x400).every((byte) => byte === 0));
  assert.throws(() => writeMpTable(lowMemory(0x9fc00), { cpuCount: 1 }), (error: unknown) => error instanceof MpTableError);
});

test('PCI routes: ISA lines give up their IRQ and PCI entries name device and pin', () => {
  const mem = lowMemory();
  writeMpTable(mem, {
    cpuCount: 1,
    pciInterrupts: [
      { device: 1, pin: 'INTA', irq: 9 },
      { device: 2, pin: 'INTB', irq: 10 },
    ],
  });
  const found = walkLikeLinux(mem);
  assert.equal(found.counts, [1, 2, 1, 16, 2]);
  const interrupts = Array.from({ length: 16 }, (_, i) => bytesAt(mem, 0x9fc10 + 44 + 20 + 24 + 8 * i, 8));
  const isaIrqs = interrupts.filter((entry) => entry[4] === 1).map((entry) => entry[5]);
  assert.equal(isaIrqs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15]);
  // PCI bus 0, source IRQ = device << 2 | pin (INTA 0, INTB 1), IOAPIC 1, pin = irq
  assert.equal(interrupts[14], [3, 0, 0, 0, 0, 0x04, 1, 9]);
  assert.equal(interrupts[15], [3, 0, 0, 0, 0, 0x09, 1, 10]);
});

test('bad PCI routes are refused', () => {
  const bad = [
    { device: 1, pin: 'INTA', irq: 8 },
    { device: 1, pin: 'INTA', irq: 24 },
    { device: 32, pin: 'INTA', irq: 9 },
    { device: 1, pin: 'INTE', irq: 9 },
  ] as const;
  for (const route of bad) {
    // The bad pin is not a PciInterruptPin, so the route is cast past the type check on purpose.
    assert.throws(() => writeMpTable(lowMemory(), { cpuCount: 1, pciInterrupts: [route as unknown as PciInterruptRoute] }), (error: unknown) => error instanceof MpTableError);
  }
  assert.throws(
    () => writeMpTable(lowMemory(), { cpuCount: 1, pciInterrupts: [{ device: 3, pin: 'INTA', irq: 9 }, { device: 3, pin: 'INTA', irq: 10 }] }),
    (error: unknown) => error instanceof MpTableError && /twice/.test((error as Error).message),
  );
});

test.run();
