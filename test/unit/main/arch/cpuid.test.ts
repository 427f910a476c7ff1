import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuidEntry } from '../../../../src/shared/kvm-structs';
import { CpuidError, shapeCpuid } from '../../../../src/main/arch/cpuid';

/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX: entries whose subleaf (index) matters. */
const SIGNIFICANT_INDEX = 1;

function leaf(fn: number, index: number, eax: number, ebx: number, ecx: number, edx: number, flags = 0): CpuidEntry {
  return { function: fn, index, flags, eax, ebx, ecx, edx };
}

/** A made-up KVM_GET_SUPPORTED_CPUID result shaped like a 16-thread Intel host's. */
function supported(): CpuidEntry[] {
  return [
    leaf(0x0, 0, 0x1f, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
    // host APIC id 5, 16 logical, CLFLUSH 8, brand index 0; ECX = SSE3 only; EDX = FPU only.
    leaf(0x1, 0, 0x0008_06ea, 0x0510_0805, 0x0000_0001, 0x0000_0001),
    leaf(0x4, 0, 0x1c00_4121, 0x01c0_003f, 0x3f, 0, SIGNIFICANT_INDEX),
    leaf(0x4, 3, 0x1c03_c163, 0x03c0_003f, 0x1fff, 6, SIGNIFICANT_INDEX),
    leaf(0x6, 0, 0x0000_0004, 0, 0x0000_0009, 0),
    leaf(0x7, 0, 0, 0x029c_67af, 0x0040_0004, 0xbc00_0400, SIGNIFICANT_INDEX),
    leaf(0xa, 0, 0x0730_0404, 0, 0, 0x0000_0603),
    leaf(0xb, 0, 5, 0x10, 0x100, 0x17, SIGNIFICANT_INDEX),
    leaf(0xb, 1, 7, 0x20, 0x201, 0x17, SIGNIFICANT_INDEX),
    leaf(0xb, 2, 0, 0, 0x2, 0x17, SIGNIFICANT_INDEX),
    leaf(0x1f, 0, 5, 0x10, 0x100, 0x17, SIGNIFICANT_INDEX),
    leaf(0x1f, 1, 7, 0x20, 0x201, 0x17, SIGNIFICANT_INDEX),
    leaf(0x4000_0000, 0, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
    leaf(0x4000_0001, 0, 0x0100_7afb, 0, 0, 0),
    leaf(0x8000_0001, 0, 0, 0, 0x0000_0121, 0x2c10_0800),
  ];
}

function find(entries: CpuidEntry[], fn: number, index = 0): CpuidEntry {
  const entry = entries.find((e) => e.function === fn && e.index === index);
  if (!entry) throw new Error(`leaf ${fn.toString(16)}.${index} missing`);
  return entry;
}

test('vCPU 3 of 8: leaf 1', () => {
  const shaped = shapeCpuid(supported(), { vcpuId: 3, vcpuCount: 8 });
  // EBX: APIC id 3 <<24 | 8 logical <<16 | CLFLUSH 8 <<8 | brand index 0
  // ECX: hypervisor(31) | TSC-deadline(24) | x2APIC(21) | SSE3(0); EDX: HTT(28) | FPU(0)
  assert.equal(find(shaped, 0x1), leaf(0x1, 0, 0x0008_06ea, 0x0308_0800, 0x8120_0001, 0x1000_0001));
});

test('vCPU 3 of 8: leaf 4 says 4 cores (two threads each) in EAX[31:26] of every subleaf', () => {
  const shaped = shapeCpuid(supported(), { vcpuId: 3, vcpuCount: 8 });
  assert.equal(find(shaped, 0x4, 0), leaf(0x4, 0, 0x0c00_4121, 0x01c0_003f, 0x3f, 0, SIGNIFICANT_INDEX));
  assert.equal(find(shaped, 0x4, 3), leaf(0x4, 3, 0x0c03_c163, 0x03c0_003f, 0x1fff, 6, SIGNIFICANT_INDEX));
});

test('vCPU 3 of 8: leaf 6 loses energy-performance bias (ECX bit 3)', () => {
  const shaped = shapeCpuid(supported(), { vcpuId: 3, vcpuCount: 8 });
  assert.equal(find(shaped, 0x6), leaf(0x6, 0, 0x4, 0, 0x1, 0));
});

test('vCPU 3 of 8: leaves 0xB and 0x1F describe 2 threads x 4 cores, x2APIC id 3', () => {
  const shaped = shapeCpuid(supported(), { vcpuId: 3, vcpuCount: 8 });
  for (const fn of [0xb, 0x1f]) {
    // SMT level: shift 1, 2 threads, type 1; core level: shift ceil(log2 8) = 3, 8 logical, type 2.
    assert.equal(find(shaped, fn, 0), leaf(fn, 0, 1, 2, 0x100, 3, SIGNIFICANT_INDEX));
    assert.equal(find(shaped, fn, 1), leaf(fn, 1, 3, 8, 0x201, 3, SIGNIFICANT_INDEX));
  }
  assert.equal(find(shaped, 0xb, 2), leaf(0xb, 2, 0, 0, 0, 3, SIGNIFICANT_INDEX));
});

test('vCPU 3 of 8: leaves 0, 7, 0xA, hypervisor and extended leaves pass through', () => {
  const original = supported();
  const shaped = shapeCpuid(original, { vcpuId: 3, vcpuCount: 8 });
  for (const [fn, index] of [[0x0, 0], [0x7, 0], [0xa, 0], [0x4000_0000, 0], [0x4000_0001, 0], [0x8000_0001, 0]]) {
    assert.equal(find(shaped, fn, index), find(original, fn, index), `leaf ${fn.toString(16)}`);
  }
});

test('the result is a new array in the input order, the input untouched', () => {
  const original = supported();
  const snapshot = supported();
  const shaped = shapeCpuid(original, { vcpuId: 3, vcpuCount: 8 });
  assert.is.not(shaped, original);
  assert.equal(original, snapshot);
  assert.equal(shaped.map((e) => [e.function, e.index]), snapshot.map((e) => [e.function, e.index]));
  shaped[0].eax = 0;
  assert.is(original[0].eax, 0x1f, 'entries are copies');
});

test('a single vCPU: no HTT, no count, no cores, one thread per level', () => {
  const shaped = shapeCpuid(supported(), { vcpuId: 0, vcpuCount: 1 });
  assert.equal(find(shaped, 0x1), leaf(0x1, 0, 0x0008_06ea, 0x0000_0800, 0x8120_0001, 0x0000_0001));
  assert.is(find(shaped, 0x4, 0).eax, 0x0000_4121);
  assert.equal(find(shaped, 0xb, 0), leaf(0xb, 0, 0, 1, 0x100, 0, SIGNIFICANT_INDEX));
  assert.equal(find(shaped, 0xb, 1), leaf(0xb, 1, 0, 1, 0x201, 0, SIGNIFICANT_INDEX));
});

test('an odd count (vCPU 2 of 3): one core holding every thread', () => {
  const shaped = shapeCpuid(supported(), { vcpuId: 2, vcpuCount: 3 });
  assert.is(find(shaped, 0x1).ebx, 0x0203_0800);
  assert.is(find(shaped, 0x4, 0).eax, 0x0000_4121, 'one core: field 0');
  assert.equal(find(shaped, 0xb, 0), leaf(0xb, 0, 2, 3, 0x100, 2, SIGNIFICANT_INDEX));
  assert.equal(find(shaped, 0xb, 1), leaf(0xb, 1, 2, 3, 0x201, 2, SIGNIFICANT_INDEX));
});

test('impossible topologies are CpuidErrors', () => {
  for (const topology of [{ vcpuId: 8, vcpuCount: 8 }, { vcpuId: -1, vcpuCount: 8 }, { vcpuId: 0, vcpuCount: 0 }, { vcpuId: 0, vcpuCount: 256 }]) {
    assert.throws(() => shapeCpuid(supported(), topology), (e: unknown) => e instanceof CpuidError, JSON.stringify(topology));
  }
});

test.run();
