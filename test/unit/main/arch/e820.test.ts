import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E820Error, e820Map } from '../../../../src/main/arch/e820';

const GIB = 1024 * 1024 * 1024;
const MIB = 1024 * 1024;
const RAM = 1;
const RESERVED = 2;

// Every map ends (below 4 GiB) with KVM's identity-map page 0xfffbc000 and the
// three TSS pages 0xfffbd000..0xfffc0000: 4 pages reserved.
const KVM_PAGES = { address: 0xfffbc000, size: 0x4000, type: RESERVED };
// RAM below the EBDA at 0x9fc00: 639 KiB.
const LOW_RAM = { address: 0, size: 0x9fc00, type: RAM };

test('128 MiB: low RAM, then 1 MiB..128 MiB', () => {
  assert.equal(e820Map([{ guestAddress: 0, size: 128 * MIB }]), [
    LOW_RAM,
    { address: 0x100000, size: 0x8000000 - 0x100000, type: RAM },
    KVM_PAGES,
  ]);
});

test('3 GiB fits below the gap: 1 MiB..0xc0000000', () => {
  assert.equal(e820Map([{ guestAddress: 0, size: 3 * GIB }]), [
    LOW_RAM,
    { address: 0x100000, size: 0xbff00000, type: RAM },
    KVM_PAGES,
  ]);
});

test('exactly 3.25 GiB ends at the gap and needs no RAM above 4 GiB', () => {
  assert.equal(e820Map([{ guestAddress: 0, size: 0xd0000000 }]), [
    LOW_RAM,
    { address: 0x100000, size: 0xcff00000, type: RAM },
    KVM_PAGES,
  ]);
});

test('4 GiB: 3.25 GiB below the gap and the last 0.75 GiB from 4 GiB', () => {
  assert.equal(e820Map([{ guestAddress: 0, size: 0xd0000000 }, { guestAddress: 0x100000000, size: 0x30000000 }]), [
    LOW_RAM,
    { address: 0x100000, size: 0xcff00000, type: RAM },
    KVM_PAGES,
    { address: 0x100000000, size: 0x30000000, type: RAM },
  ]);
});

test('6 GiB: 2.75 GiB from 4 GiB', () => {
  assert.equal(e820Map([{ guestAddress: 0x100000000, size: 0xb0000000 }, { guestAddress: 0, size: 0xd0000000 }]), [
    LOW_RAM,
    { address: 0x100000, size: 0xcff00000, type: RAM },
    KVM_PAGES,
    { address: 0x100000000, size: 0xb0000000, type: RAM },
  ]);
});

test('a guest smaller than 639 KiB gets one low entry', () => {
  assert.equal(e820Map([{ guestAddress: 0, size: 0x80000 }]), [{ address: 0, size: 0x80000, type: RAM }, KVM_PAGES]);
});

test('RAM inside the 32-bit gap is an error, not silently dropped', () => {
  assert.throws(
    () => e820Map([{ guestAddress: 0, size: 0xd0001000 }]),
    (error: Error) => error instanceof E820Error && /0x0\.\.0xd0001000 overlaps the 32-bit MMIO gap 0xd0000000\.\.0x100000000/.test(error.message),
  );
});

test('overlapping RAM regions are an error', () => {
  assert.throws(() => e820Map([{ guestAddress: 0, size: 2 * MIB }, { guestAddress: MIB, size: 2 * MIB }]), (error: Error) => error instanceof E820Error);
});

// One low region gives 3 entries (low RAM, RAM from 1 MiB, KVM pages); each extra region above 4 GiB adds one.
function regionsAbove4G(count: number): Array<{ guestAddress: number; size: number }> {
  return Array.from({ length: count }, (_, i) => ({ guestAddress: 4 * GIB + i * 2 * MIB, size: MIB }));
}

test('128 entries, the zero page limit, are accepted', () => {
  assert.is(e820Map([{ guestAddress: 0, size: 128 * MIB }, ...regionsAbove4G(125)]).length, 128);
});

test('129 entries are refused with the count and the limit', () => {
  assert.throws(
    () => e820Map([{ guestAddress: 0, size: 128 * MIB }, ...regionsAbove4G(126)]),
    (error: Error) => error instanceof E820Error && /needs 129 e820 entries but the zero page holds 128/.test(error.message),
  );
});

test.run();
