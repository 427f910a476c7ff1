/*
 * fault: a deliberate triple fault, for the VMM's shutdown diagnostic.
 *
 *   fault: about to triple fault
 *
 * Loads an IDT with limit 0 and executes ud2: #UD cannot be delivered (#GP),
 * nor can #GP (#DF), nor #DF: the CPU shuts down. Should the machine somehow
 * survive, it says so and resets.
 */
#include "guest.h"

void guest_main(void)
{
	static const struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} empty_idt = { 0, 0 };

	printf("fault: about to triple fault\n");
	for (int i = 0; i < 100000 && !(inb(COM1_BASE + UART_LSR) & UART_LSR_TEMT); i++)
		cpu_relax();
	cli();
	__asm__ volatile("lidt %0; ud2" : : "m"(empty_idt) : "memory");
	printf("fault: still running after ud2 with an empty IDT\n");
}
