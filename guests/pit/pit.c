/*
 * pit: the 8254 PIT's channel 0 in mode 2 at 1 kHz (count 1193), its IRQ 0
 * routed through the IOAPIC with the 8259s fully masked. Counts 100 timer
 * interrupts, timing them with the TSC from the moment the count is loaded
 * to the 100th interrupt, and checks the rate is plausible: 250-2000 Hz.
 * Measured this way a late interrupt can only lower the rate, never raise
 * it (no catch-up burst counts), and the band is generous at the bottom
 * because on a loaded two-core nested host KVM's PIT worker and a
 * userspace PIT's timers run late; it still catches the 18.2 Hz of an
 * unprogrammed channel, a lost count byte, or a doubled rate.
 * Output:
 *
 *   pit: 100 ticks
 *   pit: rate ok
 *
 * Which IOAPIC pin carries ISA IRQ 0 differs between boards: QEMU's PC (and
 * KVM's in-kernel PIT under QEMU, whose GSI routing QEMU sets) wires it to
 * pin 2 and SeaBIOS's MP table says so; tsvmm keeps KVM's default routing,
 * where GSI 0 is pin 0, and its MP table says pin 0. The guest asks the MP table as Linux does
 * (mpparse.c: the "_MP_" floating pointer on a 16-byte boundary in the last
 * KiB of base memory, 0x9fc00, or in the BIOS ROM, 0xf0000-0xfffff; then the
 * I/O interrupt entry for source bus ISA, IRQ 0), and falls back to pin 2
 * when there is no MP table or no such entry.
 *
 * To prove the table right, the other candidate pin (2 if the table says 0,
 * else 0) is routed too, to a second vector. A tick arriving there means the
 * table names the wrong pin (Linux then reports "MP-BIOS bug: 8254 timer not
 * connected to IO-APIC"); the guest says so in extra lines:
 *
 *   pit: IRQ 0 arrived on IOAPIC pin P (N times), but the MP table says pin Q
 *
 * Every wait is bounded by the TSC (3 s at the rate tsc_hz() gives).
 */
#include "guest.h"
#include "interrupts.h"

#define PIT_1KHZ_COUNT 1193	/* 1193182 / 1193 = 1000.15 Hz */

#define TICKS 100
#define RATE_MIN_HZ 250
#define RATE_MAX_HZ 2000
#define WAIT_SECONDS 3

#define TIMER_VECTOR 0x40	/* the MP table's pin */
#define OTHER_VECTOR 0x41	/* the other candidate pin */
#define DEFAULT_IRQ0_PIN 2	/* QEMU's PC, and the ACPI interrupt source override every PC BIOS has */
#define BSP_APIC_ID 0

/* MP Spec 1.4 structures (chapter 4). */
#define MPF_SIGNATURE 0x5f504d5f	/* "_MP_" little-endian */
#define MPC_SIGNATURE 0x504d4350	/* "PCMP" */
#define MPF_LENGTH 16
#define MPC_HEADER_LENGTH 44
#define MP_PROCESSOR 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_INTSRC 3
#define MP_LINTSRC 4
#define MP_PROCESSOR_LENGTH 20
#define MP_ENTRY_LENGTH 8	/* every other entry type */
#define MP_INT 0		/* I/O interrupt type: vectored (not NMI, SMI or ExtINT) */
#define BASE_MEMORY_LAST_KIB 0x9fc00
#define BIOS_ROM_START 0xf0000
#define BIOS_ROM_END 0x100000
#define NO_PIN 0xff

struct mpf_intel {
	uint32_t signature;
	uint32_t physptr;
	uint8_t length;		/* in 16-byte paragraphs */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature1;	/* non-zero: a default configuration, no table */
	uint8_t feature2[4];
} __attribute__((packed));

struct mpc_table {
	uint32_t signature;
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint32_t reserved;
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

static volatile uint32_t ticks;
static volatile uint32_t other_ticks;
static volatile uint64_t last_tsc;

static void timer_handler(struct isr_frame *frame)
{
	(void)frame;
	uint64_t now = rdtsc();
	if (ticks < TICKS) {
		ticks++;
		last_tsc = now;
	}
	lapic_eoi();
}

static void other_handler(struct isr_frame *frame)
{
	(void)frame;
	other_ticks++;
	lapic_eoi();
}

static void spurious_handler(struct isr_frame *frame)
{
	(void)frame; /* the local APIC's spurious vector takes no EOI (SDM 11.9) */
}

/* ---- MP table ---- */
static int checksum_ok(const volatile uint8_t *p, uint32_t length)
{
	uint8_t sum = 0;
	for (uint32_t i = 0; i < length; i++)
		sum = (uint8_t)(sum + p[i]);
	return sum == 0;
}

static const struct mpf_intel *find_mpf(uint32_t start, uint32_t end)
{
	for (uint32_t a = start; a + MPF_LENGTH <= end; a += MPF_LENGTH) {
		const struct mpf_intel *mpf = (const struct mpf_intel *)(uintptr_t)a;
		if (mpf->signature == MPF_SIGNATURE && mpf->length == 1 && checksum_ok((const uint8_t *)mpf, MPF_LENGTH))
			return mpf;
	}
	return NULL;
}

static int is_isa(const char bustype[6])
{
	return bustype[0] == 'I' && bustype[1] == 'S' && bustype[2] == 'A';
}

/* The IOAPIC pin the MP table gives ISA IRQ 0, or NO_PIN. */
static uint8_t mptable_irq0_pin(void)
{
	const struct mpf_intel *mpf = find_mpf(BASE_MEMORY_LAST_KIB, BASE_MEMORY_LAST_KIB + 0x400);
	if (!mpf)
		mpf = find_mpf(BIOS_ROM_START, BIOS_ROM_END);
	if (!mpf || mpf->feature1 != 0 || mpf->physptr == 0 || mpf->physptr >= BIOS_ROM_END)
		return NO_PIN;
	const struct mpc_table *mpc = (const struct mpc_table *)(uintptr_t)mpf->physptr;
	if (mpc->signature != MPC_SIGNATURE || mpc->length < MPC_HEADER_LENGTH || mpf->physptr + mpc->length > BIOS_ROM_END ||
	    !checksum_ok((const uint8_t *)mpc, mpc->length))
		return NO_PIN;

	uint32_t isa_bus = 0x100; /* none yet */
	uint8_t pin = NO_PIN;
	const uint8_t *p = (const uint8_t *)mpc + MPC_HEADER_LENGTH;
	const uint8_t *end = (const uint8_t *)mpc + mpc->length;
	for (uint32_t n = 0; n < mpc->oemcount && p < end; n++) {
		switch (p[0]) {
		case MP_PROCESSOR:
			p += MP_PROCESSOR_LENGTH;
			break;
		case MP_BUS: {
			const struct mpc_bus *bus = (const struct mpc_bus *)p;
			if (is_isa(bus->bustype))
				isa_bus = bus->busid;
			p += MP_ENTRY_LENGTH;
			break;
		}
		case MP_INTSRC: {
			const struct mpc_intsrc *src = (const struct mpc_intsrc *)p;
			/* buses come before interrupt entries (MP Spec 4.3: entries in ascending type order) */
			if (src->irqtype == MP_INT && src->srcbus == isa_bus && src->srcbusirq == 0 && pin == NO_PIN)
				pin = src->dstirq;
			p += MP_ENTRY_LENGTH;
			break;
		}
		case MP_IOAPIC:
		case MP_LINTSRC:
			p += MP_ENTRY_LENGTH;
			break;
		default:
			return pin; /* unknown entry type: its length is unknown, stop */
		}
	}
	return pin;
}

void guest_main(void)
{
	cli();
	uint64_t hz = tsc_hz();
	uint8_t table_pin = mptable_irq0_pin();
	uint8_t pin = table_pin == NO_PIN ? DEFAULT_IRQ0_PIN : table_pin;
	uint8_t other = pin == 0 ? 2 : 0;

	set_interrupt_handler(TIMER_VECTOR, timer_handler);
	set_interrupt_handler(OTHER_VECTOR, other_handler);
	set_interrupt_handler(SPURIOUS_VECTOR, spurious_handler);
	pic_disable();
	lapic_enable();
	ioapic_route_edge(pin, TIMER_VECTOR, BSP_APIC_ID);
	ioapic_route_edge(other, OTHER_VECTOR, BSP_APIC_ID);

	outb(PIT_COMMAND, PIT_CH0_MODE2_LOHI);
	outb(PIT_CH0_DATA, PIT_1KHZ_COUNT & 0xff);
	uint64_t start_tsc = rdtsc(); /* the count starts with its second byte, just after this */
	outb(PIT_CH0_DATA, PIT_1KHZ_COUNT >> 8);

	uint64_t deadline = rdtsc() + hz * WAIT_SECONDS;
	sti();
	while (ticks < TICKS && rdtsc() < deadline)
		cpu_relax();
	cli();
	ioapic_mask(pin);
	ioapic_mask(other);
	/* Stop channel 0: mode 0 with a count it never reaches again before the reset. */
	outb(PIT_COMMAND, PIT_CH0_MODE0_LOHI);
	outb(PIT_CH0_DATA, 0xff);
	outb(PIT_CH0_DATA, 0xff);

#ifdef PIT_DEBUG /* a debug build (compile pit.c with -DPIT_DEBUG): where IRQ 0 arrived and how fast */
	printf("pit: debug: MP table IRQ 0 pin %d, ticks on pin %u: %u, on pin %u: %u, TSC %lu Hz, %lu cycles\n",
	       table_pin == NO_PIN ? -1 : (int)table_pin, pin, ticks, other, other_ticks, hz, last_tsc - start_tsc);
#endif
	printf("pit: %u ticks\n", ticks);
	if (ticks > 0) {
		uint64_t cycles = last_tsc - start_tsc;
		uint64_t rate = cycles ? (uint64_t)ticks * hz / cycles : 0;
		if (rate >= RATE_MIN_HZ && rate <= RATE_MAX_HZ)
			printf("pit: rate ok\n");
		else
			printf("pit: rate %lu Hz is outside %u-%u Hz (TSC %lu Hz)\n", rate, RATE_MIN_HZ, RATE_MAX_HZ, hz);
	}
	if (ticks == 0 && other_ticks == 0)
		printf("pit: no timer interrupt on IOAPIC pin %u (%s) or pin %u\n", pin,
		       table_pin == NO_PIN ? "the default: no MP table entry for ISA IRQ 0" : "from the MP table", other);
	if (other_ticks && table_pin != NO_PIN)
		printf("pit: IRQ 0 arrived on IOAPIC pin %u (%u times), but the MP table says pin %u\n", other, other_ticks, table_pin);
	else if (other_ticks)
		printf("pit: IRQ 0 arrived on IOAPIC pin %u (%u times), not on the default pin %u (no MP table entry)\n", other, other_ticks, pin);
}
