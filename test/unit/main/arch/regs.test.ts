import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Segment, Sregs, zeroRegs } from '../../../../src/shared/kvm-structs';
import { bootFpu, bootRegs, bootSregs, pvhBootRegs, pvhBootSregs } from '../../../../src/main/arch/regs';

/** A segment as KVM resets one (real mode, 64 KiB limit). */
function resetSegment(selector: number, type: number): Segment {
  return { base: 0n, limit: 0xffff, selector, type, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
}

/** Roughly what KVM_GET_SREGS returns for a fresh vCPU (SDM 9.1.1 reset state). */
function resetSregs(): Sregs {
  return {
    cs: { ...resetSegment(0xf000, 0xb), base: 0xffff_0000n },
    ds: resetSegment(0, 3), es: resetSegment(0, 3), fs: resetSegment(0, 3), gs: resetSegment(0, 3), ss: resetSegment(0, 3),
    tr: { ...resetSegment(0, 0xb), s: 0 },
    ldt: { ...resetSegment(0, 2), s: 0 },
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0xffff },
    cr0: 0x6000_0010n, // CD | NW | ET
    cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n,
    apic_base: 0xfee0_0900n, // LAPIC at 0xfee00000, enabled, BSP
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

const FLAT_DATA = (selector: number): Segment => ({
  base: 0n, limit: 0xffff_ffff, selector, type: 3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0,
});

test('bootRegs: Linux 64-bit entry registers', () => {
  assert.equal(bootRegs(0x100_0000), {
    ...zeroRegs(), rip: 0x100_0000n, rsp: 0x8000n, rbp: 0x8000n, rsi: 0x7000n, rflags: 2n,
  });
});

test('pvhBootRegs: PVH entry registers', () => {
  assert.equal(pvhBootRegs(0x100_0123), { ...zeroRegs(), rip: 0x100_0123n, rbx: 0x6000n, rflags: 2n });
});

test('bootSregs: long mode with paging, boot GDT segments', () => {
  const current = resetSregs();
  const sregs = bootSregs(current);
  assert.equal(sregs.cs, {
    base: 0n, limit: 0xffff_ffff, selector: 0x08, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0,
  });
  for (const name of ['ds', 'es', 'fs', 'gs', 'ss'] as const) assert.equal(sregs[name], FLAT_DATA(0x10), name);
  assert.equal(sregs.tr, {
    base: 0n, limit: 0xffff_ffff, selector: 0x18, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 1, avl: 0, unusable: 0,
  });
  assert.equal(sregs.ldt, current.ldt);
  assert.equal(sregs.gdt, { base: 0x500n, limit: 31 });
  assert.equal(sregs.idt, { base: 0x520n, limit: 7 });
  assert.is(sregs.cr0, 0xe000_0011n, 'PG | CD | NW | ET | PE');
  assert.is(sregs.cr2, 0n);
  assert.is(sregs.cr3, 0x9000n);
  assert.is(sregs.cr4, 0x20n, 'PAE');
  assert.is(sregs.cr8, 0n);
  assert.is(sregs.efer, 0x500n, 'LMA | LME');
  assert.is(sregs.apic_base, 0xfee0_0900n);
  assert.equal(sregs.interruptBitmap, [0n, 0n, 0n, 0n]);
});

test('bootSregs keeps other CR4/EFER bits and does not touch its input', () => {
  const current = { ...resetSregs(), cr4: 0x80n /* PGE */, efer: 0x1n /* SCE */ };
  const before = structuredClone(current);
  const sregs = bootSregs(current);
  assert.is(sregs.cr4, 0xa0n);
  assert.is(sregs.efer, 0x501n);
  assert.equal(current, before);
  sregs.ds.limit = 0;
  assert.is(sregs.es.limit, 0xffff_ffff, 'each data segment is its own object');
});

test('pvhBootSregs: flat 32-bit protected mode without paging', () => {
  const current = { ...resetSregs(), cr3: 0x1234_5000n, cr4: 0x20n, efer: 0x500n };
  const sregs = pvhBootSregs(current);
  assert.equal(sregs.cs, {
    base: 0n, limit: 0xffff_ffff, selector: 0x08, type: 0xb, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0,
  });
  for (const name of ['ds', 'es', 'fs', 'gs', 'ss'] as const) assert.equal(sregs[name], FLAT_DATA(0x10), name);
  assert.equal(sregs.tr, {
    base: 0n, limit: 0x67, selector: 0x18, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0,
  });
  assert.equal(sregs.gdt, { base: 0x500n, limit: 31 });
  assert.equal(sregs.idt, { base: 0x520n, limit: 7 });
  assert.is(sregs.cr0, 0x11n, 'ET | PE, paging off');
  assert.is(sregs.cr4, 0n);
  assert.is(sregs.efer, 0n);
  assert.is(sregs.cr3, 0x1234_5000n, 'unused with paging off; left as it was');
  assert.is(sregs.apic_base, 0xfee0_0900n);
});

test('bootFpu: FNINIT control word and default MXCSR, zero registers', () => {
  assert.equal(bootFpu(), {
    fcw: 0x37f, fsw: 0, ftwx: 0, lastOpcode: 0, lastIp: 0n, lastDp: 0n, mxcsr: 0x1f80,
    fpr: new Uint8Array(128), xmm: new Uint8Array(256),
  });
});

test.run();
