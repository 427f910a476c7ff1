/*
 * virtio-rng: a modern virtio-pci entropy device (1af4:1044, virtio 1.2
 * §5.4): feature VERSION_1 only (the device has no others), one requestq.
 * Fills 64 bytes twice by polling (a request may return fewer bytes than
 * asked: the guest posts more until it has 64), checks that neither is all
 * zero and that they differ; then, from a reset with MSI-X on (queue ->
 * table entry 0, vector 0x52), fills 64 bytes again completed by interrupt.
 *
 * Output under QEMU:
 *   virtio-rng: found at 00:SS.F
 *   virtio-rng: barN 0x... size 0x... ...   (one per BAR used)
 *   virtio-rng: poll read 64 bytes
 *   virtio-rng: poll read 64 bytes
 *   virtio-rng: reads differ and are not zero
 *   virtio-rng: msix read 64 bytes                 | virtio-rng: msix not available
 *   virtio-rng: msix N interrupts                  (N >= 1: one per request)
 *   virtio-rng: done
 */
#include "guest.h"
#include "interrupts.h"
#include "virtio.h"

#define NAME "virtio-rng"
#define VIRTIO_RNG_PCI_ID (VIRTIO_PCI_MODERN_BASE + 4)
#define BYTES 64
#define MAX_REQUESTS 16		/* bound on the requests one fill may take */
#define MSIX_QUEUE_VECTOR 0x52
#define IRQ_SPINS 2000000

static struct virtio_pci vp;
static struct virtq vq;
static struct virtq_mem mem;
static uint8_t bufs[3][BYTES] __attribute__((aligned(64)));
static volatile uint32_t irqs, spurious;

static void queue_handler(struct isr_frame *f) { (void)f; irqs++; lapic_eoi(); }
static void spurious_handler(struct isr_frame *f) { (void)f; spurious++; }

static int start(uint16_t vector)
{
	if (virtio_negotiate(&vp, 0))
		return -1;
	if (virtq_setup(&vp, &vq, &mem, 0, 8, vector))
		return -1;
	virtio_driver_ok(&vp);
	return 0;
}

/* Fills buf with BYTES bytes; by interrupt when irq is set. 0 ok, -1 printed. */
static int fill(uint8_t *buf, int irq, const char *what)
{
	uint32_t got = 0;
	for (int r = 0; r < MAX_REQUESTS && got < BYTES; r++) {
		uint32_t before = irqs;
		virtq_set_desc(&vq, 0, buf + got, BYTES - got, VIRTQ_DESC_F_WRITE, 0);
		virtq_want_interrupt(&vq, irq);
		virtq_post(&vq, 0);
		virtq_kick(&vq);
		if (irq) {
			sti();
			for (uint32_t i = 0; i < IRQ_SPINS && irqs == before; i++)
				cpu_relax();
			cli();
			if (irqs == before) {
				printf(NAME ": FAIL %s: no interrupt (used idx %u)\n", what, virtq_used_idx(&vq));
				return -1;
			}
		}
		uint32_t id, len;
		if (!virtq_wait_used(&vq, &id, &len, VIRTIO_USED_SPINS)) {
			printf(NAME ": FAIL %s: no completion\n", what);
			return -1;
		}
		if (id != 0 || len > BYTES - got) {
			printf(NAME ": FAIL %s: used id %u len %u for a %u-byte buffer\n", what, id, len, BYTES - got);
			return -1;
		}
		got += len;
	}
	if (got < BYTES) {
		printf(NAME ": FAIL %s: %u bytes after %u requests\n", what, got, MAX_REQUESTS);
		return -1;
	}
	printf(NAME ": %s %u bytes\n", what, got);
	return 0;
}

static int all_zero(const uint8_t *b)
{
	for (unsigned i = 0; i < BYTES; i++)
		if (b[i])
			return 0;
	return 1;
}

void guest_main(void)
{
	if (virtio_pci_open(&vp, NAME, VIRTIO_RNG_PCI_ID) || start(VIRTIO_MSI_NO_VECTOR))
		return;
	if (fill(bufs[0], 0, "poll read") || fill(bufs[1], 0, "poll read"))
		return;
	int same = 1;
	for (unsigned i = 0; i < BYTES; i++)
		same &= bufs[0][i] == bufs[1][i];
	if (same || all_zero(bufs[0]) || all_zero(bufs[1])) {
		printf(NAME ": FAIL the reads are %s\n", same ? "the same" : "all zero");
		return;
	}
	printf(NAME ": reads differ and are not zero\n");

	struct pci_msix *m = &vp.msix;
	if (!m->cap) {
		printf(NAME ": msix not available\n");
	} else {
		set_interrupt_handler(MSIX_QUEUE_VECTOR, queue_handler);
		set_interrupt_handler(SPURIOUS_VECTOR, spurious_handler);
		pic_disable();
		lapic_enable();
		pci_msix_set(m, 0, MSIX_QUEUE_VECTOR, (uint8_t)(lapic_read(LAPIC_ID) >> 24), 0);
		pci_msix_enable(vp.f, m, 1);
		if (start(0) || fill(bufs[2], 1, "msix read"))
			return;
		if (all_zero(bufs[2])) {
			printf(NAME ": FAIL msix read: all zero\n");
			return;
		}
		printf(NAME ": msix %u interrupts\n", irqs);
		pci_msix_enable(vp.f, m, 0);
	}
	virtio_reset(&vp);
	printf(NAME ": done\n");
}
