/*
 * noread: a guest that never reads COM1's receiver. It prints a line, spins
 * for about 1.5 s of TSC time (bounded by an iteration count too, so a TSC
 * that does not advance cannot hang it), prints another line and resets.
 * Host input piped meanwhile has nowhere to go: the host must stop reading
 * it rather than queue it without bound (issue 12 item 3).
 */
#include "guest.h"

#define SPIN_MS 1500
#define SPIN_LIMIT 4000000000ULL	/* iterations: a bound should the TSC not move */

void guest_main(void)
{
	uint64_t hz = tsc_hz();
	printf("noread: spinning\n");
	uint64_t start = rdtsc();
	uint64_t cycles = hz / 1000 * SPIN_MS;
	for (uint64_t i = 0; i < SPIN_LIMIT; i++) {
		if (rdtsc() - start >= cycles)
			break;
		__asm__ volatile("pause");
	}
	printf("noread: done\n");
}
