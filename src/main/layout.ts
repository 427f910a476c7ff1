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

/** The kernel's protected-mode image is loaded at the 1 MiB mark ("HIGH_MEMORY"). */
export const HIGH_MEMORY_START = 0x100000;
export const KERNEL_START = HIGH_MEMORY_START;

/** The 32-bit MMIO gap below 4 GiB: 768 MiB, as crosvm's arch_memory_regions. */
export const FIRST_ADDR_PAST_32BITS = 0x1_0000_0000;
const MEM_32BIT_GAP_SIZE = 768 * 1024 * 1024;
export const MMIO_GAP_START = FIRST_ADDR_PAST_32BITS - MEM_32BIT_GAP_SIZE; // 0xd000_0000
/** Where userspace MMIO devices are placed, at the start of the gap. */
export const MMIO_DEVICES_START = MMIO_GAP_START;

/** Three pages KVM needs for the TSS on Intel (KVM_SET_TSS_ADDR), inside the gap. */
export const TSS_ADDR = 0xfffb_d000;
/** One page KVM needs for the real-mode identity map on Intel, just below the TSS. */
export const IDENTITY_MAP_ADDR = 0xfffb_c000;

/**
 * With firmware (--bios) the image ends at 4 GiB and may be 16 MiB long, so
 * KVM's pages move below it, to QEMU's addresses (target/i386/kvm: the
 * identity map at 0xfeffc000, the TSS right after it), which SeaBIOS's e820
 * map reserves.
 */
export const FIRMWARE_IDENTITY_MAP_ADDR = 0xfeff_c000;
export const FIRMWARE_TSS_ADDR = 0xfeff_d000;
/** The identity page and the three TSS pages, reserved in the firmware's e820 map. */
export const FIRMWARE_KVM_PAGES_SIZE = 0x4000;
/** The largest firmware image: it must fit between the KVM pages above and 4 GiB. */
export const MAX_FIRMWARE_SIZE = 16 * 1024 * 1024;
/** Firmware images are whole 64 KiB blocks (flash sectors; QEMU's and SeaBIOS's images all are). */
export const FIRMWARE_SIZE_UNIT = 64 * 1024;
/**
 * The legacy BIOS area below 1 MiB: the image's last 128 KiB also appear at
 * 0xe0000-0xfffff, where the reset vector's far jump and real-mode code run
 * (QEMU's isa-bios alias).
 */
export const ISA_BIOS_END = 0x10_0000;
export const ISA_BIOS_MAX_SIZE = 128 * 1024;

/** The in-kernel IOAPIC and local APIC MMIO pages. */
export const IOAPIC_START = 0xfec0_0000;
export const LAPIC_START = 0xfee0_0000;

/** Identity paging covers this much at boot (one page directory of 2 MiB pages). */
export const BOOT_IDENTITY_MAP_SIZE = 1024 * 1024 * 1024;

// ---- I/O ports (a PC's legacy map; crosvm's setup_io_bus and QEMU -M pc agree) ----

/** The four 16550A UARTs; only COM1 is connected to the host. */
export const COM1_PORT = 0x3f8;
export const COM2_PORT = 0x2f8;
export const COM3_PORT = 0x3e8;
export const COM4_PORT = 0x2e8;
/** The master and slave 8259 PICs, and their edge/level control registers (ELCR). */
export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const PIC_ELCR_PORT = 0x4d0;
/** The 8254 PIT's channel and control ports. */
export const PIT_PORT = 0x40;
/** Port B of the PC: the PIT channel 2 gate and the speaker (the userspace PIT serves it). */
export const PIT_SPEAKER_PORT = 0x61;
/** The i8042: 0x61-0x64 with the in-kernel PIT (crosvm's range), 0x62-0x64 when 0x61 is the userspace PIT's. */
export const I8042_PORT = 0x61;
export const I8042_PORT_AFTER_SPEAKER = 0x62;
/** The CMOS/RTC index and data ports. */
export const CMOS_PORT = 0x70;
/** The POST code / I/O delay port Linux writes to slow port I/O down. */
export const IO_DELAY_PORT = 0xed;
/** The FPU error ports (clear busy, reset coprocessor). */
export const FPU_PORT = 0xf0;
/** System control port A: fast A20 gate and fast reset. */
export const SYSTEM_CONTROL_PORT = 0x92;
/** The i8042's data port (its command/status port is 0x64, in the range above). */
export const I8042_DATA_PORT = 0x60;
/** QEMU's debug console, where firmware writes its log (--debugcon). */
export const DEBUGCON_PORT = 0x402;
/** QEMU's fw_cfg: selector 0x510, data 0x511, DMA address 0x514 (firmware boots only). */
export const FW_CFG_PORT = 0x510;
/** PCI configuration mechanism #1 (CONFIG_ADDRESS at 0xcf8, CONFIG_DATA at 0xcfc). */
export const PCI_CONFIG_PORT = 0xcf8;
/** PCI I/O BARs are assigned from here to the end of the port space (crosvm's and SeaBIOS's start). */
export const PCI_IO_START = 0xc000;
export const PCI_IO_END = 0x1_0000;

// ---- PCI memory ----

/**
 * 32-bit PCI memory BARs: from 0xe000_0000 (crosvm's first MMIO pool; the
 * gap's first 256 MiB stay free for tsvmm's own and test devices) up to the
 * IOAPIC.
 */
export const PCI_MMIO32_START = 0xe000_0000;
export const PCI_MMIO32_END = 0xfec0_0000;

// ---- Interrupts ----

/** ISA IRQs of the legacy devices, as on every PC (the MP table routes ISA IRQ n to IOAPIC pin n). */
export const PIT_IRQ = 0;
export const KEYBOARD_IRQ = 1;
export const COM1_IRQ = 4;
export const COM2_IRQ = 3;
export const COM3_IRQ = 4;
export const COM4_IRQ = 3;
/** The slave PIC's cascade input on the master; no ISA device can drive it. */
export const PIC_CASCADE_IRQ = 2;
/** Pins of the IOAPIC (KVM's in-kernel one has 24; the userspace one and the MP table match it). */
export const IOAPIC_PINS = 24;
export const GSI_LEGACY_END = 16;
/** PCI INTx lines go to IOAPIC pins from here up (crosvm's choice; Linux reads them from the MP table). */
export const GSI_PCI_INTX_START = 9;
/** GSIs past the IOAPIC's pins carry MSI routes (KVM_SET_GSI_ROUTING entries of type MSI). */
export const GSI_MSI_START = IOAPIC_PINS;
