/*
 * smp: starts every AP with INIT, SIPI, SIPI (xAPIC ICR, all-excluding-self)
 * into the trampoline at TRAMPOLINE_BASE; each AP records its APIC id and
 * checks in with lock xadd. Prints how many CPUs came up and their APIC ids.
 *
 *   smp: N of M CPUs online
 *   smp: apic ids 0 1 2 ...
 *
 * M is CPUID.1:EBX[23:16] (0 counts as 1). Delays and the 2 s timeout use the
 * TSC; its frequency comes from CPUID 0x15 or 0x16 when present, else from
 * 10 ms of PIT channel 2, else an assumed 4 GHz (waits then run long, never short).
 */
#include "guest.h"
#include "smp.h"

#define LAPIC_ID 0x020		/* bits 31:24: this CPU's APIC id */
#define LAPIC_SVR 0x0f0		/* spurious vector register; bit 8 enables the APIC */
#define LAPIC_ICR_LOW 0x300	/* writing it sends the IPI */
#define LAPIC_ICR_HIGH 0x310	/* destination in bits 31:24 (unused with a shorthand) */
#define SVR_ENABLE 0x100
#define SPURIOUS_VECTOR 0xff
#define ICR_ALL_EXCLUDING_SELF 0x000c0000
#define ICR_LEVEL_ASSERT 0x00004000
#define ICR_DELIVERY_PENDING 0x00001000
#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600

#define PIT_CH2_DATA 0x42
#define PIT_COMMAND 0x43
#define PIT_GATE_PORT 0x61	/* bit 0: channel 2 gate; bit 1: speaker; bit 5: channel 2 output */
#define PIT_HZ 1193182
#define FALLBACK_TSC_HZ 4000000000ULL

volatile uint32_t ap_online;		/* APs that checked in (lock xadd) */
volatile uint8_t ap_apic_ids[MAX_APS];	/* by slot (ap_next_slot in trampoline.S) */
extern const char smp_trampoline_start[], smp_trampoline_end[], smp_trampoline_cr3[];

static uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
static void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }

/* Runs on each AP, on its own stack, once it is in long mode. */
void ap_main(uint32_t slot);
void ap_main(uint32_t slot)
{
	ap_apic_ids[slot] = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
	lock_xadd32(&ap_online, 1);
	halt_forever();
}

static uint64_t pit_calibrate_tsc(void)
{
	const uint32_t latch = PIT_HZ / 100; /* 10 ms */
	outb(PIT_GATE_PORT, (inb(PIT_GATE_PORT) & ~0x02) | 0x01);
	outb(PIT_COMMAND, 0xb0); /* channel 2, lobyte/hibyte, mode 0, binary */
	outb(PIT_CH2_DATA, latch & 0xff);
	outb(PIT_CH2_DATA, latch >> 8);
	uint64_t start = rdtsc();
	for (uint32_t i = 0; i < 10000000; i++) {
		if (inb(PIT_GATE_PORT) & 0x20) {
			uint64_t cycles = rdtsc() - start;
			/* an absent PIT reads 0xff at once: accept only >= 100 MHz */
			return cycles >= 1000000 ? cycles * 100 : 0;
		}
	}
	return 0;
}

static uint64_t tsc_hz(void)
{
	uint32_t a, b, c, d, max;
	cpuid(0, 0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, 0, &a, &b, &c, &d);
		if (a && b && c)
			return (uint64_t)c * b / a;
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, &a, &b, &c, &d);
		if (a & 0xffff)
			return (uint64_t)(a & 0xffff) * 1000000;
	}
	uint64_t hz = pit_calibrate_tsc();
	return hz ? hz : FALLBACK_TSC_HZ;
}

static uint64_t hz;

static void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + hz / 1000000 * us;
	while (rdtsc() < end)
		cpu_relax();
}

static void send_ipi(uint32_t icr_low)
{
	lapic_write(LAPIC_ICR_HIGH, 0);
	lapic_write(LAPIC_ICR_LOW, icr_low);
	for (int i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING); i++)
		cpu_relax();
}

void guest_main(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	uint32_t expected = (b >> 16) & 0xff;
	if (expected == 0)
		expected = 1;
	uint32_t bsp_id = lapic_read(LAPIC_ID) >> 24;

	if (expected > 1) {
		hz = tsc_hz();
		size_t size = (size_t)(smp_trampoline_end - smp_trampoline_start);
		memcpy((void *)TRAMPOLINE_BASE, smp_trampoline_start, size);
		*(volatile uint32_t *)(TRAMPOLINE_BASE + (smp_trampoline_cr3 - smp_trampoline_start)) = (uint32_t)read_cr3();

		lapic_write(LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
		send_ipi(ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_INIT);
		delay_us(10000);
		for (int i = 0; i < 2; i++) {
			send_ipi(ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_STARTUP | SIPI_VECTOR);
			delay_us(200);
		}
		uint64_t deadline = rdtsc() + hz * 2;
		while (ap_online < expected - 1 && rdtsc() < deadline)
			cpu_relax();
	}

	uint32_t online = ap_online;
	if (online > MAX_APS)
		online = MAX_APS;
	uint32_t ids[MAX_APS + 1];
	ids[0] = bsp_id;
	for (uint32_t i = 0; i < online; i++)
		ids[i + 1] = ap_apic_ids[i];
	uint32_t n = online + 1;
	for (uint32_t i = 1; i < n; i++) /* insertion sort, ascending */
		for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint32_t t = ids[j];
			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}

	printf("smp: %u of %u CPUs online\n", n, expected);
	printf("smp: apic ids");
	for (uint32_t i = 0; i < n; i++)
		printf(" %u", ids[i]);
	printf("\n");
}
