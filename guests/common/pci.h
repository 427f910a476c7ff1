/*
 * PCI for the test guests (common/pci.c, in libguest.a): configuration
 * mechanism #1 (ports 0xcf8/0xcfc, PCI Local Bus 3.0 §3.2.2.3.2), a scan of
 * bus 0, capability walks, BAR sizing and assignment, MSI-X tables (PCI 3.0
 * §6.8.2) and identity maps for BARs above the runtime's 4 GiB map.
 */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "guest.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define PCI_CONFIG_ENABLE 0x80000000u
#define PCI_SLOTS 32
#define PCI_FUNCTIONS 8

/* Type-0 header registers. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_HEADER_MULTIFUNCTION 0x80
#define PCI_BARS 6

#define PCI_BAR_IO 0x1
#define PCI_BAR_MEM_TYPE_MASK 0x6
#define PCI_BAR_MEM_64 0x4
#define PCI_BAR_PREFETCH 0x8

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VENDOR 0x09

/* MSI-X capability (PCI 3.0 §6.8.2): message control at +2, table at +4, PBA at +8. */
#define MSIX_CTRL 2
#define MSIX_TABLE 4
#define MSIX_PBA 8
#define MSIX_CTRL_SIZE_MASK 0x07ff
#define MSIX_CTRL_FUNCTION_MASK 0x4000
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_BIR_MASK 0x7
#define MSIX_ENTRY_SIZE 16
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA 8
#define MSIX_ENTRY_CTRL 12
#define MSIX_ENTRY_MASKED 0x1
/* x86 MSI address: the LAPIC window, destination APIC id in bits 19:12 (physical, fixed). */
#define MSI_ADDRESS_BASE 0xfee00000u
#define MSI_DEST_SHIFT 12

/*
 * Where pci_bar_setup() puts a BAR the firmware left at 0: below the IOAPIC,
 * clear of every other BAR, and above RAM on both boards the guests run on
 * (tsvmm's gap starts at 0xd0000000; QEMU -M pc keeps RAM below 0xe0000000).
 */
#define PCI_ASSIGN_WINDOW_START 0xe0000000ull
#define PCI_ASSIGN_WINDOW_END 0xfec00000ull

struct pci_func {
	uint8_t slot, fn;
};

uint32_t pci_read32(struct pci_func f, unsigned reg);
uint16_t pci_read16(struct pci_func f, unsigned reg);
uint8_t pci_read8(struct pci_func f, unsigned reg);
void pci_write32(struct pci_func f, unsigned reg, uint32_t v);
void pci_write16(struct pci_func f, unsigned reg, uint16_t v);
void pci_write8(struct pci_func f, unsigned reg, uint8_t v);

/* Scans bus 0 (all 32 slots, functions 1-7 of multi-function devices); 1 and *out when vendor:device is there. */
int pci_find(uint16_t vendor, uint16_t device, struct pci_func *out);

/* The config offset of the first capability `id` after `after` (0: from the start), or 0. Bounded walk. */
unsigned pci_find_cap(struct pci_func f, uint8_t id, unsigned after);

struct pci_bar {
	uint64_t addr;		/* base as programmed (0 = unassigned) */
	uint64_t size;		/* from sizing; 0 = BAR not implemented */
	uint8_t is_io, is64, prefetch;
};

/* Reads and sizes BAR `bar` (decode off while all-ones is written, then everything restored). 0 ok, -1 bad index. */
int pci_bar_probe(struct pci_func f, unsigned bar, struct pci_bar *out);
/*
 * Makes memory BAR `bar` usable by the CPU: assigns it from
 * [PCI_ASSIGN_WINDOW_START, PCI_ASSIGN_WINDOW_END) when it reads 0 (clear of
 * every memory BAR on bus 0), and identity-maps it (uncached) when it lies
 * at or above 4 GiB. *out gets the result; *assigned / *mapped say what was
 * done. 0 ok, -1 with a reason printed after `who`.
 */
int pci_bar_setup(const char *who, struct pci_func f, unsigned bar, struct pci_bar *out, int *assigned, int *mapped);

/* Identity-maps [addr, addr+size) with uncached 2 MiB pages (page tables from a .bss pool; addresses below 256 TiB). 0 ok, -1 pool full. */
int identity_map_uncached(uint64_t addr, uint64_t size);

/* MSI-X: table size and base (through its BAR, which must be set up), entry programming, enable/disable. */
struct pci_msix {
	unsigned cap;		/* config offset, 0 = no MSI-X */
	unsigned size;		/* table entries */
	unsigned table_bar;
	uint32_t table_offset;
	uintptr_t table;	/* CPU address of entry 0, after setup */
};
int pci_msix_find(struct pci_func f, struct pci_msix *m);
/* Entry `index` -> `vector` on APIC `apic_id` (fixed, edge, physical), unmasked unless `masked`. */
void pci_msix_set(struct pci_msix *m, unsigned index, uint8_t vector, uint8_t apic_id, int masked);
void pci_msix_enable(struct pci_func f, struct pci_msix *m, int on);

#endif
