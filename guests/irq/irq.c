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

#define PIC1_COMMAND 0x20
#define PIC1_DATA 0x21
#define PIC2_COMMAND 0xa0
#define PIC2_DATA 0xa1
#define PIC_ICW1_INIT_ICW4 0x11	/* ICW1: edge triggered, cascade, ICW4 follows */
#define PIC_ICW4_8086 0x01
#define PIC_EOI 0x20		/* OCW2: non-specific end of interrupt */
#define PIC1_VECTOR_BASE 0x20
#define PIC2_VECTOR_BASE 0x28
#define COM1_IRQ 4
#define COM1_VECTOR (PIC1_VECTOR_BASE + COM1_IRQ)

#define UART_IER_THRI 0x02	/* IER bit 1: THR empty interrupt */
#define UART_MCR_OUT2 0x08	/* MCR bit 3: routes the UART interrupt to the PIC on a PC */
#define UART_MCR_DTR_RTS 0x03

#define LAPIC_SVR 0x0f0
#define LAPIC_LVT0 0x350	/* LINT0, where the PIC's INTR arrives */
#define LAPIC_LVT1 0x360	/* LINT1, NMI */
#define LVT_EXTINT 0x700
#define LVT_NMI 0x400

#define INTERRUPTS 10

static volatile uint32_t count;
static volatile uint32_t last_vector;
static volatile uint32_t bad_iir;

static void thre_handler(struct isr_frame *frame)
{
	uint8_t iir = inb(COM1_BASE + UART_IIR);
	if ((iir & 0x0f) != 0x02) /* 0x02: THR empty is the pending cause */
		bad_iir++;
	outb(PIC1_COMMAND, PIC_EOI);
	last_vector = (uint32_t)frame->vector;
	count++;
}

static void pic_init(void)
{
	outb(PIC1_COMMAND, PIC_ICW1_INIT_ICW4);
	outb(PIC2_COMMAND, PIC_ICW1_INIT_ICW4);
	outb(PIC1_DATA, PIC1_VECTOR_BASE);	/* ICW2 */
	outb(PIC2_DATA, PIC2_VECTOR_BASE);
	outb(PIC1_DATA, 1 << 2);		/* ICW3: slave on IRQ2 */
	outb(PIC2_DATA, 2);			/* ICW3: slave id 2 */
	outb(PIC1_DATA, PIC_ICW4_8086);
	outb(PIC2_DATA, PIC_ICW4_8086);
	outb(PIC1_DATA, (uint8_t)~(1 << COM1_IRQ)); /* mask all but IRQ4 */
	outb(PIC2_DATA, 0xff);
}

/* Virtual-wire mode, as an OS sets it up: the local APIC on, LINT0 = ExtINT (the PIC), LINT1 = NMI. */
static void lapic_virtual_wire(void)
{
	mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x1ff);
	mmio_write32(LAPIC_BASE + LAPIC_LVT0, LVT_EXTINT);
	mmio_write32(LAPIC_BASE + LAPIC_LVT1, LVT_NMI);
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
	pic_init();
	outb(COM1_BASE + UART_MCR, UART_MCR_DTR_RTS | UART_MCR_OUT2);
	outb(COM1_BASE + UART_IER, UART_IER_THRI); /* THR is empty: interrupt 1 */

	for (uint32_t k = 1; k <= INTERRUPTS; k++) {
		wait_for_count(k);
		if (k == INTERRUPTS)
			outb(COM1_BASE + UART_IER, 0); /* no interrupt for the last digit */
		outb(COM1_BASE + UART_THR, (uint8_t)digits[k - 1]);
	}
	cli();
	outb(PIC1_DATA, 0xff);
	printf("\n");
	printf("irq: %u interrupts on vector 0x%x\n", count, last_vector);
	if (bad_iir)
		printf("irq: %u interrupts without THR empty in IIR\n", bad_iir);
}
