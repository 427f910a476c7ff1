/*
 * counter: prints an incrementing counter on COM1 for ever, one whole line
 * per count, for the snapshot tests: a restored guest must go on with the
 * next value, no repeat and no gap. The BSP counts PIT ticks (channel 0 at
 * 1 kHz, IRQ 0 through the 8259 PIC, in hlt between them) and prints
 * "cpu0 N" every 4 ticks, so the PIT, the PIC and the local APIC's virtual
 * wire all have to survive a restore. With more CPUs each AP prints
 * "cpuK N" (K = 1 ...) after a fixed busy loop; a spinlock keeps the
 * lines whole.
 */
#include "guest.h"
#include "interrupts.h"
#include "../smp/smp.h"

#define PIT_DIVISOR 1193	/* 1193182 Hz / 1193: a tick per millisecond */
#define TICKS_PER_LINE 4
#define AP_SPINS 1500		/* about 5 ms of guest instructions on this host */

static volatile uint32_t ticks;
static volatile uint32_t print_lock;
volatile uint32_t ap_online;

static void tick(struct isr_frame *frame)
{
	(void)frame;
	ticks++;
	pic_eoi();
}

static void print_count(uint32_t cpu, uint32_t n)
{
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
	printf("cpu%u %u\n", cpu, n);
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

/* Each AP, once in long mode, with interrupts off: count for ever. */
void ap_main(uint32_t slot);
void ap_main(uint32_t slot)
{
	lock_xadd32(&ap_online, 1);
	for (uint32_t n = 0;; n++) {
		print_count(slot + 1, n);
		for (volatile uint32_t i = 0; i < AP_SPINS; i++)
			;
	}
}

void guest_main(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	uint32_t expected = (b >> 16) & 0xff;
	if (expected > 1)
		smp_start_aps(expected, &ap_online, tsc_hz());

	cli();
	set_interrupt_handler(PIC1_VECTOR_BASE + 0, tick);
	lapic_virtual_wire();
	pic_init((uint8_t)~1, PIC_MASK_ALL); /* IRQ 0 only */
	outb(PIT_COMMAND, PIT_CH0_MODE2_LOHI);
	outb(PIT_CH0_DATA, PIT_DIVISOR & 0xff);
	outb(PIT_CH0_DATA, PIT_DIVISOR >> 8);
	for (uint32_t n = 0;; n++) {
		print_count(0, n);
		uint32_t until = ticks + TICKS_PER_LINE;
		for (;;) {
			cli();
			if (ticks >= until)
				break;
			sti_hlt();
		}
	}
}
