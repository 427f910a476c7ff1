// The boot Global Descriptor Table: its 8-byte descriptors, the KVM segment
// registers that mirror them, and writing it (and the empty IDT) into guest
// memory. A vCPU entered directly in long mode (or in PVH's flat 32-bit
// mode) never ran a loader that built a GDT, so the VMM builds one and loads
// the hidden segment state to match it; the kernel replaces both early on.
// Descriptor layout: Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors".

import { GuestMemory, hex } from './guest-memory';
import { DescriptorTable, Segment } from '../../shared/kvm-structs';
import { BOOT_GDT_START, BOOT_IDT_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** Each GDT/IDT slot written here is one 64-bit descriptor. */
const DESCRIPTOR_BYTES = 8;

/** Flags word bits 15:12 (G, D/B, L, AVL) and 7:0 (P, DPL, S, type); 11:8 is the limit. */
const FLAGS_MASK = 0xf0ffn;
/** Descriptor bit 40: where the flags word starts. */
const FLAGS_SHIFT = 40n;
/** Limit bits 15:0 sit in descriptor bits 15:0; limit bits 19:16 in descriptor bits 51:48. */
const LIMIT_LOW_MASK = 0xffffn;
const LIMIT_HIGH_MASK = 0xf_0000n;
const LIMIT_HIGH_SHIFT = 32n;
/** Base bits 23:0 sit in descriptor bits 39:16; base bits 31:24 in descriptor bits 63:56. */
const BASE_LOW_MASK = 0xff_ffffn;
const BASE_LOW_SHIFT = 16n;
const BASE_HIGH_MASK = 0xff00_0000n;
const BASE_HIGH_SHIFT = 32n;

/** Descriptor bit positions of the single-bit and small fields read back into a Segment. */
const TYPE_SHIFT = 40n; // 4 bits
const S_SHIFT = 44n;
const DPL_SHIFT = 45n; // 2 bits
const P_SHIFT = 47n;
const AVL_SHIFT = 52n;
const L_SHIFT = 53n;
const DB_SHIFT = 54n;
const G_SHIFT = 55n;

/** With G set the 20-bit limit counts 4 KiB units; the low 12 bits of the byte limit are all ones. */
const PAGE_GRANULARITY_SHIFT = 12;
const PAGE_GRANULARITY_LOW_BITS = 0xfff;

/** Largest limit a descriptor can hold (20 bits). */
const MAX_RAW_LIMIT = 0xfffff;
/** Callers may pass a 32-bit limit such as 0xffffffff (Firecracker's PVH table does); bits above 19 are dropped. */
const MAX_LIMIT_ARGUMENT = 0xffff_ffff;

/** Flags of a present, ring-0, 64-bit (L=1), 4 KiB-granular, execute/read, accessed code segment. */
const CODE64_FLAGS = 0xa09b;
/** Flags of a present, ring-0, 32-bit (D/B=1), 4 KiB-granular, read/write, accessed data segment. */
const DATA_FLAGS = 0xc093;
/** Flags of a present, 4 KiB-granular, busy 64-bit TSS (type 0xb). */
const TSS64_FLAGS = 0x808b;
/** Flags of a present, ring-0, 32-bit (D/B=1), 4 KiB-granular, execute/read, accessed code segment (PVH). */
const CODE32_FLAGS = 0xc09b;
/** Flags of a present, byte-granular, busy 32-bit TSS (PVH requires an active TSS, limit 0x67). */
const TSS32_FLAGS = 0x008b;

/** Byte limit of a 32-bit TSS (104 bytes), as the PVH ABI asks for TR. */
const TSS32_LIMIT = 0x67;

export const GDT_CODE_INDEX = 1;
export const GDT_DATA_INDEX = 2;
export const GDT_TSS_INDEX = 3;
export const BOOT_CODE_SELECTOR = GDT_CODE_INDEX * DESCRIPTOR_BYTES; // 0x08
export const BOOT_DATA_SELECTOR = GDT_DATA_INDEX * DESCRIPTOR_BYTES; // 0x10
export const BOOT_TSS_SELECTOR = GDT_TSS_INDEX * DESCRIPTOR_BYTES; // 0x18

export class GdtError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/**
 * Encodes one segment descriptor, like the kernel's GDT_ENTRY(flags, base, limit)
 * and crosvm's gdt_entry: `flags` holds G/DB/L/AVL in bits 15:12 and
 * P/DPL/S/type in bits 7:0; `limit` is the raw 20-bit field (bits above 19 dropped).
 */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  checkField('flags', flags, 0xffff);
  checkField('base', base, 0xffff_ffff);
  checkField('limit', limit, MAX_LIMIT_ARGUMENT);
  const f = BigInt(flags);
  const b = BigInt(base);
  const l = BigInt(limit);
  return ((b & BASE_HIGH_MASK) << BASE_HIGH_SHIFT)
    | ((f & FLAGS_MASK) << FLAGS_SHIFT)
    | ((l & LIMIT_HIGH_MASK) << LIMIT_HIGH_SHIFT)
    | ((b & BASE_LOW_MASK) << BASE_LOW_SHIFT)
    | (l & LIMIT_LOW_MASK);
}

/** The long-mode boot GDT: null, 64-bit code, flat data, 64-bit TSS (crosvm/Firecracker). */
export const LONG_MODE_GDT: readonly bigint[] = Object.freeze([
  gdtEntry(0, 0, 0),
  gdtEntry(CODE64_FLAGS, 0, MAX_RAW_LIMIT),
  gdtEntry(DATA_FLAGS, 0, MAX_RAW_LIMIT),
  gdtEntry(TSS64_FLAGS, 0, MAX_RAW_LIMIT),
]);

/** The PVH boot GDT: null, flat 32-bit code, flat data, 32-bit TSS (Firecracker's PVH table). */
export const PVH_GDT: readonly bigint[] = Object.freeze([
  gdtEntry(0, 0, 0),
  gdtEntry(CODE32_FLAGS, 0, MAX_LIMIT_ARGUMENT),
  gdtEntry(DATA_FLAGS, 0, MAX_LIMIT_ARGUMENT),
  gdtEntry(TSS32_FLAGS, 0, TSS32_LIMIT),
]);

function bit(descriptor: bigint, shift: bigint, width = 1n): number {
  return Number((descriptor >> shift) & ((1n << width) - 1n));
}

/**
 * The kvm_segment that loads descriptor `descriptor` from GDT slot `index`
 * (as crosvm's segment_from_gdt). Two refinements follow Firecracker's
 * kvm_segment_from_gdt: the limit is a byte limit, so with G set the 20-bit
 * field is scaled to 4 KiB units (0xfffff -> 0xffffffff), which the PVH
 * 32-bit entry needs because protected mode checks limits; and a descriptor
 * that is not present yields an unusable segment.
 */
export function segmentFromDescriptor(descriptor: bigint, index: number): Segment {
  checkField('GDT index', index, 0x1fff);
  const base = ((descriptor >> BASE_HIGH_SHIFT) & BASE_HIGH_MASK) | ((descriptor >> BASE_LOW_SHIFT) & BASE_LOW_MASK);
  const rawLimit = Number(((descriptor >> LIMIT_HIGH_SHIFT) & LIMIT_HIGH_MASK) | (descriptor & LIMIT_LOW_MASK));
  const g = bit(descriptor, G_SHIFT);
  const present = bit(descriptor, P_SHIFT);
  return {
    base,
    limit: g ? ((rawLimit << PAGE_GRANULARITY_SHIFT) | PAGE_GRANULARITY_LOW_BITS) >>> 0 : rawLimit,
    selector: index * DESCRIPTOR_BYTES,
    type: bit(descriptor, TYPE_SHIFT, 4n),
    present,
    dpl: bit(descriptor, DPL_SHIFT, 2n),
    db: bit(descriptor, DB_SHIFT),
    s: bit(descriptor, S_SHIFT),
    l: bit(descriptor, L_SHIFT),
    g,
    avl: bit(descriptor, AVL_SHIFT),
    unusable: present ? 0 : 1,
  };
}

/**
 * Writes a GDT (by default LONG_MODE_GDT; PVH_GDT for a PVH boot) at
 * BOOT_GDT_START and returns the GDTR value (base, limit = size - 1).
 */
export function writeBootGdt(mem: GuestMemory, table: readonly bigint[] = LONG_MODE_GDT): DescriptorTable {
  const size = table.length * DESCRIPTOR_BYTES;
  requireRam(mem, BOOT_GDT_START, size, 'boot GDT');
  table.forEach((descriptor, i) => mem.writeU64(BOOT_GDT_START + i * DESCRIPTOR_BYTES, descriptor));
  return bootGdtRegister(table.length);
}

/**
 * Writes the boot IDT, a single zero descriptor at BOOT_IDT_START, and returns
 * the IDTR value (limit 7). Interrupts stay disabled until the kernel loads
 * its own IDT, so no vector is ever taken through this one.
 */
export function writeBootIdt(mem: GuestMemory): DescriptorTable {
  requireRam(mem, BOOT_IDT_START, DESCRIPTOR_BYTES, 'boot IDT');
  mem.writeU64(BOOT_IDT_START, 0n);
  return bootIdtRegister();
}

/** The GDTR that writeBootGdt produces for a table of `entries` descriptors, without writing. */
export function bootGdtRegister(entries: number): DescriptorTable {
  return { base: BigInt(BOOT_GDT_START), limit: entries * DESCRIPTOR_BYTES - 1 };
}

/** The IDTR that writeBootIdt produces, without writing. */
export function bootIdtRegister(): DescriptorTable {
  return { base: BigInt(BOOT_IDT_START), limit: DESCRIPTOR_BYTES - 1 };
}

function requireRam(mem: GuestMemory, address: number, length: number, what: string): void {
  if (!mem.contains(address, length)) {
    throw new GdtError(`the ${what} at ${hex(address)}..${hex(address + length)} is not inside guest RAM; give the guest RAM from address 0`);
  }
}

function checkField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new GdtError(`descriptor ${name} ${value} is outside 0..${hex(max)}; pass an unsigned value that fits the field`);
  }
}
