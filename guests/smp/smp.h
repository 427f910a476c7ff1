/* Constants shared by smp.c and trampoline.S. */
#ifndef SMP_H
#define SMP_H

/* The real-mode trampoline's page: below the PVH info at 0x6000 and the zero
 * page at 0x7000, clear of the GDT at 0x500. The SIPI vector is its page number. */
#define TRAMPOLINE_BASE 0x3000
#define SIPI_VECTOR (TRAMPOLINE_BASE >> 12)

/* At most this many APs get a stack and check in; later ones park. */
#define MAX_APS 64
#define AP_STACK_SIZE 0x1000

#endif
