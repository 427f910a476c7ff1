/*
 * irq-ioapic: the irq guest's COM1 interrupts, routed through the IOAPIC
 * instead of the 8259s. The PICs are programmed and fully masked, the local
 * APIC is software-enabled (LINT0 masked), and IOAPIC pin 4 (ISA IRQ 4: the
 * MP tables of tsvmm and of QEMU/SeaBIOS both wire ISA IRQs 1-15 to the
 * same-numbered pin) goes to vector 0x34: fixed, physical destination APIC
 * 0, edge, active high, unmasked. COM1's "transmit holding register empty"
 * interrupt is raised once when enabled and again after every character
 * written to THR; each is taken out of hlt (sti; hlt), the handler reads
 * IIR (clearing it), writes the local APIC EOI register and counts. After
 * interrupt k the main loop writes the k-th digit of "0123456789"; before
 * the last digit it turns the interrupt off. Output:
 *
 *   irq-ioapic: 0123456789
 *   irq-ioapic: 10 interrupts on vector 0x34
 */
#include "guest.h"
#include "interrupts.h"

#define COM1_PIN 4
#define COM1_VECTOR 0x34
#define BSP_APIC_ID 0

#define UART_IER_THRI 0x02	/* IER bit 1: THR empty interrupt */
#define UART_MCR_OUT2 0x08	/* MCR bit 3: routes the UART interrupt to the board on a PC */
#define UART_MCR_DTR_RTS 0x03

#define INTERRUPTS 10

static volatile uint32_t count;
static volatile uint32_t last_vector;
static volatile uint32_t bad_iir;
static volatile uint32_t spurious;

static void thre_handler(struct isr_frame *frame)
{
	uint8_t iir = inb(COM1_BASE + UART_IIR);
	if ((iir & 0x0f) != 0x02) /* 0x02: THR empty is the pending cause */
		bad_iir++;
	lapic_eoi();
	last_vector = (uint32_t)frame->vector;
	count++;
}

/* The local APIC's spurious vector: no EOI (SDM 11.9). */
static void spurious_handler(struct isr_frame *frame)
{
	(void)frame;
	spurious++;
}

/* Sleeps until at least n interrupts have been counted. */
static void wait_for_count(uint32_t n)
{
	for (;;) {
		cli();
		if (count >= n)
			return;
		sti_hlt();
	}
}

void guest_main(void)
{
	static const char digits[INTERRUPTS + 1] = "0123456789";

	printf("irq-ioapic: ");
	for (int i = 0; i < 100000 && !(inb(COM1_BASE + UART_LSR) & UART_LSR_TEMT); i++)
		cpu_relax();
	cli();
	set_interrupt_handler(COM1_VECTOR, thre_handler);
	set_interrupt_handler(SPURIOUS_VECTOR, spurious_handler);
	pic_disable();
	lapic_enable();
	ioapic_route_edge(COM1_PIN, COM1_VECTOR, BSP_APIC_ID);
	outb(COM1_BASE + UART_MCR, UART_MCR_DTR_RTS | UART_MCR_OUT2);
	outb(COM1_BASE + UART_IER, UART_IER_THRI); /* THR is empty: interrupt 1 */

	for (uint32_t k = 1; k <= INTERRUPTS; k++) {
		wait_for_count(k);
		if (k == INTERRUPTS)
			outb(COM1_BASE + UART_IER, 0); /* no interrupt for the last digit */
		outb(COM1_BASE + UART_THR, (uint8_t)digits[k - 1]);
	}
	cli();
	ioapic_mask(COM1_PIN);
	printf("\n");
	printf("irq-ioapic: %u interrupts on vector 0x%x\n", count, last_vector);
	if (bad_iir)
		printf("irq-ioapic: %u interrupts without THR empty in IIR\n", bad_iir);
	if (spurious)
		printf("irq-ioapic: %u spurious interrupts\n", spurious);
}
