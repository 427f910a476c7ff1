/*
 * The PC's interrupt controllers, as the test guests program them: the two
 * 8259A PICs, the local APIC (xAPIC MMIO at LAPIC_BASE) and the 82093AA
 * IOAPIC (at IOAPIC_BASE). Register numbers from the Intel SDM vol. 3
 * chapter 11 (xAPIC), the 8259A and the 82093AA datasheets. Everything is
 * static inline: a guest that includes this and calls nothing gets no code.
 */
#ifndef GUEST_INTERRUPTS_H
#define GUEST_INTERRUPTS_H

#include "guest.h"

/* ---- 8259A PICs ---- */
#define PIC1_COMMAND 0x20
#define PIC1_DATA 0x21
#define PIC2_COMMAND 0xa0
#define PIC2_DATA 0xa1
#define PIC_ICW1_INIT_ICW4 0x11	/* ICW1: edge triggered, cascade, ICW4 follows */
#define PIC_ICW4_8086 0x01
#define PIC_EOI 0x20		/* OCW2: non-specific end of interrupt */
#define PIC1_VECTOR_BASE 0x20	/* spurious IRQ7/IRQ15 land here, not on exception vectors */
#define PIC2_VECTOR_BASE 0x28
#define PIC_CASCADE_IRQ 2	/* the master input the slave is wired to, as on every PC */
#define PIC_MASK_ALL 0xff

/* Initialises both PICs (vectors 0x20/0x28, slave on IRQ2, 8086 mode) and sets their masks (a set bit masks the line). */
static inline void pic_init(uint8_t master_mask, uint8_t slave_mask)
{
	outb(PIC1_COMMAND, PIC_ICW1_INIT_ICW4);
	outb(PIC2_COMMAND, PIC_ICW1_INIT_ICW4);
	outb(PIC1_DATA, PIC1_VECTOR_BASE);	/* ICW2 */
	outb(PIC2_DATA, PIC2_VECTOR_BASE);
	outb(PIC1_DATA, 1 << PIC_CASCADE_IRQ);	/* ICW3: slave on IRQ2 */
	outb(PIC2_DATA, PIC_CASCADE_IRQ);	/* ICW3: slave id 2 */
	outb(PIC1_DATA, PIC_ICW4_8086);
	outb(PIC2_DATA, PIC_ICW4_8086);
	outb(PIC1_DATA, master_mask);
	outb(PIC2_DATA, slave_mask);
}

/* Initialised (so a spurious IRQ cannot look like an exception) and every line masked: for guests that use the IOAPIC. */
static inline void pic_disable(void) { pic_init(PIC_MASK_ALL, PIC_MASK_ALL); }
/* Masks every line without re-initialising (whatever vectors the firmware chose stay). */
static inline void pic_mask_all(void)
{
	outb(PIC1_DATA, PIC_MASK_ALL);
	outb(PIC2_DATA, PIC_MASK_ALL);
}
/* End of interrupt for IRQ 0-7 (the master alone; IRQ 8-15 would need the slave's too). */
static inline void pic_eoi(void) { outb(PIC1_COMMAND, PIC_EOI); }

/* ---- Local APIC ---- */
#define LAPIC_ID 0x020		/* bits 31:24: this CPU's APIC id */
#define LAPIC_EOI 0x0b0		/* write 0: end of interrupt */
#define LAPIC_SVR 0x0f0		/* spurious vector register */
#define LAPIC_ICR_LOW 0x300	/* writing it sends the IPI */
#define LAPIC_ICR_HIGH 0x310	/* destination in bits 31:24 (unused with a shorthand) */
#define LAPIC_LVT0 0x350	/* LINT0, where the PIC's INTR arrives */
#define LAPIC_LVT1 0x360	/* LINT1, NMI */
#define SVR_APIC_ENABLE 0x100	/* bit 8: APIC software enable */
#define SPURIOUS_VECTOR 0xff
#define LVT_MASKED 0x10000
#define LVT_EXTINT 0x700
#define LVT_NMI 0x400
#define ICR_ALL_EXCLUDING_SELF 0x000c0000
#define ICR_LEVEL_ASSERT 0x00004000
#define ICR_DELIVERY_PENDING 0x00001000
#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600
#define ICR_POLL_LIMIT 100000	/* bound on the wait for an IPI's delivery */

static inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }
static inline void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

/* Virtual-wire mode, as an OS sets it up: the local APIC on, LINT0 = ExtINT (the PIC), LINT1 = NMI. */
static inline void lapic_virtual_wire(void)
{
	lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
	lapic_write(LAPIC_LVT0, LVT_EXTINT);
	lapic_write(LAPIC_LVT1, LVT_NMI);
}

/* The local APIC software-enabled, LINT0 (the PIC's ExtINT) masked, LINT1 NMI: symmetric I/O mode as an OS sets it up. */
static inline void lapic_enable(void)
{
	lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
	lapic_write(LAPIC_LVT0, LVT_MASKED | LVT_EXTINT);
	lapic_write(LAPIC_LVT1, LVT_NMI);
}

/* Sends an IPI (ICR high = 0: shorthands only) and waits, bounded, until the APIC has delivered it. */
static inline void lapic_send_ipi(uint32_t icr_low)
{
	lapic_write(LAPIC_ICR_HIGH, 0);
	lapic_write(LAPIC_ICR_LOW, icr_low);
	for (int i = 0; i < ICR_POLL_LIMIT && (lapic_read(LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING); i++)
		cpu_relax();
}

/* ---- IOAPIC: IOREGSEL selects, IOWIN reads/writes the register ---- */
#define IOAPIC_IOREGSEL 0x00
#define IOAPIC_IOWIN 0x10
#define IOAPIC_REG_VER 0x01	/* bits 23:16: max redirection entry; 7:0 version */
#define IOAPIC_REDTBL(pin) (0x10 + 2 * (pin))	/* low dword; the high dword is +1 */
#define IOAPIC_FIXED 0x000	/* delivery mode 000 (bits 10:8) */
#define IOAPIC_PHYSICAL 0x000	/* destination mode 0 (bit 11) */
#define IOAPIC_ACTIVE_HIGH 0x000	/* polarity 0 (bit 13) */
#define IOAPIC_EDGE 0x000	/* trigger mode 0 (bit 15) */
#define IOAPIC_MASKED 0x10000	/* bit 16 */
#define IOAPIC_DEST_SHIFT 24	/* destination in bits 63:56 = high dword bits 31:24 */

static inline uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_IOREGSEL, reg);
	return mmio_read32(IOAPIC_BASE + IOAPIC_IOWIN);
}

static inline void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_IOREGSEL, reg);
	mmio_write32(IOAPIC_BASE + IOAPIC_IOWIN, v);
}

/* Routes IOAPIC `pin` to `vector` on APIC `apic_id`: fixed, physical, edge, active high, unmasked. High dword first, as Linux. */
static inline void ioapic_route_edge(unsigned pin, uint8_t vector, uint8_t apic_id)
{
	ioapic_write(IOAPIC_REDTBL(pin), IOAPIC_MASKED);
	ioapic_write(IOAPIC_REDTBL(pin) + 1, (uint32_t)apic_id << IOAPIC_DEST_SHIFT);
	ioapic_write(IOAPIC_REDTBL(pin), IOAPIC_FIXED | IOAPIC_PHYSICAL | IOAPIC_ACTIVE_HIGH | IOAPIC_EDGE | vector);
}

static inline void ioapic_mask(unsigned pin)
{
	ioapic_write(IOAPIC_REDTBL(pin), ioapic_read(IOAPIC_REDTBL(pin)) | IOAPIC_MASKED);
}

#endif
