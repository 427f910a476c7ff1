// Every fixed guest-physical address tsvmm uses on x86_64, with why it is
// there. Values follow crosvm's x86_64/src/lib.rs and Firecracker's
// arch/x86_64/layout.rs so that kernels see the machine they expect.
// Nothing else in tsvmm writes a guest address as a literal.

/** The boot GDT (null, 64-bit code, data, TSS); 4 entries of 8 bytes. */
export const BOOT_GDT_START = 0x500;
/** The boot IDT: empty (limit 0 is not used; an 8-byte null table). */
export const BOOT_IDT_START = 0x520;

/** PVH: struct hvm_start_info, handed to the guest in %ebx. */
export const PVH_INFO_START = 0x6000;
/** PVH: the module list (initrd) that hvm_start_info.modlist_paddr points to. */
export const PVH_MODLIST_START = 0x6040;
/** PVH: the memory map that hvm_start_info.memmap_paddr points to (up to 0x7000). */
export const PVH_MEMMAP_START = 0x6100;
export const PVH_MEMMAP_END = 0x7000;

/** The Linux zero page (struct boot_params); %rsi points here at entry. */
export const ZERO_PAGE_START = 0x7000;
export const ZERO_PAGE_SIZE = 0x1000;

/**
 * Initial stack pointer of the boot vCPU (crosvm's value). The stack grows down
 * into the zero page's trailing padding; a kernel switches to its own stack
 * within its first instructions, so only a few bytes are ever pushed here.
 */
export const BOOT_STACK_POINTER = 0x8000;

/** Identity page tables mapping the low 1 GiB with 2 MiB pages. */
export const PML4_START = 0x9000;
export const PDPTE_START = 0xa000;
export const PDE_START = 0xb000;

/** setup_data chain (RNG seed, ...), below the command line. */
export const SETUP_DATA_START = 0x10000;
export const SETUP_DATA_END = 0x20000;

/** Kernel command line; it may use the space up to the EBDA (the MP table), or less if the kernel says so. */
export const CMDLINE_START = 0x20000;

/** End of conventional low RAM; the EBDA (with the MP table) starts here. */
export const EBDA_START = 0x9fc00;
/** The MP floating pointer and configuration table live in the EBDA, where Linux scans. */
export const MPTABLE_START = EBDA_START;
/** Legacy video/BIOS hole; not RAM in the e820 map. */
export const LOW_RAM_END = EBDA_START;
export const BIOS_ROM_START = 0xa0000;

/** The kernel's protected-mode image is loaded at the 1 MiB mark ("HIGH_MEMORY"). */
export const HIGH_MEMORY_START = 0x100000;
export const KERNEL_START = HIGH_MEMORY_START;

/** The 32-bit MMIO gap below 4 GiB: 768 MiB, as crosvm's arch_memory_regions. */
export const FIRST_ADDR_PAST_32BITS = 0x1_0000_0000;
export const MEM_32BIT_GAP_SIZE = 768 * 1024 * 1024;
export const MMIO_GAP_START = FIRST_ADDR_PAST_32BITS - MEM_32BIT_GAP_SIZE; // 0xd000_0000
/** Where userspace MMIO devices are placed, at the start of the gap. */
export const MMIO_DEVICES_START = MMIO_GAP_START;

/** Three pages KVM needs for the TSS on Intel (KVM_SET_TSS_ADDR), inside the gap. */
export const TSS_ADDR = 0xfffb_d000;
/** One page KVM needs for the real-mode identity map on Intel, just below the TSS. */
export const IDENTITY_MAP_ADDR = 0xfffb_c000;

/** The in-kernel IOAPIC and local APIC MMIO pages. */
export const IOAPIC_START = 0xfec0_0000;
export const LAPIC_START = 0xfee0_0000;

/** Identity paging covers this much at boot (one page directory of 2 MiB pages). */
export const BOOT_IDENTITY_MAP_SIZE = 1024 * 1024 * 1024;
