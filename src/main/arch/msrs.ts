// Model-specific registers set on every vCPU before boot: the SYSENTER and
// SYSCALL entry MSRs cleared (the kernel programs them itself), the TSC
// zeroed, fast string operations enabled, and write-back as the default
// memory type. Same list and order as Firecracker's create_boot_msr_entries
// (crosvm's long_mode_msrs is this list without the MTRR entry).
// MSR numbers: Intel SDM Vol. 4, "Model-Specific Registers".

import { MsrEntry } from '../../shared/kvm-structs';

/** IA32_SYSENTER_CS: code segment for SYSENTER. */
const MSR_IA32_SYSENTER_CS = 0x174;
/** IA32_SYSENTER_ESP: stack pointer for SYSENTER. */
const MSR_IA32_SYSENTER_ESP = 0x175;
/** IA32_SYSENTER_EIP: entry point for SYSENTER. */
const MSR_IA32_SYSENTER_EIP = 0x176;
/** IA32_STAR: segment selectors for SYSCALL/SYSRET. */
const MSR_STAR = 0xc000_0081;
/** IA32_LSTAR: 64-bit SYSCALL entry point. */
const MSR_LSTAR = 0xc000_0082;
/** IA32_CSTAR: compatibility-mode SYSCALL entry point. */
const MSR_CSTAR = 0xc000_0083;
/** IA32_FMASK: RFLAGS bits cleared on SYSCALL. */
const MSR_SYSCALL_MASK = 0xc000_0084;
/** IA32_KERNEL_GS_BASE: GS base swapped in by SWAPGS. */
const MSR_KERNEL_GS_BASE = 0xc000_0102;
/** IA32_TIME_STAMP_COUNTER. */
const MSR_IA32_TSC = 0x10;
/** IA32_MISC_ENABLE. */
const MSR_IA32_MISC_ENABLE = 0x1a0;
/** IA32_MTRR_DEF_TYPE: default memory type and MTRR enables. */
const MSR_MTRR_DEF_TYPE = 0x2ff;

/** IA32_MISC_ENABLE bit 0: fast-string REP MOVS/STOS enabled, as firmware leaves it. */
const MISC_ENABLE_FAST_STRING = 0x1n;
/** IA32_MTRR_DEF_TYPE bit 11 (E): MTRRs enabled. */
const MTRR_ENABLE = 0x800n;
/** Memory type 6: write-back. */
const MTRR_MEM_TYPE_WB = 0x6n;

/**
 * The MSR values for a vCPU about to boot Linux in 64-bit (or PVH) mode.
 * The MTRR default type is write-back with MTRRs enabled, so memory that no
 * variable MTRR covers defaults to write-back instead of uncached.
 */
export function bootMsrs(): MsrEntry[] {
  const cleared = (index: number): MsrEntry => ({ index, data: 0n });
  return [
    cleared(MSR_IA32_SYSENTER_CS),
    cleared(MSR_IA32_SYSENTER_ESP),
    cleared(MSR_IA32_SYSENTER_EIP),
    cleared(MSR_STAR),
    cleared(MSR_CSTAR),
    cleared(MSR_KERNEL_GS_BASE),
    cleared(MSR_SYSCALL_MASK),
    cleared(MSR_LSTAR),
    cleared(MSR_IA32_TSC),
    { index: MSR_IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING },
    { index: MSR_MTRR_DEF_TYPE, data: MTRR_ENABLE | MTRR_MEM_TYPE_WB },
  ];
}
