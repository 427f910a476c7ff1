// Register state of the boot vCPU at the kernel's first instruction, for the
// two entry protocols tsvmm supports:
//  - Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst): long mode,
//    identity paging, flat segments, %rsi = zero page. Values follow crosvm's
//    and Firecracker's setup_regs / configure_segments_and_sregs /
//    setup_page_tables.
//  - Xen PVH (xen/include/public/arch-x86/hvm/start_info.h): 32-bit protected
//    mode without paging, flat segments, %ebx = hvm_start_info. Values follow
//    Firecracker's PvhBoot branch.
// These functions only compute values; the caller writes the GDT/IDT
// (gdt.ts) and page tables (paging.ts) and hands the results to KVM.

import { Fpu, Regs, Segment, Sregs, zeroRegs } from '../../shared/kvm-structs';
import {
  GDT_CODE_INDEX, GDT_DATA_INDEX, GDT_TSS_INDEX, LONG_MODE_GDT, PVH_GDT,
  bootGdtRegister, bootIdtRegister, segmentFromDescriptor,
} from './gdt';
import { BOOT_STACK_POINTER, PML4_START, PVH_INFO_START, ZERO_PAGE_START } from '../layout';

/** RFLAGS bit 1 is reserved and always reads as 1; every other flag (IF included) starts clear. */
const RFLAGS_RESERVED_ONE = 0x2n;

/** CR0.PE: protected mode. */
const CR0_PE = 0x1n;
/** CR0.ET: x87 present (hard-wired to 1 on modern CPUs; KVM's reset value has it). */
const CR0_ET = 0x10n;
/** CR0.PG: paging; required for long mode. */
const CR0_PG = 0x8000_0000n;
/** CR4.PAE: 64-bit page-table entries; required for long mode. */
const CR4_PAE = 0x20n;
/** EFER.LME: long mode enable. */
const EFER_LME = 0x100n;
/** EFER.LMA: long mode active; KVM_SET_SREGS takes it as given rather than deriving it from PG. */
const EFER_LMA = 0x400n;

/** x87 control word after FNINIT: all exceptions masked, 64-bit precision, round to nearest. */
const FPU_CONTROL_WORD_DEFAULT = 0x37f;
/** MXCSR at power-on: all SSE exceptions masked, round to nearest. */
const MXCSR_DEFAULT = 0x1f80;

/** kvm_fpu holds 8 x87 registers and 16 XMM registers of 16 bytes each. */
const FPR_BYTES = 8 * 16;
const XMM_BYTES = 16 * 16;

function toU64(value: number | bigint): bigint {
  return BigInt.asUintN(64, BigInt(value));
}

/**
 * General registers for the Linux 64-bit entry: rip = entry, rsp = rbp =
 * BOOT_STACK_POINTER, rsi = ZERO_PAGE_START (boot_params), rflags = 2,
 * everything else 0.
 */
export function bootRegs(entry: number | bigint): Regs {
  return {
    ...zeroRegs(),
    rip: toU64(entry),
    rsp: BigInt(BOOT_STACK_POINTER),
    rbp: BigInt(BOOT_STACK_POINTER),
    rsi: BigInt(ZERO_PAGE_START),
    rflags: RFLAGS_RESERVED_ONE,
  };
}

/**
 * General registers for the PVH 32-bit entry: rip = entry (the kernel's
 * XEN_ELFNOTE_PHYS32_ENTRY), rbx = PVH_INFO_START (hvm_start_info), rflags = 2,
 * everything else 0.
 */
export function pvhBootRegs(entry: number | bigint): Regs {
  return {
    ...zeroRegs(),
    rip: toU64(entry),
    rbx: BigInt(PVH_INFO_START),
    rflags: RFLAGS_RESERVED_ONE,
  };
}

/** Segments loaded from a boot GDT: code into CS, data into DS/ES/FS/GS/SS, the TSS into TR. */
function flatSegments(table: readonly bigint[]): Pick<Sregs, 'cs' | 'ds' | 'es' | 'fs' | 'gs' | 'ss' | 'tr'> {
  const code = segmentFromDescriptor(table[GDT_CODE_INDEX], GDT_CODE_INDEX);
  const data = segmentFromDescriptor(table[GDT_DATA_INDEX], GDT_DATA_INDEX);
  const tss = segmentFromDescriptor(table[GDT_TSS_INDEX], GDT_TSS_INDEX);
  const copy = (segment: Segment): Segment => ({ ...segment });
  return { cs: code, ds: copy(data), es: copy(data), fs: copy(data), gs: copy(data), ss: copy(data), tr: tss };
}

/**
 * Special registers for the Linux 64-bit entry, built from `current` (what
 * KVM_GET_SREGS returned): segments from LONG_MODE_GDT, GDTR/IDTR at the boot
 * tables, CR0 |= PE|PG (keeping ET, CD, NW as KVM reset them, as crosvm
 * does), CR3 = PML4_START, CR4 |= PAE, EFER |= LME|LMA. LDT, CR2, CR8,
 * APIC base and the interrupt bitmap are kept. The caller writes the GDT,
 * the IDT and the identity page tables.
 */
export function bootSregs(current: Sregs): Sregs {
  return {
    ...current,
    ...flatSegments(LONG_MODE_GDT),
    ldt: { ...current.ldt },
    gdt: bootGdtRegister(LONG_MODE_GDT.length),
    idt: bootIdtRegister(),
    cr0: current.cr0 | CR0_PE | CR0_PG,
    cr3: BigInt(PML4_START),
    cr4: current.cr4 | CR4_PAE,
    efer: current.efer | EFER_LME | EFER_LMA,
    interruptBitmap: [...current.interruptBitmap],
  };
}

/**
 * Special registers for the PVH 32-bit entry, built from `current`: flat
 * 32-bit code in CS and data in DS/ES/FS/GS/SS (base 0, limit 4 GiB - 1),
 * TR an active 32-bit TSS (limit 0x67), GDTR/IDTR at the boot tables,
 * CR0 = PE|ET (paging off, as Firecracker sets it), CR4 = 0, EFER = 0.
 * The caller writes PVH_GDT with writeBootGdt(mem, PVH_GDT) and the IDT.
 */
export function pvhBootSregs(current: Sregs): Sregs {
  return {
    ...current,
    ...flatSegments(PVH_GDT),
    ldt: { ...current.ldt },
    gdt: bootGdtRegister(PVH_GDT.length),
    idt: bootIdtRegister(),
    cr0: CR0_PE | CR0_ET,
    cr4: 0n,
    efer: 0n,
    interruptBitmap: [...current.interruptBitmap],
  };
}

/** FPU state at boot: FNINIT's control word and the power-on MXCSR, all registers zero. */
export function bootFpu(): Fpu {
  return {
    fcw: FPU_CONTROL_WORD_DEFAULT,
    fsw: 0,
    ftwx: 0,
    lastOpcode: 0,
    lastIp: 0n,
    lastDp: 0n,
    mxcsr: MXCSR_DEFAULT,
    fpr: new Uint8Array(FPR_BYTES),
    xmm: new Uint8Array(XMM_BYTES),
  };
}
