// Plain-data forms of the KVM register structs and their byte encodings.
// Builders in src/arch produce these objects; src/main/kvm.ts encodes them
// for the ioctls. Offsets come from kvm-abi.ts.

import {
  CLOCK_DATA, CPUID_ENTRY, DTABLE, FPU, MSR_ENTRY, MSR_LIST, REGS_ORDER, RegName, SEGMENT, SIZEOF, SREGS,
} from './kvm-abi';

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

const SEGMENT_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
type SegmentName = (typeof SEGMENT_NAMES)[number];
const CONTROL_NAMES = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apic_base'] as const;
type ControlName = (typeof CONTROL_NAMES)[number];

export type Sregs = Record<SegmentName, Segment> & Record<ControlName, bigint> & {
  gdt: DescriptorTable;
  idt: DescriptorTable;
  /** Four 64-bit words of pending-interrupt bitmap; passed through untouched. */
  interruptBitmap: bigint[];
};

export type Regs = Record<RegName, bigint>;

export interface Fpu {
  fcw: number;
  fsw: number;
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  mxcsr: number;
  /** 8 x87 registers of 16 bytes then 16 XMM registers of 16 bytes, kept as raw bytes. */
  fpr: Uint8Array;
  xmm: Uint8Array;
}

export interface MsrEntry {
  index: number;
  data: bigint;
}

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function zeroRegs(): Regs {
  return Object.fromEntries(REGS_ORDER.map((name) => [name, 0n])) as Regs;
}

export function encodeRegs(regs: Regs): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_regs);
  const dv = view(bytes);
  REGS_ORDER.forEach((name, i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, regs[name]), true));
  return bytes;
}

export function decodeRegs(bytes: Uint8Array): Regs {
  const dv = view(bytes);
  return Object.fromEntries(REGS_ORDER.map((name, i) => [name, dv.getBigUint64(i * 8, true)])) as Regs;
}

function decodeSegment(dv: DataView, at: number): Segment {
  return {
    base: dv.getBigUint64(at + SEGMENT.base, true),
    limit: dv.getUint32(at + SEGMENT.limit, true),
    selector: dv.getUint16(at + SEGMENT.selector, true),
    type: dv.getUint8(at + SEGMENT.type),
    present: dv.getUint8(at + SEGMENT.present),
    dpl: dv.getUint8(at + SEGMENT.dpl),
    db: dv.getUint8(at + SEGMENT.db),
    s: dv.getUint8(at + SEGMENT.s),
    l: dv.getUint8(at + SEGMENT.l),
    g: dv.getUint8(at + SEGMENT.g),
    avl: dv.getUint8(at + SEGMENT.avl),
    unusable: dv.getUint8(at + SEGMENT.unusable),
  };
}

function encodeSegment(dv: DataView, at: number, segment: Segment): void {
  dv.setBigUint64(at + SEGMENT.base, BigInt.asUintN(64, segment.base), true);
  dv.setUint32(at + SEGMENT.limit, segment.limit >>> 0, true);
  dv.setUint16(at + SEGMENT.selector, segment.selector, true);
  dv.setUint8(at + SEGMENT.type, segment.type);
  dv.setUint8(at + SEGMENT.present, segment.present);
  dv.setUint8(at + SEGMENT.dpl, segment.dpl);
  dv.setUint8(at + SEGMENT.db, segment.db);
  dv.setUint8(at + SEGMENT.s, segment.s);
  dv.setUint8(at + SEGMENT.l, segment.l);
  dv.setUint8(at + SEGMENT.g, segment.g);
  dv.setUint8(at + SEGMENT.avl, segment.avl);
  dv.setUint8(at + SEGMENT.unusable, segment.unusable);
}

export function decodeSregs(bytes: Uint8Array): Sregs {
  const dv = view(bytes);
  const sregs: Partial<Sregs> = {};
  for (const name of SEGMENT_NAMES) sregs[name] = decodeSegment(dv, SREGS[name]);
  for (const name of ['gdt', 'idt'] as const) {
    sregs[name] = { base: dv.getBigUint64(SREGS[name] + DTABLE.base, true), limit: dv.getUint16(SREGS[name] + DTABLE.limit, true) };
  }
  for (const name of CONTROL_NAMES) sregs[name] = dv.getBigUint64(SREGS[name], true);
  sregs.interruptBitmap = [0, 1, 2, 3].map((i) => dv.getBigUint64(SREGS.interrupt_bitmap + i * 8, true));
  return sregs as Sregs;
}

export function encodeSregs(sregs: Sregs): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_sregs);
  const dv = view(bytes);
  for (const name of SEGMENT_NAMES) encodeSegment(dv, SREGS[name], sregs[name]);
  for (const name of ['gdt', 'idt'] as const) {
    dv.setBigUint64(SREGS[name] + DTABLE.base, BigInt.asUintN(64, sregs[name].base), true);
    dv.setUint16(SREGS[name] + DTABLE.limit, sregs[name].limit, true);
  }
  for (const name of CONTROL_NAMES) dv.setBigUint64(SREGS[name], BigInt.asUintN(64, sregs[name]), true);
  sregs.interruptBitmap.forEach((word, i) => dv.setBigUint64(SREGS.interrupt_bitmap + i * 8, word, true));
  return bytes;
}

export function decodeFpu(bytes: Uint8Array): Fpu {
  const dv = view(bytes);
  return {
    fpr: bytes.slice(FPU.fpr, FPU.fpr + 128),
    fcw: dv.getUint16(FPU.fcw, true),
    fsw: dv.getUint16(FPU.fsw, true),
    ftwx: dv.getUint8(FPU.ftwx),
    lastOpcode: dv.getUint16(FPU.last_opcode, true),
    lastIp: dv.getBigUint64(FPU.last_ip, true),
    lastDp: dv.getBigUint64(FPU.last_dp, true),
    xmm: bytes.slice(FPU.xmm, FPU.xmm + 256),
    mxcsr: dv.getUint32(FPU.mxcsr, true),
  };
}

export function encodeFpu(fpu: Fpu): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_fpu);
  const dv = view(bytes);
  bytes.set(fpu.fpr.subarray(0, 128), FPU.fpr);
  dv.setUint16(FPU.fcw, fpu.fcw, true);
  dv.setUint16(FPU.fsw, fpu.fsw, true);
  dv.setUint8(FPU.ftwx, fpu.ftwx);
  dv.setUint16(FPU.last_opcode, fpu.lastOpcode, true);
  dv.setBigUint64(FPU.last_ip, fpu.lastIp, true);
  dv.setBigUint64(FPU.last_dp, fpu.lastDp, true);
  bytes.set(fpu.xmm.subarray(0, 256), FPU.xmm);
  dv.setUint32(FPU.mxcsr, fpu.mxcsr, true);
  return bytes;
}

/** struct kvm_msrs with its entries. */
export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_msrs + entries.length * SIZEOF.kvm_msr_entry);
  const dv = view(bytes);
  dv.setUint32(0, entries.length, true);
  entries.forEach((entry, i) => {
    const at = SIZEOF.kvm_msrs + i * SIZEOF.kvm_msr_entry;
    dv.setUint32(at + MSR_ENTRY.index, entry.index, true);
    dv.setBigUint64(at + MSR_ENTRY.data, BigInt.asUintN(64, entry.data), true);
  });
  return bytes;
}

/** The first `count` entries of a struct kvm_msrs (KVM_GET_MSRS fills in as many as it read). */
export function decodeMsrs(bytes: Uint8Array, count = view(bytes).getUint32(0, true)): MsrEntry[] {
  const dv = view(bytes);
  const entries: MsrEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = SIZEOF.kvm_msrs + i * SIZEOF.kvm_msr_entry;
    entries.push({ index: dv.getUint32(at + MSR_ENTRY.index, true), data: dv.getBigUint64(at + MSR_ENTRY.data, true) });
  }
  return entries;
}

/** struct kvm_msr_list with room for `capacity` indices (nmsrs = capacity). */
export function msrListBuffer(capacity: number): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_msr_list + capacity * 4);
  view(bytes).setUint32(MSR_LIST.nmsrs, capacity, true);
  return bytes;
}

/** The indices of a struct kvm_msr_list that KVM_GET_MSR_INDEX_LIST filled in. */
export function decodeMsrList(bytes: Uint8Array): number[] {
  const dv = view(bytes);
  const count = dv.getUint32(MSR_LIST.nmsrs, true);
  return Array.from({ length: count }, (_, i) => dv.getUint32(MSR_LIST.indices + 4 * i, true));
}

/** struct kvm_clock_data: the kvmclock in ns and its flags (the rest is output-only or padding). */
export interface ClockData {
  clock: bigint;
  flags: number;
}

export function encodeClockData(clock: ClockData): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_clock_data);
  const dv = view(bytes);
  dv.setBigUint64(CLOCK_DATA.clock, BigInt.asUintN(64, clock.clock), true);
  dv.setUint32(CLOCK_DATA.flags, clock.flags >>> 0, true);
  return bytes;
}

export function decodeClockData(bytes: Uint8Array): ClockData {
  const dv = view(bytes);
  return { clock: dv.getBigUint64(CLOCK_DATA.clock, true), flags: dv.getUint32(CLOCK_DATA.flags, true) };
}

/** struct kvm_cpuid2 with room for `capacity` entries (nent = capacity). */
export function cpuidBuffer(capacity: number): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_cpuid2 + capacity * SIZEOF.kvm_cpuid_entry2);
  view(bytes).setUint32(0, capacity, true);
  return bytes;
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const bytes = cpuidBuffer(entries.length);
  const dv = view(bytes);
  entries.forEach((entry, i) => {
    const at = SIZEOF.kvm_cpuid2 + i * SIZEOF.kvm_cpuid_entry2;
    dv.setUint32(at + CPUID_ENTRY.function, entry.function >>> 0, true);
    dv.setUint32(at + CPUID_ENTRY.index, entry.index >>> 0, true);
    dv.setUint32(at + CPUID_ENTRY.flags, entry.flags >>> 0, true);
    dv.setUint32(at + CPUID_ENTRY.eax, entry.eax >>> 0, true);
    dv.setUint32(at + CPUID_ENTRY.ebx, entry.ebx >>> 0, true);
    dv.setUint32(at + CPUID_ENTRY.ecx, entry.ecx >>> 0, true);
    dv.setUint32(at + CPUID_ENTRY.edx, entry.edx >>> 0, true);
  });
  return bytes;
}

export function decodeCpuid(bytes: Uint8Array): CpuidEntry[] {
  const dv = view(bytes);
  const count = dv.getUint32(0, true);
  const entries: CpuidEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = SIZEOF.kvm_cpuid2 + i * SIZEOF.kvm_cpuid_entry2;
    entries.push({
      function: dv.getUint32(at + CPUID_ENTRY.function, true),
      index: dv.getUint32(at + CPUID_ENTRY.index, true),
      flags: dv.getUint32(at + CPUID_ENTRY.flags, true),
      eax: dv.getUint32(at + CPUID_ENTRY.eax, true),
      ebx: dv.getUint32(at + CPUID_ENTRY.ebx, true),
      ecx: dv.getUint32(at + CPUID_ENTRY.ecx, true),
      edx: dv.getUint32(at + CPUID_ENTRY.edx, true),
    });
  }
  return entries;
}
