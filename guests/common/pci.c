/*
 * PCI configuration access, bus-0 scan, capabilities, BARs and MSI-X for the
 * test guests (see pci.h). In libguest.a: only guests that call it carry it.
 */
#include "pci.h"

#define CAP_WALK_LIMIT 48	/* 256-byte config space / 4-byte minimum capability, plus slack */
#define PAGE_POOL_PAGES 8
#define PTE_ADDR_MASK 0x000ffffffffff000ull
#define PAGE_2M 0x200000ull
#define FOUR_GIB 0x100000000ull
#define VA_LIMIT (1ull << 48)

static uint32_t config_address(struct pci_func f, unsigned reg)
{
	return PCI_CONFIG_ENABLE | (uint32_t)f.slot << 11 | (uint32_t)f.fn << 8 | (reg & 0xfc);
}

uint32_t pci_read32(struct pci_func f, unsigned reg)
{
	outl(PCI_CONFIG_ADDRESS, config_address(f, reg));
	return inl(PCI_CONFIG_DATA);
}

uint16_t pci_read16(struct pci_func f, unsigned reg)
{
	outl(PCI_CONFIG_ADDRESS, config_address(f, reg));
	return inw((uint16_t)(PCI_CONFIG_DATA + (reg & 2)));
}

uint8_t pci_read8(struct pci_func f, unsigned reg)
{
	outl(PCI_CONFIG_ADDRESS, config_address(f, reg));
	return inb((uint16_t)(PCI_CONFIG_DATA + (reg & 3)));
}

void pci_write32(struct pci_func f, unsigned reg, uint32_t v)
{
	outl(PCI_CONFIG_ADDRESS, config_address(f, reg));
	outl(PCI_CONFIG_DATA, v);
}

void pci_write16(struct pci_func f, unsigned reg, uint16_t v)
{
	outl(PCI_CONFIG_ADDRESS, config_address(f, reg));
	outw((uint16_t)(PCI_CONFIG_DATA + (reg & 2)), v);
}

void pci_write8(struct pci_func f, unsigned reg, uint8_t v)
{
	outl(PCI_CONFIG_ADDRESS, config_address(f, reg));
	outb((uint16_t)(PCI_CONFIG_DATA + (reg & 3)), v);
}

/* Calls visit(f) for every function present on bus 0 until it returns non-zero; returns that. */
static int for_each_function(int (*visit)(struct pci_func f, void *arg), void *arg)
{
	for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
		struct pci_func f = { (uint8_t)slot, 0 };
		if (pci_read16(f, PCI_VENDOR_ID) == 0xffff)
			continue;
		unsigned fns = (pci_read8(f, PCI_HEADER_TYPE) & PCI_HEADER_MULTIFUNCTION) ? PCI_FUNCTIONS : 1;
		for (unsigned fn = 0; fn < fns; fn++) {
			f.fn = (uint8_t)fn;
			if (pci_read16(f, PCI_VENDOR_ID) == 0xffff)
				continue;
			int r = visit(f, arg);
			if (r)
				return r;
		}
	}
	return 0;
}

struct find_arg {
	uint32_t id;
	struct pci_func *out;
};

static int match_id(struct pci_func f, void *arg)
{
	struct find_arg *a = arg;
	if (pci_read32(f, PCI_VENDOR_ID) != a->id)
		return 0;
	*a->out = f;
	return 1;
}

int pci_find(uint16_t vendor, uint16_t device, struct pci_func *out)
{
	struct find_arg a = { (uint32_t)device << 16 | vendor, out };
	return for_each_function(match_id, &a);
}

unsigned pci_find_cap(struct pci_func f, uint8_t id, unsigned after)
{
	if (!(pci_read16(f, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	unsigned p = after ? pci_read8(f, after + 1) & 0xfc : pci_read8(f, PCI_CAP_PTR) & 0xfc;
	for (int n = 0; p >= 0x40 && n < CAP_WALK_LIMIT; n++) {
		if (pci_read8(f, p) == id)
			return p;
		p = pci_read8(f, p + 1) & 0xfc;
	}
	return 0;
}

int pci_bar_probe(struct pci_func f, unsigned bar, struct pci_bar *out)
{
	memset(out, 0, sizeof(*out));
	if (bar >= PCI_BARS)
		return -1;
	unsigned reg = PCI_BAR0 + 4 * bar;
	uint32_t lo = pci_read32(f, reg);
	uint16_t command = pci_read16(f, PCI_COMMAND);
	pci_write16(f, PCI_COMMAND, command & (uint16_t)~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	pci_write32(f, reg, 0xffffffff);
	uint32_t mask_lo = pci_read32(f, reg);
	pci_write32(f, reg, lo);
	if (lo & PCI_BAR_IO) {
		out->is_io = 1;
		out->addr = lo & ~3u;
		uint32_t m = mask_lo & ~3u;
		out->size = m ? (uint32_t)(~m + 1) & 0xffff : 0;
	} else {
		out->is64 = (lo & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_64 && bar + 1 < PCI_BARS;
		out->prefetch = (lo & PCI_BAR_PREFETCH) != 0;
		uint64_t addr = lo & ~0xfull, mask = mask_lo & ~0xfull;
		if (out->is64) {
			uint32_t hi = pci_read32(f, reg + 4);
			pci_write32(f, reg + 4, 0xffffffff);
			uint32_t mask_hi = pci_read32(f, reg + 4);
			pci_write32(f, reg + 4, hi);
			addr |= (uint64_t)hi << 32;
			mask |= (uint64_t)mask_hi << 32;
		} else if (mask) {
			mask |= 0xffffffff00000000ull;
		}
		out->addr = addr;
		out->size = mask ? ~mask + 1 : 0;
	}
	pci_write16(f, PCI_COMMAND, command);
	return 0;
}

/* ---- Assignment of a BAR left at 0 ---- */
struct overlap_arg {
	struct pci_func self;
	unsigned self_bar;
	uint64_t start, end;	/* candidate range; set to the first conflict's end when one is found */
};

static int find_overlap(struct pci_func f, void *arg)
{
	struct overlap_arg *a = arg;
	for (unsigned bar = 0; bar < PCI_BARS; bar++) {
		struct pci_bar b;
		pci_bar_probe(f, bar, &b);
		int self = f.slot == a->self.slot && f.fn == a->self.fn && bar == a->self_bar;
		if (!self && !b.is_io && b.size && b.addr && b.addr < a->end && b.addr + b.size > a->start) {
			a->start = b.addr + b.size;	/* resume after the conflict */
			return 1;
		}
		if (b.is64)
			bar++;
	}
	return 0;
}

static int assign_bar(struct pci_func f, unsigned bar, struct pci_bar *b)
{
	uint64_t size = b->size < 0x1000 ? 0x1000 : b->size;
	uint64_t at = (PCI_ASSIGN_WINDOW_START + size - 1) & ~(size - 1);
	for (int tries = 0; tries < 2 * PCI_SLOTS * PCI_BARS && at + size <= PCI_ASSIGN_WINDOW_END; tries++) {
		struct overlap_arg a = { f, bar, at, at + size };
		if (!for_each_function(find_overlap, &a)) {
			uint16_t command = pci_read16(f, PCI_COMMAND);
			pci_write16(f, PCI_COMMAND, command & (uint16_t)~PCI_COMMAND_MEMORY);
			pci_write32(f, PCI_BAR0 + 4 * bar, (uint32_t)at | (pci_read32(f, PCI_BAR0 + 4 * bar) & 0xf));
			if (b->is64)
				pci_write32(f, PCI_BAR0 + 4 * bar + 4, 0);
			pci_write16(f, PCI_COMMAND, command);
			b->addr = at;
			return 0;
		}
		at = (a.start + size - 1) & ~(size - 1);
	}
	return -1;
}

/* ---- Identity maps above 4 GiB ---- */
static uint64_t page_pool[PAGE_POOL_PAGES][512] __attribute__((aligned(4096)));
static unsigned page_pool_used;

static uint64_t *table_at(uint64_t *entry)
{
	if (!(*entry & PTE_PRESENT)) {
		if (page_pool_used == PAGE_POOL_PAGES)
			return 0;
		uint64_t *t = page_pool[page_pool_used++];
		memset(t, 0, 4096);
		*entry = (uint64_t)(uintptr_t)t | PTE_PRESENT | PTE_WRITE;
	} else if (*entry & PTE_LARGE) {
		return 0;	/* a 1 GiB page is there already: not ours to split */
	}
	return (uint64_t *)(uintptr_t)(*entry & PTE_ADDR_MASK);
}

int identity_map_uncached(uint64_t addr, uint64_t size)
{
	if (addr + size > VA_LIMIT || addr + size < addr)
		return -1;
	uint64_t *pml4 = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR_MASK);
	for (uint64_t page = addr & ~(PAGE_2M - 1); page < addr + size; page += PAGE_2M) {
		uint64_t *pdpt = table_at(&pml4[(page >> 39) & 511]);
		uint64_t *pd = pdpt ? table_at(&pdpt[(page >> 30) & 511]) : 0;
		if (!pd)
			return -1;
		pd[(page >> 21) & 511] = page | PTE_PRESENT | PTE_WRITE | PTE_LARGE | PTE_PCD | PTE_PWT;
	}
	__asm__ volatile("mov %0, %%cr3" : : "r"(read_cr3()) : "memory");	/* flush the TLB */
	return 0;
}

int pci_bar_setup(const char *who, struct pci_func f, unsigned bar, struct pci_bar *out, int *assigned, int *mapped)
{
	*assigned = *mapped = 0;
	if (pci_bar_probe(f, bar, out) || out->size == 0 || out->is_io) {
		printf("%s: bar%u is not a memory bar\n", who, bar);
		return -1;
	}
	if (out->addr == 0) {
		if (assign_bar(f, bar, out)) {
			printf("%s: no room for bar%u (0x%lx bytes)\n", who, bar, out->size);
			return -1;
		}
		*assigned = 1;
	}
	if (out->addr + out->size > FOUR_GIB) {
		if (identity_map_uncached(out->addr, out->size) == 0) {
			*mapped = 1;
		} else {
			/* beyond what the pool can map: move it below 4 GiB instead */
			if (assign_bar(f, bar, out)) {
				printf("%s: bar%u at 0x%lx can be neither mapped nor moved\n", who, bar, out->addr);
				return -1;
			}
			*assigned = 1;
		}
	}
	return 0;
}

/* ---- MSI-X ---- */
int pci_msix_find(struct pci_func f, struct pci_msix *m)
{
	memset(m, 0, sizeof(*m));
	m->cap = pci_find_cap(f, PCI_CAP_ID_MSIX, 0);
	if (!m->cap)
		return -1;
	m->size = (pci_read16(f, m->cap + MSIX_CTRL) & MSIX_CTRL_SIZE_MASK) + 1;
	uint32_t t = pci_read32(f, m->cap + MSIX_TABLE);
	m->table_bar = t & MSIX_BIR_MASK;
	m->table_offset = t & ~(uint32_t)MSIX_BIR_MASK;
	return 0;
}

void pci_msix_set(struct pci_msix *m, unsigned index, uint8_t vector, uint8_t apic_id, int masked)
{
	uintptr_t e = m->table + index * MSIX_ENTRY_SIZE;
	mmio_write32(e + MSIX_ENTRY_CTRL, MSIX_ENTRY_MASKED);
	mmio_write32(e + MSIX_ENTRY_ADDR_LO, MSI_ADDRESS_BASE | (uint32_t)apic_id << MSI_DEST_SHIFT);
	mmio_write32(e + MSIX_ENTRY_ADDR_HI, 0);
	mmio_write32(e + MSIX_ENTRY_DATA, vector);	/* fixed delivery, edge */
	mmio_write32(e + MSIX_ENTRY_CTRL, masked ? MSIX_ENTRY_MASKED : 0);
}

void pci_msix_enable(struct pci_func f, struct pci_msix *m, int on)
{
	uint16_t ctrl = pci_read16(f, m->cap + MSIX_CTRL);
	ctrl &= (uint16_t)~(MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK);
	if (on)
		ctrl |= MSIX_CTRL_ENABLE;
	pci_write16(f, m->cap + MSIX_CTRL, ctrl);
}
