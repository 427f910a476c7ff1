/*
 * smp: starts every AP with INIT, SIPI, SIPI (xAPIC ICR, all-excluding-self)
 * into the trampoline at TRAMPOLINE_BASE; each AP records its APIC id and
 * checks in with lock xadd. Prints how many CPUs came up and their APIC ids.
 *
 *   smp: N of M CPUs online
 *   smp: apic ids 0 1 2 ...
 *
 * M is CPUID.1:EBX[23:16] (0 counts as 1). Delays and the 2 s timeout use the
 * TSC, at the rate tsc_hz() gives (common/tsc.c; an assumed 4 GHz when nothing
 * tells it, so waits then run long, never short).
 */
#include "guest.h"
#include "interrupts.h"
#include "smp.h"

volatile uint32_t ap_online;		/* APs that checked in (lock xadd) */
volatile uint8_t ap_apic_ids[MAX_APS];	/* by slot (ap_next_slot in trampoline.S) */

/* Runs on each AP, on its own stack, once it is in long mode. */
void ap_main(uint32_t slot);
void ap_main(uint32_t slot)
{
	ap_apic_ids[slot] = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
	lock_xadd32(&ap_online, 1);
	halt_forever();
}

void guest_main(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	uint32_t expected = (b >> 16) & 0xff;
	if (expected == 0)
		expected = 1;
	uint32_t bsp_id = lapic_read(LAPIC_ID) >> 24;

	if (expected > 1)
		smp_start_aps(expected, &ap_online, tsc_hz());

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
