/*
 * irq: legacy interrupt delivery through the 8259 PICs. COM1's "transmit
 * holding register empty" interrupt (IRQ4, vector 0x24) is raised once when
 * it is enabled and again after every character written to THR; each one is
 * taken out of hlt (sti; hlt, so an interrupt that is already pending is not
 * lost), the handler reads IIR (clearing it), sends EOI and counts. After
 * interrupt k the main loop writes the k-th digit of "0123456789" to THR;
 * before the last digit it turns the interrupt off again. Output:
 *
 *   irq: 0123456789
 *   irq: 10 interrupts on vector 0x24
 */
#include "guest.h"
#include "interrupts.h"

#define COM1_IRQ 4
#define COM1_VECTOR (PIC1_VECTOR_BASE + COM1_IRQ)

#define UART_IER_THRI 0x02	/* IER bit 1: THR empty interrupt */
#define UART_MCR_OUT2 0x08	/* MCR bit 3: routes the UART interrupt to the PIC on a PC */
#define UART_MCR_DTR_RTS 0x03

#define INTERRUPTS 10

static volatile uint32_t count;
static volatile uint32_t last_vector;
static volatile uint32_t bad_iir;

static void thre_handler(struct isr_frame *frame)
{
	uint8_t iir = inb(COM1_BASE + UART_IIR);
	if ((iir & 0x0f) != 0x02) /* 0x02: THR empty is the pending cause */
		bad_iir++;
	pic_eoi();
	last_vector = (uint32_t)frame->vector;
	count++;
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

	printf("irq: ");
	for (int i = 0; i < 100000 && !(inb(COM1_BASE + UART_LSR) & UART_LSR_TEMT); i++)
		cpu_relax();
	cli();
	set_interrupt_handler(COM1_VECTOR, thre_handler);
	lapic_virtual_wire();
	pic_init((uint8_t)~(1 << COM1_IRQ), PIC_MASK_ALL); /* mask all but IRQ4 */
	outb(COM1_BASE + UART_MCR, UART_MCR_DTR_RTS | UART_MCR_OUT2);
	outb(COM1_BASE + UART_IER, UART_IER_THRI); /* THR is empty: interrupt 1 */

	for (uint32_t k = 1; k <= INTERRUPTS; k++) {
		wait_for_count(k);
		if (k == INTERRUPTS)
			outb(COM1_BASE + UART_IER, 0); /* no interrupt for the last digit */
		outb(COM1_BASE + UART_THR, (uint8_t)digits[k - 1]);
	}
	cli();
	outb(PIC1_DATA, PIC_MASK_ALL);
	printf("\n");
	printf("irq: %u interrupts on vector 0x%x\n", count, last_vector);
	if (bad_iir)
		printf("irq: %u interrupts without THR empty in IIR\n", bad_iir);
}
