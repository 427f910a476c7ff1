/*
 * virtio-blk: drives a modern virtio-pci block device (1af4:1042) in three
 * phases, each from a device reset, written to virtio 1.2 and PCI 3.0:
 *
 *  poll  features VERSION_1 (required), EVENT_IDX, INDIRECT_DESC, BLK_SIZE,
 *        FLUSH when offered; interrupts suppressed. Reads sectors 0-7 (the
 *        image pattern, virtio-blk.h), writes sectors 8-15 (the guest
 *        pattern), FLUSH, reads 8-15 back, GET_ID, one read through an
 *        indirect table, then 8 one-sector reads posted before one notify.
 *  msix  MSI-X on: config -> table entry 0 (vector 0x50), queue 0 -> entry 1
 *        (0x51), to this CPU's LAPIC; a write of sector 16 and its read-back
 *        completed by interrupt, counted; then the used ring and ISR.
 *  intx  MSI-X off: Interrupt Line (0x3c) through the 8259 (level, ELCR) or,
 *        for a line >= 16, an IOAPIC pin (level, active low); one read of
 *        sector 5 and one write of sector 17, each completed by interrupt; the
 *        handler reads ISR to de-assert.
 *
 * Output under QEMU (lines with addresses vary; see test/kvm/qemu-virtio-guests.test.ts):
 *   virtio-blk: found at 00:SS.F
 *   virtio-blk: barN 0x... size 0x... 32-bit|64-bit [assigned] [mapped above 4 GiB]  (one per BAR used)
 *   virtio-blk: offered 0x... negotiated 0x...
 *   virtio-blk: features version_1 [event_idx] [indirect_desc] [blk_size] [flush]
 *   virtio-blk: capacity 2048 sectors, blk_size 512
 *   virtio-blk: poll read ok
 *   virtio-blk: poll write ok
 *   virtio-blk: poll flush ok | virtio-blk: poll flush not offered
 *   virtio-blk: poll read back ok
 *   virtio-blk: serial tsvmm-test-1
 *   virtio-blk: poll indirect read ok | virtio-blk: poll indirect not offered
 *   virtio-blk: poll 8 in flight ok
 *   virtio-blk: poll isr 0x00
 *   virtio-blk: msix table size N            | virtio-blk: msix not available
 *   virtio-blk: msix write ok
 *   virtio-blk: msix read ok
 *   virtio-blk: msix 2 interrupts
 *   virtio-blk: msix used ring ok
 *   virtio-blk: intx line L pin P via pic|ioapic
 *   virtio-blk: intx ok
 *   virtio-blk: done
 * A failed check prints "virtio-blk: FAIL ..." (or a reason from the
 * library) and the guest stops there.
 */
#include "guest.h"
#include "interrupts.h"
#include "virtio-blk.h"

#define NAME "virtio-blk"
#define WANTED (VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH)
#define IN_FLIGHT 8
#define MSIX_CONFIG_VECTOR 0x50
#define MSIX_QUEUE_VECTOR 0x51
#define IOAPIC_INTX_VECTOR 0x60
#define IRQ_SPINS 2000000	/* bound on a wait for an interrupt */
#define ELCR1 0x4d0		/* edge/level control, IRQ 0-7 (bit set = level) */
#define ELCR2 0x4d1		/* IRQ 8-15 */
#define IOAPIC_LEVEL 0x8000
#define IOAPIC_ACTIVE_LOW 0x2000

static struct blk blk;
static uint8_t buf[IN_FLIGHT * SECTOR_SIZE] __attribute__((aligned(4096)));
static uint8_t bufs[IN_FLIGHT][SECTOR_SIZE] __attribute__((aligned(4096)));
static volatile struct virtq_desc indirect[3] __attribute__((aligned(16)));
static char id[VIRTIO_BLK_ID_BYTES + 1];

static volatile uint32_t queue_irqs, config_irqs, intx_irqs, intx_empty, spurious;
static volatile uint8_t intx_isr;
static unsigned intx_line;

static void fail(const char *what) { printf(NAME ": FAIL %s\n", what); }

static void queue_handler(struct isr_frame *f) { (void)f; queue_irqs++; lapic_eoi(); }
static void config_handler(struct isr_frame *f) { (void)f; config_irqs++; lapic_eoi(); }
static void spurious_handler(struct isr_frame *f) { (void)f; spurious++; }	/* LAPIC spurious / PIC IRQ7/15: no EOI */

static void intx_handler(struct isr_frame *f)
{
	(void)f;
	uint8_t isr = virtio_read_isr(&blk.vp);	/* reading clears it and de-asserts the line */
	if (isr) {
		intx_isr |= isr;
		intx_irqs++;
	} else {
		intx_empty++;
	}
	if (intx_line >= 16) {
		lapic_eoi();
	} else {
		if (intx_line >= 8)
			outb(PIC2_COMMAND, PIC_EOI);
		outb(PIC1_COMMAND, PIC_EOI);
	}
}

/* Interrupts on until *count reaches n or the bound runs out; 1 if it did. */
static int wait_irqs(volatile uint32_t *count, uint32_t n)
{
	sti();
	for (uint32_t i = 0; i < IRQ_SPINS && *count < n; i++)
		cpu_relax();
	cli();
	return *count >= n;
}

static void print_features(uint64_t f)
{
	printf(NAME ": features version_1%s%s%s%s\n", (f & VIRTIO_RING_F_EVENT_IDX) ? " event_idx" : "",
	       (f & VIRTIO_RING_F_INDIRECT_DESC) ? " indirect_desc" : "", (f & VIRTIO_BLK_F_BLK_SIZE) ? " blk_size" : "",
	       (f & VIRTIO_BLK_F_FLUSH) ? " flush" : "");
}

static int phase_poll(void)
{
	if (blk_start(&blk, WANTED, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR))
		return -1;
	uint64_t f = blk.vp.features;
	printf(NAME ": offered 0x%lx negotiated 0x%lx\n", blk.vp.offered, f);
	print_features(f);
	if (blk.blk_size)
		printf(NAME ": capacity %lu sectors, blk_size %u\n", blk.capacity, blk.blk_size);
	else
		printf(NAME ": capacity %lu sectors, blk_size not offered\n", blk.capacity);
	if (blk.capacity < 24) {
		fail("capacity below the 24 sectors this guest uses");
		return -1;
	}
	virtq_want_interrupt(&blk.vq, 0);
	(void)virtio_read_isr(&blk.vp);

	memset(buf, 0, sizeof(buf));
	if (blk_request(&blk, NAME ": poll read", VIRTIO_BLK_T_IN, 0, buf, 8 * SECTOR_SIZE, 8 * SECTOR_SIZE + 1))
		return -1;
	uint32_t bad = pattern_check(buf, 0, 8, 0);
	if (bad) {
		printf(NAME ": FAIL poll read: sectors 0-7 differ from the image pattern at byte %u (0x%02x)\n", bad - 1, buf[bad - 1]);
		return -1;
	}
	printf(NAME ": poll read ok\n");

	for (unsigned s = 0; s < 8; s++)
		pattern_guest_sector(buf + s * SECTOR_SIZE, 8 + s);
	if (blk_request(&blk, NAME ": poll write", VIRTIO_BLK_T_OUT, 8, buf, 8 * SECTOR_SIZE, 1))
		return -1;
	printf(NAME ": poll write ok\n");

	if (f & VIRTIO_BLK_F_FLUSH) {
		if (blk_request(&blk, NAME ": poll flush", VIRTIO_BLK_T_FLUSH, 0, 0, 0, 1))
			return -1;
		printf(NAME ": poll flush ok\n");
	} else {
		printf(NAME ": poll flush not offered\n");
	}

	memset(buf, 0, sizeof(buf));
	if (blk_request(&blk, NAME ": poll read back", VIRTIO_BLK_T_IN, 8, buf, 8 * SECTOR_SIZE, 8 * SECTOR_SIZE + 1))
		return -1;
	bad = pattern_check(buf, 8, 8, 1);
	if (bad) {
		printf(NAME ": FAIL poll read back: sectors 8-15 differ at byte %u\n", bad - 1);
		return -1;
	}
	printf(NAME ": poll read back ok\n");

	memset(id, 0, sizeof(id));
	if (blk_request(&blk, NAME ": poll get_id", VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_ID_BYTES + 1))
		return -1;
	for (unsigned i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
		if (id[i] && (id[i] < 0x20 || id[i] > 0x7e))
			id[i] = '?';
	printf(NAME ": serial %s\n", id);

	if (f & VIRTIO_RING_F_INDIRECT_DESC) {
		memset(buf, 0, SECTOR_SIZE);
		uint16_t head = blk_build(&blk, 0, VIRTIO_BLK_T_IN, 3, buf, SECTOR_SIZE, indirect);
		virtq_post(&blk.vq, head);
		virtq_kick(&blk.vq);
		uint32_t uid, len;
		if (!virtq_wait_used(&blk.vq, &uid, &len, VIRTIO_USED_SPINS)) {
			fail("poll indirect read: no completion");
			return -1;
		}
		if (uid != head || len != SECTOR_SIZE + 1 || *blk_status(0) != VIRTIO_BLK_S_OK || pattern_check(buf, 3, 1, 0)) {
			printf(NAME ": FAIL poll indirect read: id %u len %u status %u\n", uid, len, *blk_status(0));
			return -1;
		}
		printf(NAME ": poll indirect read ok\n");
	} else {
		printf(NAME ": poll indirect not offered\n");
	}

	unsigned n = blk.vq.size / 3 < IN_FLIGHT ? blk.vq.size / 3 : IN_FLIGHT;
	memset(bufs, 0, sizeof(bufs));
	for (unsigned i = 0; i < n; i++)
		virtq_post(&blk.vq, blk_build(&blk, i, VIRTIO_BLK_T_IN, 7 - i, bufs[i], SECTOR_SIZE, 0));
	virtq_kick(&blk.vq);
	uint32_t seen = 0;
	for (unsigned k = 0; k < n; k++) {
		uint32_t uid, len;
		if (!virtq_wait_used(&blk.vq, &uid, &len, VIRTIO_USED_SPINS)) {
			printf(NAME ": FAIL poll in flight: %u of %u completed\n", k, n);
			return -1;
		}
		unsigned slot = uid / 3;
		if (uid % 3 || slot >= n || (seen & (1u << slot)) || len != SECTOR_SIZE + 1 || *blk_status(slot) != VIRTIO_BLK_S_OK ||
		    pattern_check(bufs[slot], 7 - slot, 1, 0)) {
			printf(NAME ": FAIL poll in flight: used id %u len %u\n", uid, len);
			return -1;
		}
		seen |= 1u << slot;
	}
	printf(NAME ": poll %u in flight ok\n", n);
	printf(NAME ": poll isr 0x%02x\n", virtio_read_isr(&blk.vp));
	return 0;
}

/* Posts one request on slot 0 with an interrupt wanted and waits for the interrupt and the used element. */
static int irq_request(const char *who, volatile uint32_t *count, uint32_t type, uint64_t sector, void *data, uint32_t expect_len)
{
	uint32_t before = *count;
	uint16_t head = blk_build(&blk, 0, type, sector, data, SECTOR_SIZE, 0);
	virtq_want_interrupt(&blk.vq, 1);
	virtq_post(&blk.vq, head);
	virtq_kick(&blk.vq);
	if (!wait_irqs(count, before + 1)) {
		printf(NAME ": FAIL %s: no interrupt (used idx %u, isr 0x%x, device_status 0x%x)\n", who, virtq_used_idx(&blk.vq),
		       virtio_read_isr(&blk.vp), virtio_status(&blk.vp));
		return -1;
	}
	uint32_t uid, len;
	if (!virtq_get_used(&blk.vq, &uid, &len) || uid != head || len != expect_len || *blk_status(0) != VIRTIO_BLK_S_OK) {
		printf(NAME ": FAIL %s: interrupt without the right used element (id %u len %u status %u)\n", who, uid, len, *blk_status(0));
		return -1;
	}
	return 0;
}

static int phase_msix(void)
{
	struct pci_msix *m = &blk.vp.msix;
	if (!m->cap) {
		printf(NAME ": msix not available\n");
		return 0;
	}
	printf(NAME ": msix table size %u\n", m->size);
	uint8_t apic = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
	set_interrupt_handler(MSIX_CONFIG_VECTOR, config_handler);
	set_interrupt_handler(MSIX_QUEUE_VECTOR, queue_handler);
	set_interrupt_handler(SPURIOUS_VECTOR, spurious_handler);
	pic_disable();		/* the firmware's timer must not reach us on its vector */
	lapic_enable();
	uint16_t config_entry = VIRTIO_MSI_NO_VECTOR, queue_entry = 0;
	if (m->size >= 2) {
		config_entry = 0;
		queue_entry = 1;
		pci_msix_set(m, 0, MSIX_CONFIG_VECTOR, apic, 0);
	}
	pci_msix_set(m, queue_entry, MSIX_QUEUE_VECTOR, apic, 0);
	pci_msix_enable(blk.vp.f, m, 1);
	if (blk_start(&blk, WANTED, config_entry, queue_entry))
		return -1;
	pattern_guest_sector(buf, 16);
	if (irq_request("msix write", &queue_irqs, VIRTIO_BLK_T_OUT, 16, buf, 1))
		return -1;
	printf(NAME ": msix write ok\n");
	memset(buf, 0, SECTOR_SIZE);
	if (irq_request("msix read", &queue_irqs, VIRTIO_BLK_T_IN, 16, buf, SECTOR_SIZE + 1))
		return -1;
	if (pattern_check(buf, 16, 1, 1)) {
		fail("msix read: sector 16 does not hold what was written");
		return -1;
	}
	printf(NAME ": msix read ok\n");
	printf(NAME ": msix %u interrupts\n", queue_irqs + config_irqs);
	uint8_t isr = virtio_read_isr(&blk.vp);
	if (virtq_used_idx(&blk.vq) != 2 || (isr & VIRTIO_ISR_CONFIG) || config_irqs) {
		printf(NAME ": FAIL msix used idx %u isr 0x%x config interrupts %u\n", virtq_used_idx(&blk.vq), isr, config_irqs);
		return -1;
	}
	printf(NAME ": msix used ring ok\n");
	virtio_reset(&blk.vp);
	pci_msix_enable(blk.vp.f, m, 0);
	return 0;
}

static int phase_intx(void)
{
	if (blk.vp.msix.cap)
		pci_msix_enable(blk.vp.f, &blk.vp.msix, 0);
	uint8_t line = pci_read8(blk.vp.f, PCI_INTERRUPT_LINE), pin = pci_read8(blk.vp.f, PCI_INTERRUPT_PIN);
	if (pin == 0 || pin > 4 || line == 0 || line == 0xff || line == 2) {
		printf(NAME ": FAIL intx: interrupt pin %u line %u\n", pin, line);
		return -1;
	}
	intx_line = line;
	uint16_t command = pci_read16(blk.vp.f, PCI_COMMAND);
	pci_write16(blk.vp.f, PCI_COMMAND, command & (uint16_t)~PCI_COMMAND_INTX_DISABLE);
	if (blk_start(&blk, WANTED, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR))
		return -1;
	(void)virtio_read_isr(&blk.vp);
	unsigned vector;
	if (line < 16) {
		vector = line < 8 ? PIC1_VECTOR_BASE + line : PIC2_VECTOR_BASE + line - 8;
		set_interrupt_handler(vector, intx_handler);
		set_interrupt_handler(PIC1_VECTOR_BASE + 7, spurious_handler);
		set_interrupt_handler(PIC2_VECTOR_BASE + 7, spurious_handler);
		lapic_virtual_wire();
		uint16_t elcr_port = line < 8 ? ELCR1 : ELCR2;
		outb(elcr_port, inb(elcr_port) | (uint8_t)(1u << (line & 7)));	/* PCI INTx is level-triggered */
		uint8_t master = (uint8_t)~(1u << PIC_CASCADE_IRQ), slave = PIC_MASK_ALL;
		if (line < 8)
			master &= (uint8_t)~(1u << line);
		else
			slave &= (uint8_t)~(1u << (line - 8));
		pic_init(master, slave);
	} else {
		vector = IOAPIC_INTX_VECTOR;
		set_interrupt_handler(vector, intx_handler);
		pic_disable();
		lapic_enable();
		ioapic_write(IOAPIC_REDTBL(line), IOAPIC_MASKED);
		ioapic_write(IOAPIC_REDTBL(line) + 1, (lapic_read(LAPIC_ID) >> 24) << IOAPIC_DEST_SHIFT);
		ioapic_write(IOAPIC_REDTBL(line), IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW | vector);
	}
	printf(NAME ": intx line %u pin %u via %s\n", line, pin, line < 16 ? "pic" : "ioapic");

	memset(buf, 0, SECTOR_SIZE);
	if (irq_request("intx read", &intx_irqs, VIRTIO_BLK_T_IN, 5, buf, SECTOR_SIZE + 1))
		return -1;
	if (pattern_check(buf, 5, 1, 0)) {
		fail("intx read: sector 5 differs from the image pattern");
		return -1;
	}
	pattern_guest_sector(buf, 17);
	if (irq_request("intx write", &intx_irqs, VIRTIO_BLK_T_OUT, 17, buf, 1))
		return -1;
	if (intx_irqs != 2 || !(intx_isr & VIRTIO_ISR_QUEUE) || (pci_read16(blk.vp.f, PCI_STATUS) & PCI_STATUS_INTERRUPT)) {
		printf(NAME ": FAIL intx: %u interrupts, isr seen 0x%x, config status 0x%x\n", intx_irqs, intx_isr,
		       pci_read16(blk.vp.f, PCI_STATUS));
		return -1;
	}
	printf(NAME ": intx ok\n");
	if (line < 16)
		pic_mask_all();
	else
		ioapic_mask(line);
	virtio_reset(&blk.vp);
	return 0;
}

void guest_main(void)
{
	if (virtio_pci_open(&blk.vp, NAME, VIRTIO_BLK_PCI_ID))
		return;
	if (phase_poll() || phase_msix() || phase_intx())
		return;
	printf(NAME ": done\n");
}
