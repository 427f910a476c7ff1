/*
 * Starting the application processors, shared by the smp guest and the bench
 * guests: copy the real-mode trampoline (trampoline.S) to TRAMPOLINE_BASE,
 * hand it the BSP's CR3, send INIT, SIPI, SIPI to every other CPU through the
 * xAPIC (all-excluding-self shorthand), then wait, bounded, for the APs to
 * check in.
 */
#include "guest.h"
#include "interrupts.h"
#include "smp.h"

extern const char smp_trampoline_start[], smp_trampoline_end[], smp_trampoline_cr3[];

#define INIT_DELAY_US 10000	/* INIT to the first SIPI, as the MP specification asks */
#define SIPI_DELAY_US 200	/* between the two SIPIs and after the second */
#define CHECK_IN_TIMEOUT_S 2	/* how long to wait for the APs before reporting who came */

static void delay_us(uint64_t hz, uint64_t us)
{
	uint64_t end = rdtsc() + hz / 1000000 * us;
	while (rdtsc() < end)
		cpu_relax();
}

uint32_t smp_start_aps(uint32_t expected, volatile uint32_t *checked_in, uint64_t hz)
{
	if (expected <= 1)
		return 1;
	if (hz == 0)
		hz = TSC_HZ_FALLBACK; /* too fast a guess only makes the waits longer */
	size_t size = (size_t)(smp_trampoline_end - smp_trampoline_start);
	memcpy((void *)TRAMPOLINE_BASE, smp_trampoline_start, size);
	*(volatile uint32_t *)(TRAMPOLINE_BASE + (smp_trampoline_cr3 - smp_trampoline_start)) = (uint32_t)read_cr3();

	lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
	lapic_send_ipi(ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_INIT);
	delay_us(hz, INIT_DELAY_US);
	for (int i = 0; i < 2; i++) {
		lapic_send_ipi(ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_STARTUP | SIPI_VECTOR);
		delay_us(hz, SIPI_DELAY_US);
	}
	uint64_t deadline = rdtsc() + hz * CHECK_IN_TIMEOUT_S;
	while (*checked_in < expected - 1 && rdtsc() < deadline)
		cpu_relax();
	return *checked_in + 1;
}
