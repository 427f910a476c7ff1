/* Constants shared by smp.c, ap-start.c and trampoline.S (and the bench guests). */
#ifndef SMP_H
#define SMP_H

/* The real-mode trampoline's page: below the PVH info at 0x6000 and the zero
 * page at 0x7000, clear of the GDT at 0x500. The SIPI vector is its page number. */
#define TRAMPOLINE_BASE 0x3000
#define SIPI_VECTOR (TRAMPOLINE_BASE >> 12)

/* At most this many APs get a stack and check in; later ones park. */
#define MAX_APS 64
#define AP_STACK_SIZE 0x1000

#ifndef __ASSEMBLER__
#include <stdint.h>
/*
 * Starts every AP (each runs ap_main(slot) once in long mode) and waits up to
 * 2 s for expected - 1 of them to increment *checked_in. `hz` is the TSC rate
 * for the delays (0: an assumed 4 GHz). Returns the CPUs online, BSP included.
 */
uint32_t smp_start_aps(uint32_t expected, volatile uint32_t *checked_in, uint64_t hz);
#endif

#endif
